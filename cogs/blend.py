"""/blend: 2 to 5 attached images mixed into a grid through the IP-Adapter. Every refusal that needs no download
(how many images, the shape, the member's model and its adapter, access, sizes) is answered privately before
anything is downloaded or charged; the presenter then charges, queues and shows the job like any other."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import BLEND_DIMENSIONS, ImagineError, check_byte_size
from bot.discord_surface.discord_setup import check_delivery_permissions
from cogs.actors import actor_of
from cogs.imagine import read_attachment
from cogs.posts import MAX_CONTENT

if TYPE_CHECKING:
    from bot.discord_surface.discord_bot import ImagineBot

log = logging.getLogger(__name__)

DIMENSION_CHOICES = [
    app_commands.Choice(name=f"{name} ({width}:{height})", value=name)
    for name, (width, height) in BLEND_DIMENSIONS.items()
]


class BlendCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    @app_commands.command(name="blend", description="Mix 2 to 5 images into four new ones")
    @app_commands.describe(
        image1="First image",
        image2="Second image",
        image3="Third image (optional)",
        image4="Fourth image (optional)",
        image5="Fifth image (optional)",
        dimensions="Shape of the result: portrait 2:3, square 1:1 (default) or landscape 3:2",
    )
    @app_commands.choices(dimensions=DIMENSION_CHOICES)
    @app_commands.guild_only()
    async def blend(
        self,
        interaction: discord.Interaction[Any],
        image1: discord.Attachment,
        image2: discord.Attachment,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        dimensions: str = "square",
    ) -> None:
        service = self.bot.service
        limits = service.upload_limits
        images = [image for image in (image1, image2, image3, image4, image5) if image is not None]
        try:
            prepared = await service.image_prompts.prepare_blend(actor_of(interaction), len(images), dimensions)
            check_delivery_permissions(interaction)
            for number, image in enumerate(images, start=1):
                check_byte_size(image.size, limits, what=f"image {number}")
        except ImagineError as error:
            await interaction.response.send_message(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        try:
            data = [await read_attachment(image, limits, f"image {number}") for number, image in enumerate(images, 1)]
            prepared, uploads = await service.image_prompts.receive(prepared, data)
        except ImagineError as error:
            await interaction.followup.send(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
            return
        await self.bot.presenter.submit(interaction, prepared, uploads=uploads)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(BlendCog(bot))
