"""/apikey: a member's own key for the web UI and the APIs, shown once and only to them.

Each /apikey makes a new key for the member with this server's rules and revokes the key /apikey gave them before
(keys the owner made stay). The key appears only in the ephemeral answer: never in a log line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import BannedError, ImagineError, IssuedKey
from cogs.actors import actor_of

if TYPE_CHECKING:
    from bot.discord_surface.discord_bot import ImagineBot

log = logging.getLogger(__name__)

WEB_OFF = "the web UI and its APIs are turned off on this bot; ask the owner if you need them"


def key_message(issued: IssuedKey, web_address: str) -> str:
    """The private answer: the key, that it is shown once, how to use it and where the web UI is."""
    return "\n".join(
        [
            "Your new API key (shown only once: copy it now; any key /apikey gave you before no longer works):",
            f"```\n{issued.secret}\n```",
            "Use it as the header `Authorization: Bearer <key>`, or as the password of HTTP Basic (any user name) "
            "in A1111 clients.",
            f"Web UI: {web_address}",
            "It acts as you (your credits, tier and limits, with this server's rules): keep it secret. "
            "Run /apikey again to replace it.",
        ]
    )


class ApiKeyCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="apikey", description="Get a key for the web UI and APIs (shown once; replaces your previous one)"
    )
    @app_commands.guild_only()
    async def apikey(self, interaction: discord.Interaction[Any]) -> None:
        web = self.bot.settings.web
        if not web.enabled:
            raise ImagineError(WEB_OFF)
        actor = actor_of(interaction)
        service = self.bot.service
        if (await service.member.overview(actor)).banned:
            raise BannedError()
        issued = await service.keys.rotate_own(actor)
        log.info(
            "member %d made API key %s for server %s", actor.user_id, issued.identity.key_id, issued.identity.guild_id
        )
        await interaction.response.send_message(key_message(issued, web.address), ephemeral=True)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(ApiKeyCog(bot))
