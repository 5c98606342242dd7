"""/imagine, /edit and /sweep: check the request, then hand it to the presenter, which queues and shows it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import ImagineError
from bot.requests import TaskOptions
from bot.uploads import MIB, UploadError, UploadLimits, check_upload, store_upload
from cogs.presenter import MAX_CONTENT, presenter_of
from engine.samplers import SAMPLERS

if TYPE_CHECKING:
    from bot.discord_bot import ImagineBot

log = logging.getLogger(__name__)


def with_option_flags(prompt: str, **options: str | None) -> str:
    """Slash-command options appended as the flags they stand for (the parser then checks them)."""
    flags = " ".join(f"--{name} {value}" for name, value in options.items() if value)
    return f"{prompt} {flags}" if flags else prompt


def choices_matching(names: list[str], current: str, limit: int = 25) -> list[app_commands.Choice[str]]:
    """Autocomplete: names containing what was typed, those starting with it first, at most 25."""
    typed = current.strip().lower()
    matching = [name for name in names if typed in name.lower()]
    matching.sort(key=lambda name: (not name.lower().startswith(typed), name))
    return [app_commands.Choice(name=name, value=name) for name in matching[:limit]]


def check_attachment_metadata(attachment: discord.Attachment, limits: UploadLimits, what: str) -> None:
    """Refuse by Discord's metadata before downloading anything."""
    if attachment.size > limits.max_bytes:
        raise UploadError(
            f"the {what} is {attachment.size / MIB:.1f} MiB; the limit is {limits.max_bytes / MIB:g} MiB. "
            "Upload a smaller image"
        )
    if attachment.size == 0:
        raise UploadError(f"the {what} is empty (0 bytes); upload a PNG, JPEG or WebP image")


async def fetch_upload(attachment: discord.Attachment, limits: UploadLimits, uploads_dir: Path, *, mask: bool) -> Path:
    """Download, check and store an attachment; its file name is never used."""
    data = await attachment.read()
    checked = check_upload(data, limits=limits, mask=mask)
    return store_upload(checked, uploads_dir)


class ImagineCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    @property
    def upload_limits(self) -> UploadLimits:
        settings = self.bot.settings
        return UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels)

    async def _queue(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        *,
        image: discord.Attachment | None = None,
        mask: discord.Attachment | None = None,
        strength: float | None = None,
        sweeps: tuple[str, ...] = (),
    ) -> None:
        """Checks that need no download answer privately before the defer; the rest after it."""
        service = self.bot.service
        limits = self.upload_limits
        try:
            await service.moderation.check_channel(interaction.guild_id, interaction.channel_id)
            for attachment, what in ((image, "image"), (mask, "mask")):
                if attachment is not None:
                    check_attachment_metadata(attachment, limits, what)
            preferences = await service.preferences.get(interaction.user.id)
            # Validate the prompt and options with a stand-in image path; the real one replaces it below.
            placeholder = TaskOptions(
                image=Path(__file__) if image else None,
                mask=Path(__file__) if mask else None,
                strength=strength,
                sweeps=sweeps,
            )
            prepared = service.prepare_imagine(prompt, preferences, placeholder)
            for item in prepared:
                await service.moderation.check_prompt(interaction.guild_id, item.params.prompt)
        except ImagineError as error:
            await interaction.response.send_message(f"⚠️ {error}", ephemeral=True)
            return
        if image is None and mask is None:
            await presenter_of(self.bot).submit(interaction, prepared)
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        try:
            uploads_dir = self.bot.settings.data_dir / "uploads"
            image_path = await fetch_upload(image, limits, uploads_dir, mask=False) if image else None
            mask_path = await fetch_upload(mask, limits, uploads_dir, mask=True) if mask else None
            options = TaskOptions(image=image_path, mask=mask_path, strength=strength, sweeps=sweeps)
            prepared = service.prepare_imagine(prompt, preferences, options)
        except ImagineError as error:
            await interaction.followup.send(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
            return
        await presenter_of(self.bot).submit(interaction, prepared)

    @app_commands.command(name="imagine", description="Create four images from a prompt (and optionally an image)")
    @app_commands.describe(
        prompt="What to draw, then flags: --ar 3:2 --seed 7 --no text --steps 30 --cfg 7",
        image="Start from this image (img2img)",
        strength="How far to move away from the image: 0 keeps it, 1 ignores it (default 0.75)",
        model="Model to use (same as --model)",
        sampler="Sampler to use (same as --sampler)",
    )
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        image: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.01, 1.0] | None = None,
        model: str | None = None,
        sampler: str | None = None,
    ) -> None:
        await self._queue(
            interaction, with_option_flags(prompt, model=model, sampler=sampler), image=image, strength=strength
        )

    @app_commands.command(name="edit", description="Repaint part of an image: white in the mask is repainted")
    @app_commands.describe(
        image="The image to edit", mask="Same picture size: white = repaint, black = keep", prompt="What to paint"
    )
    async def edit(
        self, interaction: discord.Interaction[Any], image: discord.Attachment, mask: discord.Attachment, prompt: str
    ) -> None:
        await self._queue(interaction, prompt, image=image, mask=mask)

    @app_commands.command(name="sweep", description="One labelled grid over up to three settings")
    @app_commands.describe(
        prompt="What to draw (flags allowed)",
        x="First axis, e.g. cfg=3,5,7 (seed, cfg, steps, sampler, prompt, strength)",
        y="Second axis, e.g. steps=10,20",
        z="Third axis",
    )
    async def sweep(
        self, interaction: discord.Interaction[Any], prompt: str, x: str, y: str | None = None, z: str | None = None
    ) -> None:
        sweeps = tuple(axis for axis in (x, y, z) if axis)
        await self._queue(interaction, prompt, sweeps=sweeps)

    @imagine.autocomplete("model")
    async def _complete_model(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return choices_matching(sorted(self.bot.settings.registry), current)

    @imagine.autocomplete("sampler")
    async def _complete_sampler(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return choices_matching(list(SAMPLERS), current)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(ImagineCog(bot))
