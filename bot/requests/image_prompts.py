"""Image prompts: the rules for the images a job is prompted with through an IP-Adapter. Pure: no I/O.

A request's image prompts are ``/imagine``'s ``image_prompt`` attachment, Discord image links at the start of the
prompt (as Midjourney takes them), or the images of ``/blend``. Preparation checks everything that needs no file:
how many there are, ``--iw``, the links (only ``https`` links to Discord's CDN, nothing else is ever fetched), and
the IP-Adapter the job's model uses (configured, of the model's family, its files on this machine), all before
anything is charged. Until the images are received the job's ``image_prompts`` hold placeholders: each link itself,
then ``""`` for each attachment; :func:`attach_image_prompts` puts the stored files in their place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bot.errors import PromptError
from bot.jobs import RenderParams
from bot.requests.image_prompt_limits import MAX_IMAGE_PROMPTS as MAX_IMAGE_PROMPTS
from bot.requests.image_prompt_limits import MAX_IMAGE_WEIGHT as MAX_IMAGE_WEIGHT
from config.ip_adapters import AdapterChoiceError, adapter_for, adapter_registry
from engine.ip_adapter_sources import adapter_problem

if TYPE_CHECKING:
    from bot.requests.preparation import Prepared
    from bot.requests.request_options import ImageInput
    from config.settings import Settings

DEFAULT_IMAGE_WEIGHT = 1.0
MAX_URL_CHARS = 2048
DISCORD_CDN_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")
ATTACHMENT_PATHS = ("/attachments/", "/ephemeral-attachments/")
_URL_LIKE = re.compile(r"^<?[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class UrlPolicy:
    """Which links may be fetched as image prompts: scheme, exact host names, ports, path prefixes, and whether
    the host must resolve to public addresses only (checked again when the link is fetched)."""

    hosts: tuple[str, ...] = DISCORD_CDN_HOSTS
    scheme: str = "https"
    ports: tuple[int, ...] = (443,)
    path_prefixes: tuple[str, ...] = ATTACHMENT_PATHS
    public_only: bool = True


DISCORD_CDN = UrlPolicy()
"""Image links in prompts: files uploaded to Discord, nothing else."""


def parse_image_weight(value: str, flag: str, limits: object = None) -> float:
    """``--iw X``: a number from 0 to 2 (the IP-Adapter's scale). Raises PromptError naming the valid form."""
    form = f"--iw X with X a number from 0 to {MAX_IMAGE_WEIGHT:g}, for example --iw 0.5"
    if not re.fullmatch(r"[+]?(\d{1,2}(\.\d{0,3})?|\.\d{1,3})", value):
        raise PromptError(f"`--{flag} {value}` is not valid: use {form}", flag=flag)
    weight = float(value)
    if not (math.isfinite(weight) and 0.0 <= weight <= MAX_IMAGE_WEIGHT):
        raise PromptError(f"`--{flag} {value}` is out of range: use {form}", flag=flag)
    return weight


def _shown(url: str) -> str:
    text = url.replace("`", "'")
    return text if len(text) <= 80 else text[:79] + "…"


def _refused(url: str, why: str) -> PromptError:
    return PromptError(
        f"`{_shown(url)}` cannot be an image prompt: {why}. Image links must be images uploaded to Discord "
        f"(https://cdn.discordapp.com/attachments/… or https://media.discordapp.net/attachments/…); "
        "or attach the image as image_prompt",
        flag="iw",
    )


def check_image_url(url: str, policy: UrlPolicy = DISCORD_CDN) -> str:
    """The link, normalised (lower-case host, no fragment), when ``policy`` allows fetching it. Raises PromptError
    for anything else: another scheme, host or port, user info, an IP address, a path outside Discord's
    attachments, characters a URL parser may read two ways (spaces, controls, backslashes, non-ASCII)."""
    if len(url) > MAX_URL_CHARS:
        raise _refused(url, f"it is longer than {MAX_URL_CHARS} characters")
    if any(not 0x21 <= ord(char) <= 0x7E for char in url) or "\\" in url:
        raise _refused(url, "it holds spaces, control, backslash or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused(url, "it is not a valid link") from None
    if parts.scheme.lower() != policy.scheme:
        raise _refused(url, f"only {policy.scheme}:// links are fetched")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _refused(url, "it carries a user name or password")
    host = parts.hostname or ""
    if host not in policy.hosts:
        raise _refused(url, f"{host or 'its host'} is not Discord's file server")
    if port is not None and port not in policy.ports:
        raise _refused(url, f"port {port} is not allowed")
    path = parts.path
    if not path.startswith(policy.path_prefixes) or "/../" in path or path.endswith("/.."):
        raise _refused(url, "it is not a Discord attachment")
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((policy.scheme, netloc, path, parts.query, ""))


def split_image_urls(text: str, policy: UrlPolicy = DISCORD_CDN) -> tuple[tuple[str, ...], str]:
    """The image links at the start of a prompt (each checked by :func:`check_image_url`, Discord's ``<…>`` taken
    off) and the rest of the prompt. Only the leading words that look like links (``scheme://…``) count; a link
    later in the prompt is text, and nothing but a checked link is ever fetched. Raises PromptError."""
    words = text.split(" ") if text else []
    urls: list[str] = []
    while words and _URL_LIKE.match(words[0]):
        word = words.pop(0)
        if word.startswith("<") and word.endswith(">"):
            word = word[1:-1]
        urls.append(check_image_url(word, policy))
    if len(urls) > MAX_IMAGE_PROMPTS:
        raise PromptError(f"a prompt takes at most {MAX_IMAGE_PROMPTS} image links; it has {len(urls)}", flag="iw")
    return tuple(urls), " ".join(words)


def image_prompt_adapter(settings: Settings, model_name: str, *, owner: bool = False) -> str:
    """The IP-Adapter a job of ``model_name`` takes image prompts through, checked: configured, of the model's
    family, its files on this machine. Raises PromptError (the owner is told paths, a member is not)."""
    adapters = adapter_registry(settings.ip_adapters)
    try:
        name = adapter_for(model_name, settings.registry[model_name], adapters)
    except AdapterChoiceError as error:
        raise PromptError(str(error), flag="model") from None
    problem = adapter_problem(adapters[name])
    if problem is not None:
        if owner:
            raise PromptError(
                f"the IP-Adapter `{name}` cannot be used: {problem}; fix [ip_adapters.{name}]", flag="model"
            )
        raise PromptError(
            f"image prompts are not available on this server right now (the IP-Adapter `{name}` is not on its "
            f"disk); the owner can fix [ip_adapters.{name}]",
            flag="model",
        )
    return name


def with_image_prompts(
    params: RenderParams,
    settings: Settings,
    *,
    urls: Sequence[str] = (),
    attachments: Sequence[ImageInput] = (),
    weight: float | None = None,
    owner: bool = False,
) -> RenderParams:
    """``params`` with its image prompts (the links, then the attachments: their stored files, or a placeholder
    for each one not received yet), their weight and the adapter they go through; unchanged without any. Raises
    PromptError: ``--iw`` without an image prompt, too many image prompts, no usable adapter for the model."""
    count = len(urls) + len(attachments)
    if count == 0:
        if weight is not None:
            raise PromptError(
                "--iw needs an image prompt: attach one as image_prompt or start the prompt with a Discord image link",
                flag="iw",
            )
        return params
    if count > MAX_IMAGE_PROMPTS:
        raise PromptError(f"a job takes at most {MAX_IMAGE_PROMPTS} image prompts; this asks for {count}", flag="iw")
    adapter = image_prompt_adapter(settings, params.model, owner=owner)
    return replace(
        params,
        image_prompts=(*urls, *(str(image.path) if image.path is not None else "" for image in attachments)),
        image_weight=DEFAULT_IMAGE_WEIGHT if weight is None else weight,
        ip_adapter=adapter,
    )


def pending_image_urls(prepared: Iterable[Prepared]) -> tuple[str, ...]:
    """The links a request's jobs still wait for (they are the same for every job of one request)."""
    for item in prepared:
        return tuple(entry for entry in item.params.image_prompts if "://" in entry)
    return ()


def awaited_image_prompts(prepared: Iterable[Prepared]) -> int:
    """How many image prompts (links and attachments) a request's jobs still wait for."""
    for item in prepared:
        return sum(1 for entry in item.params.image_prompts if entry == "" or "://" in entry)
    return 0


def check_image_prompts_received(prepared: Iterable[Prepared]) -> None:
    """Refuse, before anything is charged, jobs whose image prompts never arrived: a surface that takes no image
    prompts (the A1111 API) was given a prompt that starts with an image link."""
    if awaited_image_prompts(prepared):
        raise PromptError(
            "image prompts are not taken here; send the image with /imagine's image_prompt, /blend or the native "
            "API's image_prompts (and leave image links out of the prompt)",
            flag="iw",
        )


def attach_image_prompts(prepared: Iterable[Prepared], received: Sequence[ImageInput]) -> list[Prepared]:
    """The jobs with their received image prompts in place of the placeholders, in order (the links' images first,
    then the attachments). Raises PromptError when the count does not match what was announced."""
    attached: list[Prepared] = []
    for item in prepared:
        waiting = [index for index, entry in enumerate(item.params.image_prompts) if entry == "" or "://" in entry]
        if len(waiting) != len(received):
            raise PromptError(
                f"this request announced {len(waiting)} image prompt(s) but {len(received)} arrived; send it again"
            )
        paths: list[Any] = list(item.params.image_prompts)
        for index, image in zip(waiting, received, strict=True):
            if image.path is None:
                raise PromptError("an image prompt was not received; send the request again")
            paths[index] = str(image.path)
        attached.append(replace(item, params=replace(item.params, image_prompts=tuple(paths))))
    return attached
