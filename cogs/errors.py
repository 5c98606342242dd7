"""One place that turns errors from slash commands into messages: ephemeral, and saying what to change.

It also answers commands that reach the bot outside a server (a direct message): every command is guild-only, but
a command list cached by an old client, or a user-installed context, can still deliver one.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import ImagineError, ServerOnlyError
from bot.core import NotModeratorError as CoreNotModeratorError

log = logging.getLogger(__name__)


class NotModeratorError(app_commands.CheckFailure):
    """A member without moderator rights tried a moderator command (the core's refusal, as a Discord check)."""

    def __init__(self) -> None:
        super().__init__(str(CoreNotModeratorError()))


async def send_error(interaction: discord.Interaction[Any], text: str) -> None:
    """Answer privately, whether or not the interaction was already acknowledged."""
    text = f"⚠️ {text}"[:2000]
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


class ErrorsCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self._previous = bot.tree.on_error
        self._previous_check = bot.tree.interaction_check
        bot.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]
        bot.tree.interaction_check = self.only_in_servers  # type: ignore[method-assign]

    async def cog_unload(self) -> None:
        self.bot.tree.on_error = self._previous  # type: ignore[method-assign]
        self.bot.tree.interaction_check = self._previous_check  # type: ignore[method-assign]

    async def only_in_servers(self, interaction: discord.Interaction[Any], /) -> bool:
        """The bot works inside servers only; a command from a direct message gets a friendly private answer."""
        if interaction.guild_id is not None:
            return True
        if interaction.type is discord.InteractionType.application_command:
            await send_error(interaction, str(ServerOnlyError()))
        return False

    async def on_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, ImagineError | app_commands.CheckFailure):
            await send_error(interaction, str(original))
            return
        if isinstance(original, app_commands.TransformerError):
            await send_error(interaction, f"`{original.value}` is not valid there: {original}")
            return
        log.error("command %s failed", interaction.command and interaction.command.qualified_name, exc_info=original)
        await send_error(interaction, "something went wrong on our side; nothing was charged. Try again in a minute")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(ErrorsCog(bot))
