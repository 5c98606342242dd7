"""Who is behind a Discord interaction, as the application core sees it: an Actor with its server's roles."""

from __future__ import annotations

from typing import Any

import discord

from bot.core import Actor, MemberRoles


def roles_of(interaction: discord.Interaction[Any]) -> MemberRoles | None:
    """The member's moderator-relevant permissions and roles in the interaction's server (None outside one)."""
    member, guild = interaction.user, interaction.guild
    if guild is None or not isinstance(member, discord.Member):
        return None
    permissions = member.guild_permissions
    return MemberRoles(
        manage_guild=permissions.manage_guild,
        administrator=permissions.administrator,
        is_owner=guild.owner_id == member.id,
        role_ids=tuple(role.id for role in member.roles),
        role_names=tuple(role.name for role in member.roles),
    )


def age_restricted(interaction: discord.Interaction[Any]) -> bool:
    """Whether the interaction's channel is marked age-restricted (NSFW); a thread is as its parent channel."""
    is_nsfw = getattr(interaction.channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def actor_of(interaction: discord.Interaction[Any]) -> Actor:
    """The member behind an interaction, in its server and channel (no server: a direct message)."""
    return Actor.discord(
        interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        interaction_id=interaction.id,
        roles=roles_of(interaction),
        nsfw=age_restricted(interaction),
    )
