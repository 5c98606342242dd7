"""/admin: moderator commands. Visible to Manage Server by default, and checked again at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import ImagineError
from bot.permissions import is_moderator
from cogs.errors import NotModeratorError

if TYPE_CHECKING:
    from bot.discord_bot import ImagineBot


def member_is_moderator(interaction: discord.Interaction[Any], moderator_roles: list[str]) -> bool:
    member = interaction.user
    guild = interaction.guild
    if guild is None or not isinstance(member, discord.Member):
        return False
    permissions = member.guild_permissions
    return is_moderator(
        manage_guild=permissions.manage_guild,
        administrator=permissions.administrator,
        is_owner=guild.owner_id == member.id,
        role_ids=[role.id for role in member.roles],
        role_names=[role.name for role in member.roles],
        moderator_roles=moderator_roles,
    )


def _split(words: str) -> list[str]:
    return [part.strip() for part in words.split(",") if part.strip()]


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="admin", group_description="Moderate the image bot"):
    blocklist = app_commands.Group(name="blocklist", description="Words prompts may not contain")
    channels = app_commands.Group(name="channels", description="Where the bot may be used")

    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:  # type: ignore[override]
        if not member_is_moderator(interaction, self.bot.settings.moderator_roles):
            raise NotModeratorError()
        return True

    @blocklist.command(name="add", description="Block words or phrases (comma separated)")
    @app_commands.describe(words="for example: gore, blood", reason="why (kept in the audit log)")
    async def blocklist_add(self, interaction: discord.Interaction[Any], words: str, reason: str = "") -> None:
        assert interaction.guild_id is not None
        added = await self.bot.service.moderation.block(
            interaction.guild_id, _split(words), actor_id=interaction.user.id, reason=reason
        )
        text = f"Blocked: {', '.join(f'`{w}`' for w in added)}" if added else "Those words were already blocked."
        await interaction.response.send_message(text, ephemeral=True)

    @blocklist.command(name="remove", description="Unblock words or phrases (comma separated)")
    async def blocklist_remove(self, interaction: discord.Interaction[Any], words: str, reason: str = "") -> None:
        assert interaction.guild_id is not None
        removed = await self.bot.service.moderation.unblock(
            interaction.guild_id, _split(words), actor_id=interaction.user.id, reason=reason
        )
        text = f"Unblocked: {', '.join(f'`{w}`' for w in removed)}" if removed else "None of those were blocked."
        await interaction.response.send_message(text, ephemeral=True)

    @blocklist.command(name="list", description="Show the blocked words")
    async def blocklist_list(self, interaction: discord.Interaction[Any]) -> None:
        assert interaction.guild_id is not None
        words = await self.bot.service.moderation.blocked(interaction.guild_id)
        text = ("Blocked: " + ", ".join(f"`{w}`" for w in words)) if words else "The blocklist is empty."
        await interaction.response.send_message(text[:2000], ephemeral=True)

    @channels.command(name="allow", description="Allow the bot in a channel (then only allowed channels work)")
    async def channels_allow(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel, reason: str = ""
    ) -> None:
        await self._set_channel(interaction, channel, allowed=True, reason=reason)

    @channels.command(name="deny", description="Keep the bot out of a channel")
    async def channels_deny(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel, reason: str = ""
    ) -> None:
        await self._set_channel(interaction, channel, allowed=False, reason=reason)

    async def _set_channel(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel, *, allowed: bool, reason: str
    ) -> None:
        assert interaction.guild_id is not None
        if channel.guild.id != interaction.guild_id:
            raise ImagineError("that channel is not in this server")
        await self.bot.service.moderation.set_channel(
            interaction.guild_id, channel.id, allowed=allowed, actor_id=interaction.user.id, reason=reason
        )
        verb = "allowed in" if allowed else "kept out of"
        await interaction.response.send_message(f"The image bot is now {verb} {channel.mention}.", ephemeral=True)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(AdminCog(bot))
