"""Fetching image links and receiving image prompts against a real HTTP server on this machine: the size and time
limits, no redirects, private addresses refused, every staged file dropped when anything fails."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from bot.actors import Actor
from bot.application.image_prompt_intake import fetch_image, receive_image_prompts
from bot.application.service import ImagineService
from bot.errors import ImagineError
from bot.requests.image_prompts import UrlPolicy
from bot.requests.request_options import ImageInput, RequestOptions
from bot.requests.uploads import UploadError, UploadLimits
from tests.conftest import make_settings

LIMITS = UploadLimits(max_bytes=4096)


def _png(color: str, size: tuple[int, int] = (48, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def _answer(body: bytes) -> web.Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="image/png")

    return handler


async def _moved(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("http://169.254.169.254/latest")


async def _slow(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"\x89PNG")
    await asyncio.sleep(1.5)
    return response


async def _chunked_large(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()  # no Content-Length: the size shows only as bytes arrive
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(10):
        await response.write(b"x" * 1024)
    return response


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """``http://127.0.0.1:PORT`` serving a PNG, a large file, a chunked large file, a redirect, a 404, a slow file."""
    app = web.Application()
    app.router.add_get("/attachments/fox.png", _answer(_png("red")))
    app.router.add_get("/attachments/big.png", _answer(b"x" * 8192))
    app.router.add_get("/attachments/chunked.png", _chunked_large)
    app.router.add_get("/attachments/moved.png", _moved)
    app.router.add_get("/attachments/slow.png", _slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _policy(address: str, *, host: str = "127.0.0.1", public_only: bool = False) -> UrlPolicy:
    return UrlPolicy(hosts=(host,), scheme="http", ports=(int(address.split(":")[1]),), public_only=public_only)


async def test_a_link_is_fetched_within_the_limits(server: str) -> None:
    data = await fetch_image(f"http://{server}/attachments/fox.png", LIMITS, policy=_policy(server))
    assert data == _png("red")


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("big.png", "the linked image is 8.0 KiB; the limit is 4 KiB"),
        ("chunked.png", "KiB; the limit is 4 KiB"),
        ("moved.png", "answered HTTP 302"),
        ("gone.png", "answered HTTP 404"),
        ("slow.png", "took longer than 0.5 s"),
    ],
)
async def test_a_link_past_a_limit_is_refused(server: str, path: str, fragment: str) -> None:
    """Too large (announced or as it arrives), redirected (never followed), missing, too slow."""
    with pytest.raises(UploadError) as caught:
        await fetch_image(f"http://{server}/attachments/{path}", LIMITS, policy=_policy(server), timeout_s=0.5)
    assert fragment in str(caught.value)


async def test_a_name_that_resolves_to_this_machine_is_not_fetched(server: str) -> None:
    """With public addresses only (as for Discord's hosts), a host name pointing at 127.0.0.1 fails to connect."""
    policy = _policy(server, host="localhost", public_only=True)
    with pytest.raises(UploadError, match="could not be downloaded"):
        await fetch_image(f"http://localhost:{server.split(':')[1]}/attachments/fox.png", LIMITS, policy=policy)


async def test_a_link_that_is_not_allowed_is_never_requested(server: str) -> None:
    """The fetch checks the link again: Discord's policy refuses a local server."""
    with pytest.raises(ImagineError, match="only https:// links"):
        await fetch_image(f"http://{server}/attachments/fox.png", LIMITS)


async def test_received_image_prompts_take_their_places_or_leave_nothing(tmp_path: Path, server: str) -> None:
    """A link's image, then the attachment, staged and attached in order; a failure drops what was staged."""
    settings = make_settings(tmp_path, database_path=tmp_path / "imagine.db")
    service = await ImagineService.open(settings)
    policy = _policy(server)
    try:
        actor = Actor.console()
        options = RequestOptions(image_prompts=(ImageInput.announced(),))
        [job] = await service.prepare(actor, "a fox --seed 1", options)
        link = f"http://{server}/attachments/fox.png"
        job = replace(job, params=replace(job.params, image_prompts=(link, "")))  # a link as a local policy allows

        async def fetch(url: str, limits: UploadLimits) -> bytes:
            return await fetch_image(url, limits, policy=policy)

        jobs, staged = await receive_image_prompts(service, [job], [_png("blue")], fetch=fetch)
        paths = jobs[0].params.image_prompts
        assert [Path(path).parent for path in paths] == [service.uploads_dir.resolve()] * 2
        assert len(staged) == 2 and all(item.staging_path.is_file() for item in staged)
        for item in staged:
            item.discard()

        with pytest.raises(UploadError, match="not an image this bot can read"):
            await receive_image_prompts(service, [job], [b"not an image"], fetch=fetch)
        assert list((service.uploads_dir / ".staging").iterdir()) == []
    finally:
        await service.close()
