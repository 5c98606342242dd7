"""``python -m bot run``: every configured surface in one process, on one service (one scheduler, one worker, one
engine): Discord when a token is set, the web server (web UI, native and A1111-compatible APIs, ``/metrics``)
when ``web.enabled``.

The web server's socket is bound before anything else starts, so an address in use or not allowed is one
configuration line (exit 2), not a traceback after the engine has loaded. When one surface stops for good (Discord
refuses the token) or a stop signal arrives (SIGINT, SIGTERM), every surface is stopped and the service closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError
from config.settings import Settings

if TYPE_CHECKING:
    import uvicorn

    from bot.application.service import ImagineService

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C and ``docker stop``: every surface stops, running jobs go back to the queue, the engine exits."""

DISCORD_OFF = (
    "Discord is off: no bot token is configured (IMAGINE_DISCORD_TOKEN, or discord_token in config/bot.toml); "
    "set one and restart to serve Discord too"
)


def bind_web_socket(settings: Settings) -> socket.socket:
    """The web server's listening socket. Raises ConfigError saying what to change (a port in use, an address
    this machine does not have)."""
    web = settings.web
    try:
        infos = socket.getaddrinfo(web.host, web.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"web.host {web.host!r} is not an address of this machine ({error.strerror})") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise ConfigError(
            f"the web server cannot listen on {web.host}:{web.port} ({reason}); set web.port to a free port, "
            "or web.enabled = false"
        ) from None
    return sock


def web_server(service: ImagineService, settings: Settings) -> uvicorn.Server:
    """A uvicorn server for the web app over ``service``, in this event loop, logging through the bot's logging."""
    import uvicorn

    from web.app import create_app

    class EmbeddedServer(uvicorn.Server):
        """uvicorn in the bot's loop: the bot handles stop signals for every surface (see serve_surfaces)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        create_app(service, settings),
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    return EmbeddedServer(config)


async def serve_surfaces(settings: Settings, token: str | None, web_socket: socket.socket | None) -> None:
    """Open the service, start what is configured, and run until a surface ends; then close everything.
    Raises FatalDiscordError when Discord refuses the bot."""
    from bot.application.service import ImagineService

    service = await ImagineService.open(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    running: list[asyncio.Task[Any]] = [_task(stop.wait(), "stop")]
    server = None
    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, stop.set)
    try:
        service.start(maintenance=True)
        if web_socket is not None:
            server = web_server(service, settings)
            running.append(_task(server.serve(sockets=[web_socket]), "web"))
            address = settings.web.address
            log.info("web UI and APIs at %s (API docs at %s/api/docs)", address, address)
            if not settings.web.local_only:
                log.warning(
                    "the web server listens on %s, reachable from other machines: put a reverse proxy with TLS in "
                    "front of it (README: Web UI and APIs)",
                    settings.web.host,
                )
        if token:
            running.append(_task(_discord(settings, token, service), "discord"))
        else:
            log.warning("%s", DISCORD_OFF)
        done, _pending = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a surface's fatal error (a rejected token) ends the run with it
        if stop.is_set():
            log.info("stopping (a stop signal arrived)")
    finally:
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)
        if server is not None:
            server.should_exit = True
        for task in running:
            if not task.done() and task.get_name() != "web":
                task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 10)
        await service.close()


async def _discord(settings: Settings, token: str, service: ImagineService) -> None:
    from bot.discord_surface.connection import serve_forever
    from bot.discord_surface.discord_bot import ImagineBot

    await serve_forever(settings, token, make_bot=lambda current: ImagineBot(current, service=service))


def _task(work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
    return asyncio.get_running_loop().create_task(work, name=name)
