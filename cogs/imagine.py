"""/imagine, /edit and /sweep: check the request, then hand it to the presenter, which queues and shows it."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import (
    MIB,
    ImageInput,
    ImagineError,
    ReceivedImage,
    RequestOptions,
    StagedUpload,
    UploadError,
    UploadLimits,
    awaited_image_prompts,
    check_byte_size,
)
from bot.discord_surface.discord_setup import check_delivery_permissions
from cogs.actors import actor_of
from cogs.posts import MAX_CONTENT

if TYPE_CHECKING:
    from bot.discord_surface.discord_bot import ImagineBot

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


ATTACHMENT_READ_TIMEOUT_S = 60.0
CONTROL_IMAGE = "control image"
"""/imagine's ``control`` attachment, as messages name it."""
IMAGE_PROMPT = "image prompt"
"""/imagine's ``image_prompt`` attachment, as messages name it."""


async def read_attachment(attachment: discord.Attachment, limits: UploadLimits, what: str) -> bytes:
    """Download an attachment whose reported size passed :func:`check_byte_size`, within a time limit, and cap the
    bytes that really arrived too (a size that disagrees with Discord's metadata is refused)."""
    try:
        data = await asyncio.wait_for(attachment.read(), ATTACHMENT_READ_TIMEOUT_S)
    except (TimeoutError, discord.HTTPException):
        raise UploadError(f"the {what} could not be downloaded from Discord; upload it again") from None
    if len(data) > limits.max_bytes or len(data) != attachment.size:
        raise UploadError(
            f"the {what} is not the size Discord reported, or larger than {limits.max_bytes / MIB:g} MiB; "
            "upload it again"
        )
    return data


class ImagineCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    async def _queue(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        *,
        image: discord.Attachment | None = None,
        mask: discord.Attachment | None = None,
        strength: float | None = None,
        sweeps: tuple[str, ...] = (),
        control: discord.Attachment | None = None,
        control_mode: str | None = None,
        image_prompt: discord.Attachment | None = None,
    ) -> None:
        """Every refusal that needs no download is answered privately at once; the images are downloaded, checked
        and staged only then, and stored for good only when the jobs are admitted."""
        service = self.bot.service
        actor = actor_of(interaction)
        limits = service.upload_limits
        attachments = [
            (attachment, what)
            for attachment, what in ((image, "image"), (mask, "mask"), (control, CONTROL_IMAGE))
            if attachment
        ]
        try:
            announced = RequestOptions(
                image=ImageInput.announced() if image else None,
                mask=ImageInput.announced() if mask else None,
                strength=strength,
                sweeps=sweeps,
                control=ImageInput.announced() if control else None,
                control_mode=control_mode,
                image_prompts=(ImageInput.announced(),) if image_prompt else (),
            )
            prepared = await service.prepare(actor, prompt, announced)  # access, the request, moderation
            check_delivery_permissions(interaction)
            for attachment, what in attachments:
                check_byte_size(attachment.size, limits, what=what)
            if image_prompt:
                check_byte_size(image_prompt.size, limits, what=IMAGE_PROMPT)
        except ImagineError as error:
            await interaction.response.send_message(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
            return
        if not attachments and not awaited_image_prompts(prepared):
            await self.bot.presenter.submit(interaction, prepared)
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        received: dict[str, ReceivedImage] = {}
        prompt_uploads: list[StagedUpload] = []
        try:
            for attachment, what in attachments:
                data = await read_attachment(attachment, limits, what)
                received[what] = await service.receive_image(data, mask=what == "mask")
            prepared = service.attach_images(
                prepared, received.get("image"), received.get("mask"), received.get(CONTROL_IMAGE)
            )
            prompt_data = [await read_attachment(image_prompt, limits, IMAGE_PROMPT)] if image_prompt else []
            prepared, prompt_uploads = await service.image_prompts.receive(prepared, prompt_data)  # and links
        except ImagineError as error:
            for item in received.values():
                item.staged.discard()
            await interaction.followup.send(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
            return
        except BaseException:
            for item in received.values():
                item.staged.discard()
            raise
        uploads = [item.staged for item in received.values()] + prompt_uploads
        await self.bot.presenter.submit(interaction, prepared, uploads=uploads)

    @app_commands.command(name="imagine", description="Create four images from a prompt (and optionally an image)")
    @app_commands.describe(
        prompt="What to draw, then flags: --ar 3:2 --seed 7 --no text --steps 30 --cfg 7",
        image="Start from this image (img2img)",
        strength="How far to move away from the image: 0 keeps it, 1 ignores it (default 0.75)",
        model="Model to use (same as --model)",
        sampler="Sampler to use (same as --sampler)",
        control="ControlNet: follow this image's edges, depth or lines (--cw 0-2 sets how strongly)",
        control_mode="What to follow in the control image (default canny; raw: it already is a control map)",
        image_prompt="Prompt with this image too (IP-Adapter; --iw 0-2 sets how strongly, default 1)",
    )
    @app_commands.guild_only()
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        image: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.01, 1.0] | None = None,
        model: str | None = None,
        sampler: str | None = None,
        control: discord.Attachment | None = None,
        control_mode: Literal["canny", "depth", "lineart", "scribble", "raw"] | None = None,
        image_prompt: discord.Attachment | None = None,
    ) -> None:
        await self._queue(
            interaction,
            with_option_flags(prompt, model=model, sampler=sampler),
            image=image,
            strength=strength,
            control=control,
            control_mode=control_mode,
            image_prompt=image_prompt,
        )

    @app_commands.command(name="edit", description="Repaint part of an image: white in the mask is repainted")
    @app_commands.describe(
        image="The image to edit", mask="Same picture size: white = repaint, black = keep", prompt="What to paint"
    )
    @app_commands.guild_only()
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
    @app_commands.guild_only()
    async def sweep(
        self, interaction: discord.Interaction[Any], prompt: str, x: str, y: str | None = None, z: str | None = None
    ) -> None:
        sweeps = tuple(axis for axis in (x, y, z) if axis)
        await self._queue(interaction, prompt, sweeps=sweeps)

    @imagine.autocomplete("model")
    async def _complete_model(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return choices_matching(sorted(self.bot.service.member.models(actor_of(interaction))), current)

    @imagine.autocomplete("sampler")
    async def _complete_sampler(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        namespace = interaction.namespace
        samplers = await self.bot.service.member.samplers_for(
            actor_of(interaction), namespace.model, namespace.prompt or ""
        )
        return choices_matching(list(samplers), current)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(ImagineCog(bot))
