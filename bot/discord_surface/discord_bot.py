"""The discord.py ``Bot`` subclass: wires the service to Discord and loads one cog per feature.

It also holds the durable delivery state (:mod:`bot.running.delivery`) the presenter records Discord posts in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.application.service import ImagineService
from bot.discord_surface.discord_setup import guild_sync_refused, log_startup_report
from bot.events import JobEvent
from bot.running.engine_supervisor import EngineSupervisor
from bot.running.waiting import ExternalWait, passthrough
from config.settings import Settings

if TYPE_CHECKING:
    from bot.running.delivery import Deliveries
    from cogs.presenter import Presenter

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.errors",
    "cogs.presenter",
    "cogs.imagine",
    "cogs.results",
    "cogs.member",
    "cogs.admin",
    "cogs.apikey",
    "cogs.blend",
    "cogs.describe",
)


class ImagineBot(commands.Bot):
    """The bot. ``engine`` lets a caller share an already running engine (tests do); ``service`` an open service
    (``run`` shares one between Discord and the web server; the bot then leaves it open when it closes)."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: EngineSupervisor | None = None,
        external_wait: ExternalWait = passthrough,
        service: ImagineService | None = None,
    ) -> None:
        intents = discord.Intents.default()
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True),
        )
        self.settings = settings
        self.external_wait = external_wait
        self._shared_engine = engine
        self._service: ImagineService | None = service
        self._owns_service = service is None
        """Whether this bot opened the service (and so closes it); ``run`` shares one with the web server."""
        self._unsubscribe: Callable[[], None] | None = None
        self.failed_extensions: dict[str, str] = {}
        self._reported_ready = False

    @property
    def service(self) -> ImagineService:
        if self._service is None:
            raise RuntimeError("the service is opened in setup_hook; it is not ready yet")
        return self._service

    @property
    def deliveries(self) -> Deliveries:
        """Which finished jobs' posts Discord accepted, which are pending, which were given up."""
        return self.service.deliveries

    @property
    def presenter(self) -> Presenter:
        """The cog that queues requests and shows jobs in Discord (every command and button submits through it)."""
        cog = self.get_cog("Presenter")
        if cog is None:
            raise RuntimeError("the presenter cog is not loaded")
        return cog  # type: ignore[return-value]

    async def _external_wait(self, awaitable: Any, *, reason: str) -> Any:
        return await self.external_wait(awaitable, reason=reason)

    async def setup_hook(self) -> None:
        if self._service is None:
            self._service = await ImagineService.open(
                self.settings, engine=self._shared_engine, external_wait=self._external_wait
            )
        self._unsubscribe = self._service.events.subscribe(self._relay_job_event)
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except Exception as error:  # a broken cog is logged, the rest of the bot still starts
                log.exception("could not load %s", extension)
                self.failed_extensions[extension] = f"{type(error).__name__}: {error}"
        self._service.start(maintenance=True)
        await self._sync_commands()

    async def _sync_commands(self) -> None:
        guild_id = self.settings.sync_guild_id
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                synced = await self.tree.sync(guild=guild)
            except discord.Forbidden:  # not in that server yet: say how to fix it and keep running
                log.error("%s", guild_sync_refused(guild_id, self.application_id))
                return
        else:
            synced = await self.tree.sync()
        log.info("synced %d application command(s)%s", len(synced), f" to guild {guild_id}" if guild_id else "")

    async def on_ready(self) -> None:
        """Once per start: one line with the bot's name and id and its servers, or the invite URL when it is in
        none (a gateway reconnect that fires ``on_ready`` again logs nothing)."""
        if not self._reported_ready:
            self._reported_ready = True
            log_startup_report(self)

    def _relay_job_event(self, event: JobEvent) -> None:
        self.dispatch("job_event", event)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._service is not None and self._owns_service:
            await self._service.close()
        await super().close()
