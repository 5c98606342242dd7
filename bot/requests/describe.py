"""/describe's rules: whether this server can describe images, the job a request makes and what it costs, the
buttons' ``custom_id`` scheme, and which suggestions may be offered. Pure functions of the settings (no database, no
engine, no Discord).

A describe job renders nothing: the engine's captioning model reads the uploaded image and writes
:data:`~engine.describe_text.SUGGESTIONS` prompts. It is priced as one unit of work (one ``unit_pixels`` image at
``unit_steps``: 512x512 at 20 steps by default) times its kind multiplier (``describe``, 0.5 by default), so it costs
``min_cost`` (1 credit) in the fast lane, like the smallest job; relax is free as for every job.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

from bot.errors import ImagineError
from bot.jobs import Kind, RenderParams
from bot.requests.preparation import Prepared, random_seed
from bot.requests.request_options import ImageInput
from config.settings import Settings
from engine.describe_text import SUGGESTIONS
from engine.model_sources import TINY_PREFIX, source_kind

DESCRIBE_PROMPT = "describe this image"
"""What a describe job is called where a job's prompt is shown (queued line, posts, job lists)."""
DESCRIBE_PREFIX = "ibd"
DESCRIBE_TEMPLATE = rf"{DESCRIBE_PREFIX}:(?P<job>[0-9]{{1,19}}):(?P<index>[0-9])"
"""The ``custom_id`` of a suggestion's button: ``ibd:<job id>:<index>`` (persistent, at most 24 characters)."""
_DESCRIBE_ID = re.compile(rf"^{DESCRIBE_TEMPLATE}$")
TINY_CAPTIONERS = ("blip",)
"""The ``tiny:<name>`` captioning models the engine builds (see :mod:`engine.tiny_captioner`)."""
HUB_CONFIG_FILE = "config.json"


class DescribeUnavailableError(ImagineError):
    """This server cannot describe images now; the message says what the owner must do."""


def describe_problem(settings: Settings) -> str | None:
    """Why /describe cannot run on this server (for the member: no paths), or None. Cheap and torch-free: checked
    before anything is charged."""
    source = settings.describe.source.strip()
    if not source:
        return "/describe is turned off on this server ([describe] source is empty)"
    kind = source_kind(source)
    if kind == "tiny":
        if source.removeprefix(TINY_PREFIX) not in TINY_CAPTIONERS:
            return f"the describe model is not one this bot can build; the owner can use tiny:{TINY_CAPTIONERS[0]}"
        return None
    if kind == "folder":
        if _local_folder_problem(source):
            return "the describe model's folder is missing or incomplete; the owner must fix [describe] source"
        return None
    if kind == "single_file":
        return "the describe model must be a transformers folder or a hub id; the owner must fix [describe] source"
    if not _in_hub_cache(source):
        return (
            "the describe model is not downloaded on this server yet; the owner can fetch it with "
            f"`python -m engine.describe pull {source}`"
        )
    return None


def _local_folder_problem(source: str) -> bool:
    from pathlib import Path

    return not (Path(source).expanduser() / HUB_CONFIG_FILE).is_file()


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache  # light: no torch

    try:
        return isinstance(try_to_load_from_cache(repo_id, HUB_CONFIG_FILE), str)
    except ValueError:  # not a valid repo id
        return False


def check_describe(settings: Settings) -> None:
    """Raise DescribeUnavailableError when this server cannot describe images now."""
    problem = describe_problem(settings)
    if problem is not None:
        raise DescribeUnavailableError(problem)


def describe_work(settings: Settings) -> tuple[int, int, int]:
    """Width, height and steps of one unit of work (``unit_pixels`` at ``unit_steps``): what a describe job is
    priced as, one image of it."""
    side = max(1, math.isqrt(settings.credits.unit_pixels))
    return side, side, settings.credits.unit_steps


def prepare_describe(settings: Settings) -> Prepared:
    """The describe job of a request whose image is still to come (:func:`attach_describe_image` adds it). Raises
    DescribeUnavailableError; the caller checks access and the image."""
    check_describe(settings)
    width, height, steps = describe_work(settings)
    params = RenderParams(
        prompt=settings.describe.prompt,
        negative_prompt="",
        model="",
        width=width,
        height=height,
        steps=steps,
        cfg=0.0,
        seed=random_seed(),
        images=1,
        describe_model=settings.describe.source.strip(),
    )
    return Prepared(Kind.DESCRIBE, DESCRIBE_PROMPT, params)


def attach_describe_image(prepared: Prepared, image: ImageInput) -> Prepared:
    """The describe job with its received image."""
    if image.path is None:
        raise ValueError("attach a received image (one with a path)")
    return replace(prepared, params=replace(prepared.params, init_image=str(image.path)))


def make_describe_id(job_id: int, index: int) -> str:
    """The ``custom_id`` of suggestion ``index`` (0-based) of describe job ``job_id``."""
    if not 0 <= index < SUGGESTIONS:
        raise ValueError(f"a suggestion index is 0..{SUGGESTIONS - 1}, got {index}")
    if job_id < 0:
        raise ValueError(f"job id must not be negative, got {job_id}")
    return f"{DESCRIBE_PREFIX}:{job_id}:{index}"


def parse_describe_id(custom_id: str) -> tuple[int, int] | None:
    """The describe job id and suggestion index of a suggestion button, or None for anything else."""
    match = _DESCRIBE_ID.match(custom_id)
    if match is None:
        return None
    index = int(match.group("index"))
    return (int(match.group("job")), index) if index < SUGGESTIONS else None
