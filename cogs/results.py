"""The buttons under a result: U1–U4, 🔄, V1–V4. Persistent: they work after a restart (DynamicItem)."""

from __future__ import annotations

import logging
import re
from typing import Any

import discord
from discord.ext import commands

from bot.custom_ids import TEMPLATE, Action, make_custom_id, parse_custom_id

log = logging.getLogger(__name__)


class ResultButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """One result button; everything it needs is in its custom_id."""

    def __init__(
        self,
        action: Action,
        job_id: int,
        index: int,
        *,
        label: str | None = None,
        emoji: str | None = None,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        row: int | None = None,
    ) -> None:
        self.action = action
        self.job_id = job_id
        self.index = index
        super().__init__(
            discord.ui.Button(
                label=label,
                emoji=emoji,
                style=style,
                row=row,
                custom_id=make_custom_id(action, job_id, index),
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ResultButton:
        parsed = parse_custom_id(match.group(0))
        if parsed is None:
            raise ValueError(f"not a result button: {match.group(0)!r}")
        action, job_id, index = parsed
        return cls(action, job_id, index)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_message(
            f"{describe_action(self.action, self.index)} is not available yet on this server.", ephemeral=True
        )


def describe_action(action: Action, index: int) -> str:
    names = {
        Action.UPSCALE: f"Upscaling image {index + 1}",
        Action.VARY: f"Varying image {index + 1}",
        Action.REROLL: "Rerolling",
    }
    return names.get(action, action.name.replace("_", " ").title())


def result_view(job_id: int, images: int) -> discord.ui.View:
    """U1–U4 and 🔄 on the first row, V1–V4 on the second."""
    view = discord.ui.View(timeout=None)
    for index in range(images):
        view.add_item(ResultButton(Action.UPSCALE, job_id, index, label=f"U{index + 1}", row=0))
    view.add_item(ResultButton(Action.REROLL, job_id, 0, emoji="🔄", row=0))
    for index in range(images):
        view.add_item(ResultButton(Action.VARY, job_id, index, label=f"V{index + 1}", row=1))
    return view


async def setup(bot: commands.Bot) -> None:
    bot.add_dynamic_items(ResultButton)
