"""/blend and image prompts for every surface (:class:`ImagePromptActions`, the service's ``image_prompts``), and
receiving a request's image prompts: the Discord image links preparation checked are fetched (``https`` to Discord's
CDN only, public addresses only, no redirects, with a byte limit and a time limit), the attached images are taken as
they came, and each is checked and staged by :meth:`~bot.application.service.ImagineService.receive_image` like any
upload before it takes its place in the jobs (:func:`~bot.requests.image_prompts.attach_image_prompts`).

Nothing here decides what may be fetched: a link reaches :func:`fetch_image` only after
:func:`~bot.requests.image_prompts.check_image_url` passed it, and is checked again there.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.application.telemetry import ServicePart, counting_refusals
from bot.requests.blend import prepare_blend
from bot.requests.image_prompts import DISCORD_CDN, UrlPolicy, attach_image_prompts, check_image_url, pending_image_urls
from bot.requests.upload_store import StagedUpload
from bot.requests.uploads import UploadError, UploadLimits, check_byte_size

if TYPE_CHECKING:
    from bot.actors import Actor
    from bot.application.service import ImagineService, ReceivedImage
    from bot.requests.preparation import Prepared

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 20.0
"""The longest one image link may take, from connecting to the last byte."""
CHUNK_BYTES = 64 * 1024
USER_AGENT = "imaginebot (image prompt)"

ImageFetcher = Callable[[str, UploadLimits], Awaitable[bytes]]
"""Fetches one checked link within the upload limits (what :func:`receive_image_prompts` uses to get a link)."""


class PublicResolver(AbstractResolver):
    """Name resolution that gives only public (global) addresses: a host name that points into this machine or the
    private network (DNS rebinding, a poisoned record) fails to connect instead."""

    def __init__(self) -> None:
        self._resolver = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        public = [entry for entry in found if ipaddress.ip_address(entry["host"]).is_global]
        if not public:
            raise OSError(f"{host} does not resolve to a public address")
        return public

    async def close(self) -> None:
        await self._resolver.close()


async def fetch_image(
    url: str, limits: UploadLimits, *, policy: UrlPolicy = DISCORD_CDN, timeout_s: float = FETCH_TIMEOUT_S
) -> bytes:
    """The bytes behind a checked image link. Raises UploadError saying what went wrong: the link is not allowed
    (checked again), the server refused or redirected, the file is larger than an upload may be (by its announced
    length before reading, and by what really arrives), or it took longer than ``timeout_s``."""
    url = check_image_url(url, policy)
    connector = aiohttp.TCPConnector(resolver=PublicResolver() if policy.public_only else None, force_close=True)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session,
            session.get(url, allow_redirects=False, headers={"User-Agent": USER_AGENT}) as response,
        ):
            if response.status != 200:
                raise UploadError(
                    f"the image link answered HTTP {response.status}; Discord links expire, so upload the image as "
                    "image_prompt instead"
                )
            if response.content_length is not None:
                check_byte_size(response.content_length, limits, what="linked image")
            data = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                data += chunk
                if len(data) > limits.max_bytes:
                    check_byte_size(len(data), limits, what="linked image")
    except TimeoutError:
        raise UploadError(
            f"the image link took longer than {timeout_s:g} s to download; upload the image as image_prompt instead"
        ) from None
    except aiohttp.ClientError as error:
        log.info("an image link could not be fetched: %s", error)
        raise UploadError("the image link could not be downloaded; upload the image as image_prompt instead") from None
    check_byte_size(len(data), limits, what="linked image")
    return bytes(data)


async def receive_image_prompts(
    service: ImagineService,
    prepared: Sequence[Prepared],
    attached: Sequence[bytes] = (),
    *,
    fetch: ImageFetcher | None = None,
) -> tuple[list[Prepared], list[StagedUpload]]:
    """The request's jobs with their image prompts in place (the links' images, then ``attached``, in order) and the
    staged uploads to hand to ``submit``. Everything staged is discarded when anything fails. Raises ImagineError
    (UploadError, PromptError) saying what to send instead."""
    fetcher = fetch or (lambda url, limits: fetch_image(url, limits))
    received: list[ReceivedImage] = []
    try:
        for url in pending_image_urls(prepared):
            received.append(await service.receive_image(await fetcher(url, service.upload_limits)))
        for data in attached:
            received.append(await service.receive_image(data))
        jobs = attach_image_prompts(prepared, [item.input for item in received])
    except BaseException:
        for item in received:
            item.staged.discard()
        raise
    return jobs, [item.staged for item in received]


class ImagePromptActions(ServicePart):
    """/blend and image prompts for every surface: prepare a blend, receive a request's image prompts."""

    @counting_refusals
    async def prepare_blend(self, actor: Actor, images: int, dimensions: str = "square") -> list[Prepared]:
        """The /blend job mixing ``images`` images (announced: :meth:`receive` adds them) in ``dimensions``, on the
        member's model (their /settings apply), checked and moderated like any request. Raises ImagineError saying
        what to change."""
        service = self._service
        await service._check_access(actor)
        preferences = None if actor.is_console else await service.preferences.get(actor.user_id)
        prepared = prepare_blend(service.settings, images, dimensions, preferences, owner=actor.is_console)
        return await service._moderated(actor, prepared)

    @counting_refusals
    async def receive(
        self, prepared: Sequence[Prepared], attached: Sequence[bytes] = (), *, fetch: ImageFetcher | None = None
    ) -> tuple[list[Prepared], list[StagedUpload]]:
        """:func:`receive_image_prompts` on this service: the jobs with their image prompts (the prompt's Discord
        links fetched, then ``attached``) and the staged uploads for ``submit``."""
        return await receive_image_prompts(self._service, prepared, attached, fetch=fetch)
