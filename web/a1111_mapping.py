"""The AUTOMATIC1111 web UI's API in imaginebot's terms, and back: pure translations, no I/O.

An A1111 ``txt2img``/``img2img`` request becomes what every other surface hands the core: one prompt text per
iteration (``n_iter``) written with our flags (``--seed``, ``--steps``, ``--cfg``, ``--sampler``, ``--model``,
``--tile``, ``--no`` for the negative prompt), :class:`~bot.core.RequestOptions` (``size`` from width and height,
``images`` from ``batch_size``, the announced init image, mask and denoising strength) and a lane. Finished jobs
become A1111's ``info`` (a JSON string with its keys) and ``parameters`` (the request with its defaults filled).

Sampler names go both ways: A1111's labels (``Euler a``, ``DPM++ 2M Karras``; a ``scheduler`` such as ``Karras`` or
``SGM Uniform`` beside a label) name our samplers (``euler_a``, ``dpmpp_2m_karras``, ``euler_a_trailing``). Only
samplers the engine has are offered; an unknown one is refused with the names that exist.

A1111 fields that have no counterpart here (styles, override settings other than the checkpoint, face restoration,
hires fix, variation seeds, scripts, ...) are accepted and ignored, as A1111 ignores what it does not know. Fields
left out get this server's defaults (the member's /settings, then the model's), not A1111's: a distilled model
renders in 1-4 steps, and 512x512 is the wrong size for SDXL.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.core import ImageInput, ImageResult, Job, Lane, RequestOptions

MAX_SEED = 2**32 - 1
A1111_DEFAULT_SIDE = 512
"""What A1111 renders when a request gives only one of width and height: the other is 512."""
DEFAULT_STRENGTH = 0.75
"""A1111's ``denoising_strength`` for img2img when a request leaves it out."""
AUTOMATIC = "Automatic"
VERSION = "imaginebot"


class A1111RequestError(ValueError):
    """A request field this server cannot honour; ``code`` names the problem for programs, the message says what to
    send instead."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- requests ---------------------------------------------------------------------------------------------------


class Txt2ImgRequest(BaseModel):
    """A1111's ``StableDiffusionProcessingTxt2Img`` request as clients send it. Unknown fields are kept (they come
    back in ``parameters``) and otherwise ignored; fields left out get this server's defaults."""

    model_config = ConfigDict(extra="allow")

    prompt: str = ""
    negative_prompt: str | None = ""
    seed: int | None = Field(default=-1, description="-1: a random seed")
    sampler_name: str | None = Field(default=None, description="an A1111 sampler name, e.g. 'Euler a'")
    sampler_index: str | int | None = Field(default=None, description="older clients' sampler_name")
    scheduler: str | None = Field(default=None, description="'Automatic', 'Karras' or 'SGM Uniform'")
    batch_size: int | None = Field(default=1, ge=1, description="images per job (1 to the server's images per job)")
    n_iter: int | None = Field(default=1, ge=1, description="jobs, each charged (at most the server's jobs at once)")
    steps: int | None = Field(default=None, description="left out: the model's default")
    cfg_scale: float | None = Field(default=None, description="left out: the model's default")
    width: int | None = Field(default=None, description="left out with height: the model's size")
    height: int | None = Field(default=None, description="left out with width: the model's size")
    tiling: bool | None = None
    override_settings: dict[str, Any] | None = Field(
        default=None, description="only sd_model_checkpoint is used (this request's model)"
    )
    send_images: bool | None = True
    lane: str | None = Field(default=None, description="imaginebot: fast, relax or turbo (default: the member's)")
    styles: Any = None
    subseed: Any = None
    subseed_strength: Any = None
    seed_resize_from_h: Any = None
    seed_resize_from_w: Any = None
    restore_faces: Any = None
    enable_hr: Any = None
    denoising_strength: Any = None
    save_images: Any = None
    alwayson_scripts: Any = None
    script_name: Any = None
    script_args: Any = None


class Img2ImgRequest(Txt2ImgRequest):
    """A1111's ``StableDiffusionProcessingImg2Img`` request: a txt2img request plus the image to start from (the
    first of ``init_images``), an optional inpainting ``mask`` (white repaints) and ``denoising_strength``."""

    init_images: list[str] | None = Field(default=None, description="base64 or data: URI; the first one is used")
    mask: str | None = Field(default=None, description="base64 or data: URI; white is repainted")
    denoising_strength: float | None = Field(default=DEFAULT_STRENGTH, description="above 0 and at most 1")
    inpainting_mask_invert: int | bool | None = Field(default=0, description="1 is not supported: invert the mask")
    resize_mode: Any = None
    mask_blur: Any = None
    inpainting_fill: Any = None
    inpaint_full_res: Any = None
    inpaint_full_res_padding: Any = None
    image_cfg_scale: Any = None
    include_init_images: Any = None


# --- samplers -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class A1111Sampler:
    """One of our samplers in A1111's words: its label and its schedule type (empty: the sampler's usual one)."""

    name: str
    label: str
    schedule: str = ""


A1111_SAMPLERS: tuple[A1111Sampler, ...] = (
    A1111Sampler("euler_a", "Euler a"),
    A1111Sampler("euler", "Euler"),
    A1111Sampler("dpmpp_2m", "DPM++ 2M"),
    A1111Sampler("dpmpp_2m_karras", "DPM++ 2M Karras"),
    A1111Sampler("ddim", "DDIM"),
    A1111Sampler("unipc", "UniPC"),
    A1111Sampler("lcm", "LCM"),
    A1111Sampler("euler_a_trailing", "Euler a", "SGM Uniform"),
    A1111Sampler("euler_trailing", "Euler", "SGM Uniform"),
)
"""Every sampler the engine has (``engine/samplers.py``; a test keeps the two equal), in A1111's words."""

SCHEDULES: dict[str, str] = {"automatic": AUTOMATIC, "karras": "Karras", "sgm_uniform": "SGM Uniform"}
"""A1111 schedule types (``scheduler``) that name one of our samplers, by A1111's short name."""

K_ALIASES: dict[str, str] = {
    "k_euler_a": "Euler a",
    "k_euler_ancestral": "Euler a",
    "k_euler": "Euler",
    "k_dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_2m_ka": "DPM++ 2M Karras",
}
"""k-diffusion's names that older A1111 clients send, and the label each stands for."""

_LABEL_PAIRS: dict[str, tuple[str, str]] = {"DPM++ 2M Karras": ("DPM++ 2M", "Karras")}
"""Labels that name a sampler and its schedule together (A1111 before 1.9), as A1111 1.9+ writes them."""


def _pair(sampler: A1111Sampler) -> tuple[str, str]:
    """A sampler as A1111 1.9+ writes it: a label and a schedule type (``DPM++ 2M`` + ``Karras``)."""
    if sampler.label in _LABEL_PAIRS:
        return _LABEL_PAIRS[sampler.label]
    return sampler.label, sampler.schedule or AUTOMATIC


def _schedule_of(text: str | None) -> str | None:
    """A ``scheduler`` field as one of :data:`SCHEDULES`' labels; None for automatic. Raises A1111RequestError."""
    if text is None or not text.strip():
        return None
    key = text.strip().lower().replace(" ", "_")
    if key not in SCHEDULES:
        raise A1111RequestError(
            "unknown_scheduler",
            f"scheduler `{text}` is not available on this server; use one of: {', '.join(SCHEDULES.values())}",
        )
    label = SCHEDULES[key]
    return None if label == AUTOMATIC else label


def sampler_labels(available: Collection[str]) -> list[str]:
    """The A1111 sampler names of the samplers in ``available`` (our names), each once, in a stable order."""
    return list(dict.fromkeys(item.label for item in A1111_SAMPLERS if item.name in available))


def sampler_items(available: Collection[str]) -> list[dict[str, Any]]:
    """``GET /samplers``: A1111's ``{name, aliases, options}`` for each label; aliases are our names (what
    ``--sampler`` takes) and k-diffusion's, options the schedule a label implies."""
    items = []
    for label in sampler_labels(available):
        ours = [item.name for item in A1111_SAMPLERS if item.label == label and item.name in available]
        aliases = [alias for alias, aliased in K_ALIASES.items() if aliased == label]
        options = {"scheduler": _LABEL_PAIRS[label][1].lower()} if label in _LABEL_PAIRS else {}
        items.append({"name": label, "aliases": [*ours, *aliases], "options": options})
    return items


def resolve_sampler(
    sampler: str | int | None,
    scheduler: str | None,
    *,
    available: Collection[str],
    allowed: Collection[str] | None = None,
    model: str = "",
) -> str | None:
    """Our sampler name for A1111's ``sampler_name`` (or ``sampler_index``: a name, or an index into ``GET
    /samplers``) and ``scheduler``; None when the request names no sampler (the member's or model's default).

    ``available``: the engine's samplers; ``allowed``: the ones the request's ``model`` works with (empty or None:
    all). With the schedule left automatic, the label's variant the model allows is chosen, its usual schedule
    first (``Euler a`` on SD-Turbo is Euler a with SGM Uniform). Our own names (``euler_a_trailing``) are taken as
    they are. Raises A1111RequestError naming the samplers that exist."""
    labels = sampler_labels(available)
    if isinstance(sampler, int) and not isinstance(sampler, bool):
        if not 0 <= sampler < len(labels):
            raise A1111RequestError(
                "unknown_sampler", f"sampler index {sampler} is out of range; use 0 to {len(labels) - 1}: {labels}"
            )
        sampler = labels[sampler]
    wanted = _schedule_of(scheduler)
    text = "" if sampler is None else str(sampler).strip()
    if not text:
        if wanted is None:
            return None
        raise A1111RequestError(
            "unknown_sampler", f"scheduler `{scheduler}` needs a sampler_name; use one of: {', '.join(labels)}"
        )
    key = K_ALIASES.get(text.lower(), text).lower()
    ours = {item.name: item for item in A1111_SAMPLERS if item.name in available}
    named = [label for label in labels if label.lower() == key]
    if not named and key in ours:  # our own name (one that is no A1111 label): exactly that sampler
        candidates = [ours[key]]
        own_schedule = _pair(ours[key])[1]
        if wanted is not None and wanted != own_schedule:
            raise A1111RequestError(
                "unknown_scheduler",
                f"sampler `{text}` uses the {own_schedule} schedule; leave scheduler out or send {own_schedule}",
            )
    else:
        if not named:
            raise A1111RequestError(
                "unknown_sampler",
                f"sampler `{text}` is not available on this server; use one of: {', '.join(labels)}",
            )
        label, fixed = _LABEL_PAIRS.get(named[0], (named[0], None))
        if fixed is not None and wanted is not None and fixed != wanted:
            raise A1111RequestError(
                "unknown_scheduler", f"sampler `{text}` uses the {fixed} schedule; leave scheduler out or send {fixed}"
            )
        schedule = fixed or wanted
        variants = [item for item in ours.values() if _pair(item)[0] == label]
        candidates = [item for item in variants if schedule is None or _pair(item)[1] == schedule]
        candidates.sort(key=lambda item: _pair(item)[1] != AUTOMATIC)  # automatic: the usual schedule first
        if not candidates:
            schedules = dict.fromkeys([AUTOMATIC, *(_pair(item)[1] for item in variants)])
            raise A1111RequestError(
                "unknown_scheduler",
                f"sampler `{text}` has no {scheduler} schedule on this server; use scheduler {' or '.join(schedules)}",
            )
    usable = [item for item in candidates if not allowed or item.name in allowed]
    if not usable:
        works = [item for item in ours.values() if allowed and item.name in allowed]
        choices = ", ".join(
            item.label if _pair(item)[1] in (AUTOMATIC, "Karras") else f"{item.label} with scheduler {item.schedule}"
            for item in works
        )
        raise A1111RequestError(
            "unknown_sampler", f"sampler `{text}` does not work with model `{model}`; use {choices}"
        )
    return usable[0].name


def a1111_sampler(name: str) -> tuple[str, str]:
    """Our sampler name in A1111's words: its label (as our PNG files write it) and its schedule type
    (``Automatic`` when it is the sampler's usual one). An unknown name comes back as given."""
    for item in A1111_SAMPLERS:
        if item.name == name:
            if item.label == "DPM++ 2M Karras":
                return item.label, "Karras"
            return item.label, item.schedule or AUTOMATIC
    return name, AUTOMATIC


def scheduler_items() -> list[dict[str, Any]]:
    """``GET /schedulers``: the schedule types a ``scheduler`` field may name here."""
    return [
        {"name": name, "label": label, "aliases": None, "default_rho": 7.0 if name == "karras" else None,
         "need_inner_model": None}
        for name, label in SCHEDULES.items()
    ]  # fmt: skip


# --- models -------------------------------------------------------------------------------------------------------


def sd_model_item(name: str) -> dict[str, Any]:
    """``GET /sd-models``: one of our models as A1111 lists a checkpoint. Its title, name and file name are the
    model's name here (what ``--model`` takes); no hash is computed and no server path is shown."""
    return {"title": name, "model_name": name, "hash": None, "sha256": None, "filename": name, "config": None}


_TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]\s*$")
_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".bin")


def resolve_checkpoint(title: str, models: Sequence[str]) -> str:
    """Our model for an ``sd_model_checkpoint`` value: its title from ``GET /sd-models``, or an A1111 title of the
    same name (``name.safetensors [hash]``, a path). Raises A1111RequestError naming the models the member may use."""
    text = _TITLE_HASH.sub("", str(title)).strip()
    text = re.split(r"[\\/]", text)[-1]
    for extension in _EXTENSIONS:
        if text.lower().endswith(extension):
            text = text[: -len(extension)]
    for name in models:
        if name.lower() == text.lower():
            return name
    raise A1111RequestError(
        "unknown_model", f"model `{title}` is not available to you on this server; use one of: {', '.join(models)}"
    )


# --- a request in our words ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Translated:
    """An A1111 generation request as the core takes it: one prompt text per job (``n_iter``), the options they
    share (the image and mask only announced: the surface receives and attaches them), and the lane."""

    prompts: tuple[str, ...]
    options: RequestOptions
    lane: Lane | None
    sampler: str | None


def escape_prompt(text: str) -> str:
    """A1111 prompt text taken literally by our prompt syntax: braces are permutations here and backslashes their
    escapes, so both are escaped (A1111's own ``\\(`` escapes reach the engine as written)."""
    return text.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")


def format_cfg(value: float) -> str:
    """A CFG scale as ``--cfg`` takes it (at most three decimals)."""
    return f"{round(value, 3):.3f}".rstrip("0").rstrip(".")


def prompt_text(
    prompt: str,
    negative_prompt: str = "",
    *,
    seed: int | None = None,
    steps: int | None = None,
    cfg: float | None = None,
    sampler: str | None = None,
    model: str | None = None,
    tile: bool = False,
) -> str:
    """One job's prompt in our syntax: the text, then the flags; ``--no`` goes last (it takes every word after
    it). A negative prompt with no words in it is left out."""
    parts = [escape_prompt(prompt).strip()]
    if model is not None:
        parts.append(f"--model {model}")
    if sampler is not None:
        parts.append(f"--sampler {sampler}")
    if steps is not None:
        parts.append(f"--steps {steps}")
    if cfg is not None:
        parts.append(f"--cfg {format_cfg(cfg)}")
    if seed is not None:
        parts.append(f"--seed {seed}")
    if tile:
        parts.append("--tile")
    negative = negative_prompt or ""
    if any(part.strip() for part in negative.split(",")):
        parts.append(f"--no {escape_prompt(negative).strip()}")
    return " ".join(parts)


def iteration_seeds(seed: int | None, batch_size: int, n_iter: int) -> list[int | None]:
    """Each job's first seed: A1111's ``seed + index`` over every image of every iteration (so job ``i`` starts at
    ``seed + i * batch_size``); None for each when the seed is random (-1 or any negative)."""
    if seed is None or seed < 0:
        return [None] * n_iter
    return [(seed + index * batch_size) % (MAX_SEED + 1) for index in range(n_iter)]


def requested_size(width: int | None, height: int | None) -> tuple[int, int] | None:
    """The exact size asked for: None when neither side is given (the model's size), else A1111's 512 for a side
    left out."""
    if width is None and height is None:
        return None
    return (width or A1111_DEFAULT_SIDE, height or A1111_DEFAULT_SIDE)


def parse_lane(value: str | None) -> Lane | None:
    """The ``lane`` field; None: the member's default lane. Raises A1111RequestError."""
    if value is None or not value.strip():
        return None
    try:
        return Lane(value.strip().lower())
    except ValueError:
        raise A1111RequestError(
            "unknown_lane", f"lane `{value}` is not a lane; use one of: {', '.join(lane.value for lane in Lane)}"
        ) from None


def translate(
    request: Txt2ImgRequest,
    *,
    images_per_job: int,
    max_jobs: int,
    available_samplers: Collection[str],
    model_samplers: Collection[str] | None = None,
    model: str = "",
    model_override: str | None = None,
) -> Translated:
    """An A1111 generation request in our words (see the module's note). ``model`` is the model the jobs will use
    (for the samplers it allows); ``model_override`` the one the request itself names (``--model``). Raises
    A1111RequestError; the core checks everything else (limits of steps, CFG, size, credits, moderation)."""
    batch_size = request.batch_size or 1
    n_iter = request.n_iter or 1
    if not 1 <= batch_size <= images_per_job:
        raise A1111RequestError(
            "invalid_request", f"batch_size {batch_size} is out of range; a job makes 1 to {images_per_job} images"
        )
    if not 1 <= n_iter <= max_jobs:
        raise A1111RequestError(
            "invalid_request", f"n_iter {n_iter} is out of range; this server takes 1 to {max_jobs} jobs at once"
        )
    sampler = resolve_sampler(
        request.sampler_name if request.sampler_name not in (None, "") else request.sampler_index,
        request.scheduler,
        available=available_samplers,
        allowed=model_samplers,
        model=model,
    )
    options = RequestOptions(images=batch_size, size=requested_size(request.width, request.height))
    if isinstance(request, Img2ImgRequest):
        if not request.init_images:
            raise A1111RequestError("invalid_request", "img2img needs init_images: the image to start from")
        if request.mask and request.inpainting_mask_invert:
            raise A1111RequestError(
                "invalid_request",
                "inpainting_mask_invert is not supported here: send the mask inverted (white is repainted)",
            )
        strength = request.denoising_strength if request.denoising_strength is not None else DEFAULT_STRENGTH
        options = RequestOptions(
            image=ImageInput.announced(),
            mask=ImageInput.announced() if request.mask else None,
            strength=strength,
            images=options.images,
            size=options.size,
        )
    prompts = tuple(
        prompt_text(
            request.prompt,
            request.negative_prompt or "",
            seed=seed,
            steps=request.steps,
            cfg=request.cfg_scale,
            sampler=sampler,
            model=model_override,
            tile=bool(request.tiling),
        )
        for seed in iteration_seeds(request.seed, batch_size, n_iter)
    )
    return Translated(prompts, options, parse_lane(request.lane), sampler)


# --- finished jobs in A1111's words -------------------------------------------------------------------------------


def job_timestamp(when: float) -> str:
    """A1111's ``job_timestamp``: local time as ``YYYYmmddHHMMSS``."""
    return datetime.datetime.fromtimestamp(when).strftime("%Y%m%d%H%M%S")


def generation_info(
    finished: Sequence[tuple[Job, Sequence[ImageResult]]],
    infotexts: Sequence[str],
    *,
    batch_size: int,
    styles: Sequence[str] = (),
    failures: Sequence[str] = (),
) -> dict[str, Any]:
    """A1111's ``info`` (before it is made a JSON string) for the images of the completed jobs, in order, with
    ``infotexts`` the parameters text of each image. The first job's settings stand for the request, as in A1111.
    Beyond A1111's keys: ``job_ids`` (the jobs in the native API) and ``failures`` (why a job made no images)."""
    jobs = [job for job, _images in finished]
    first = jobs[0]
    params = first.params
    images = [(job, image) for job, found in finished for image in found]
    label, schedule = a1111_sampler(params.sampler)
    extra: dict[str, Any] = {}
    if schedule not in (AUTOMATIC, "Karras"):
        extra["Schedule type"] = schedule
    strength = params.strength if first.kind.value in ("img2img", "inpaint") else None
    return {
        "prompt": params.prompt,
        "all_prompts": [job.params.prompt for job, _image in images],
        "negative_prompt": params.negative_prompt,
        "all_negative_prompts": [job.params.negative_prompt for job, _image in images],
        "seed": images[0][1].seed if images else params.seed,
        "all_seeds": [image.seed for _job, image in images],
        "subseed": -1,
        "all_subseeds": [-1 for _ in images],
        "subseed_strength": 0,
        "width": images[0][1].width if images else params.width,
        "height": images[0][1].height if images else params.height,
        "sampler_name": label,
        "scheduler": schedule,
        "cfg_scale": params.cfg,
        "steps": params.steps,
        "batch_size": batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": params.model,
        "sd_model_hash": None,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": strength,
        "extra_generation_params": extra,
        "index_of_first_image": 0,
        "infotexts": list(infotexts),
        "styles": list(styles),
        "job_timestamp": job_timestamp(first.started_at or first.created_at),
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": VERSION,
        "job_ids": [job.id for job in jobs],
        "failures": list(failures),
    }


def filled_parameters(request: Txt2ImgRequest, first: Job) -> dict[str, Any]:
    """A1111's ``parameters``: the request as received (unknown fields too) with what it left out filled in from
    the job that was made; the images sent are not echoed back (as A1111 without ``include_init_images``)."""
    values = request.model_dump()
    params = first.params
    label, schedule = a1111_sampler(params.sampler)
    filled = {
        "steps": params.steps,
        "cfg_scale": params.cfg,
        "width": params.width,
        "height": params.height,
        "sampler_name": label,
        "scheduler": schedule,
        "batch_size": params.images,
        "n_iter": 1,
        "negative_prompt": "",
        "seed": -1,
        "tiling": params.tile,
        "lane": first.lane.value,
    }
    for key, value in filled.items():
        if values.get(key) is None:
            values[key] = value
    if "init_images" in values:
        values["init_images"] = None
        values["mask"] = None
        if values.get("denoising_strength") is None:
            values["denoising_strength"] = params.strength
    return values


# --- progress -----------------------------------------------------------------------------------------------------


def progress_and_eta(step: int, total: int, elapsed_s: float) -> tuple[float, float]:
    """A running job's progress (0 to 1) and A1111's ``eta_relative`` (seconds left, from the pace so far; 0 until
    the first step is in)."""
    if total <= 0 or step <= 0:
        return 0.0, 0.0
    fraction = min(step / total, 1.0)
    return fraction, max(elapsed_s / fraction - elapsed_s, 0.0)


# --- image metadata -----------------------------------------------------------------------------------------------

_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def parse_infotext(text: str) -> dict[str, Any]:
    """A1111's parsed parameters text: ``Prompt``, ``Negative prompt`` and each ``Key: value`` of the last line,
    ``Size`` as ``Size-1`` and ``Size-2``, quoted values unquoted; values stay text, as A1111 gives them."""
    parsed: dict[str, Any] = {}
    if not text.strip():
        return parsed
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:") or negative:
            negative.append(line.removeprefix("Negative prompt:").strip() if not negative else line)
        else:
            prompt.append(line)
    parsed["Prompt"] = "\n".join(prompt)
    parsed["Negative prompt"] = "\n".join(negative)
    for key, value in _PARAM.findall(last):
        value = value.strip()
        if len(value) > 1 and value[0] == '"' and value[-1] == '"':
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        size = _SIZE.match(value) if isinstance(value, str) else None
        if size is not None:
            parsed[f"{key}-1"] = size.group(1)
            parsed[f"{key}-2"] = size.group(2)
        else:
            parsed[key] = value
    return parsed


def text_items(info: Mapping[str, Any]) -> dict[str, str]:
    """An image's text entries besides ``parameters`` (A1111's ``items``)."""
    return {str(key): value for key, value in info.items() if isinstance(value, str) and key != "parameters"}
