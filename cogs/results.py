"""The buttons under a result: U1–U4, 🔄, V1–V4 on a grid; Vary, Zoom Out and pan on an upscale.

Persistent: everything a button needs is in its custom_id (DynamicItem), so buttons work after a restart. A
click queues a new job as the member who clicked, charged to them, like any other job.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.core import TEMPLATE, Action, ImagineError, Job, Kind, make_custom_id, parse_custom_id
from bot.discord_surface.discord_setup import check_delivery_permissions
from cogs.actors import actor_of

if TYPE_CHECKING:
    from bot.discord_surface.discord_bot import ImagineBot

log = logging.getLogger(__name__)

UPSCALE_BUTTONS: tuple[tuple[Action, str | None, str | None, int], ...] = (
    (Action.VARY_SUBTLE, "Vary (Subtle)", "🪄", 0),
    (Action.VARY_STRONG, "Vary (Strong)", "🪄", 0),
    (Action.ZOOM_OUT_2, "Zoom Out 2x", "🔍", 0),
    (Action.ZOOM_OUT_15, "Zoom Out 1.5x", "🔍", 0),
    (Action.PAN_LEFT, None, "⬅️", 1),
    (Action.PAN_RIGHT, None, "➡️", 1),
    (Action.PAN_UP, None, "⬆️", 1),
    (Action.PAN_DOWN, None, "⬇️", 1),
)


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
                label=label, emoji=emoji, style=style, row=row, custom_id=make_custom_id(action, job_id, index)
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
        bot: ImagineBot = interaction.client
        actor = actor_of(interaction)
        try:
            prepared = await bot.service.prepare_follow_up(actor, self.job_id, self.action, self.index)
            check_delivery_permissions(interaction)
        except ImagineError as error:
            await interaction.response.send_message(f"⚠️ {error}", ephemeral=True)
            return
        await bot.presenter.submit(interaction, [prepared])


def result_view(job: Job) -> discord.ui.View | None:
    """The buttons a result gets: none on a sweep, the upscale set on an upscale, U/🔄/V on a grid."""
    if job.kind is Kind.SWEEP:
        return None
    view = discord.ui.View(timeout=None)
    if job.kind is Kind.UPSCALE:
        for action, label, emoji, row in UPSCALE_BUTTONS:
            view.add_item(ResultButton(action, job.id, 0, label=label, emoji=emoji, row=row))
        return view
    images = len(job.params.seeds)
    for index in range(images):
        view.add_item(ResultButton(Action.UPSCALE, job.id, index, label=f"U{index + 1}", row=0))
    view.add_item(ResultButton(Action.REROLL, job.id, 0, emoji="🔄", row=0))
    for index in range(images):
        view.add_item(ResultButton(Action.VARY, job.id, index, label=f"V{index + 1}", row=1))
    return view


async def setup(bot: commands.Bot) -> None:
    bot.add_dynamic_items(ResultButton)
