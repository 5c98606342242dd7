"""/describe: four prompts that could have made an uploaded image, each with a button that runs ``/imagine`` on it.

The request is checked (access, a server that can describe) before the attachment is downloaded, then queued and
charged through the presenter like every job, with its cost in the queued message. The result post shows the image
and the suggestions; a suggestion that holds a word this server blocks is hidden and has no button. The buttons are
persistent (``ibd:<job>:<index>``): pressing one queues ``/imagine`` with that prompt for whoever pressed, checked and
charged as if they had typed it, and any refusal is answered privately before anything is charged.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import (
    DESCRIBE_TEMPLATE,
    Description,
    ImagineError,
    Job,
    check_byte_size,
    make_describe_id,
    parse_describe_id,
)
from bot.discord_surface.discord_setup import check_delivery_permissions
from cogs.actors import actor_of
from cogs.imagine import read_attachment
from cogs.posts import MAX_CONTENT, result_text

if TYPE_CHECKING:
    from bot.discord_surface.discord_bot import ImagineBot

log = logging.getLogger(__name__)

HIDDEN = "*(hidden: it contains a word this server blocks)*"
MAX_EMBED = 4096


class SuggestionButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=DESCRIBE_TEMPLATE):
    """Run suggestion ``index`` of describe job ``job_id`` as /imagine; everything it needs is in its custom_id."""

    def __init__(self, job_id: int, index: int) -> None:
        self.job_id = job_id
        self.index = index
        super().__init__(
            discord.ui.Button(
                label=str(index + 1),
                emoji="🎨",
                style=discord.ButtonStyle.secondary,
                custom_id=make_describe_id(job_id, index),
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> SuggestionButton:
        parsed = parse_describe_id(match.group(0))
        if parsed is None:
            raise ValueError(f"not a suggestion button: {match.group(0)!r}")
        return cls(*parsed)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot: ImagineBot = interaction.client
        try:
            prepared = await bot.service.describe.prepare_imagine(actor_of(interaction), self.job_id, self.index)
            check_delivery_permissions(interaction)
        except ImagineError as error:
            await interaction.response.send_message(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
            return
        await bot.presenter.submit(interaction, prepared)


def suggestions_text(description: Description) -> str:
    """The numbered suggestions, a hidden one said to be hidden (at most an embed's 4,096 characters)."""
    lines = []
    for item in description.suggestions:
        shown = HIDDEN if item.prompt is None else discord.utils.escape_markdown(item.prompt)
        lines.append(f"**{item.index + 1}.** {discord.utils.escape_mentions(shown)}")
    return "\n\n".join(lines)[:MAX_EMBED] or "*(no suggestions)*"


def suggestions_view(description: Description) -> discord.ui.View | None:
    """One button per suggestion offered, numbered as in the text; None when none is offered."""
    view = discord.ui.View(timeout=None)
    for item in description.suggestions:
        if item.offered:
            view.add_item(SuggestionButton(description.job.id, item.index))
    return view if view.children else None


async def describe_result(bot: ImagineBot, job: Job, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A describe job's result post (for the presenter): ``extra``'s file shown with the suggestions and their
    buttons, screened for the job's server."""
    description = await bot.service.describe.description_of(job)
    file: discord.File = extra["file"]
    embed = discord.Embed(colour=discord.Colour.blurple(), description=suggestions_text(description))
    embed.set_image(url=f"attachment://{file.filename}")
    embed.set_footer(text=f"job {job.id}" + (f" · {job.cost} credits" if job.cost else "") + " · 🎨 N: /imagine it")
    extra["embed"] = embed
    view = suggestions_view(description)
    if view is not None:
        extra["view"] = view
    return result_text(job, f"<@{job.user_id}>"), extra


class DescribeCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    @app_commands.command(name="describe", description="Four prompts that could have made an image")
    @app_commands.describe(image="The image to describe (PNG, JPEG or WebP)")
    @app_commands.guild_only()
    async def describe(self, interaction: discord.Interaction[Any], image: discord.Attachment) -> None:
        """Every refusal that needs no download is answered privately at once; the image is downloaded, checked
        and staged only then, and stored for good only when the job is admitted."""
        service = self.bot.service
        limits = service.upload_limits
        try:
            prepared = await service.describe.prepare(actor_of(interaction))
            check_delivery_permissions(interaction)
            check_byte_size(image.size, limits, what="image")
        except ImagineError as error:
            await interaction.response.send_message(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        try:
            received = await service.receive_image(await read_attachment(image, limits, "image"))
        except ImagineError as error:
            await interaction.followup.send(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
            return
        await self.bot.presenter.submit(
            interaction, [service.describe.attach(prepared, received)], uploads=[received.staged]
        )


async def setup(bot: ImagineBot) -> None:
    bot.add_dynamic_items(SuggestionButton)
    await bot.add_cog(DescribeCog(bot))
