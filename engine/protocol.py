"""The plain messages the bot and the engine process exchange. No torch here: both sides import this.

The seam is narrow on purpose: the bot submits a batch, streams its events (heartbeat, progress, result,
failure), cancels a job, and learns the engine's capacity from ``EngineReady``. The engine writes every file a job
ends with (each image and the grid, with their metadata); a result carries their paths and, when asked (an engine
on a host with no shared disk), their bytes too, so the bot never decodes or encodes an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from engine.engine_setup import ControlNetEntry as ControlNetEntry  # re-exported: the start-up configuration
from engine.engine_setup import EngineConfig as EngineConfig
from engine.engine_setup import IpAdapterEntry as IpAdapterEntry
from engine.engine_setup import LoraEntry as LoraEntry
from engine.engine_setup import MemoryOptions as MemoryOptions
from engine.engine_setup import ModelEntry as ModelEntry


class TaskKind(StrEnum):
    """What the engine renders for a :class:`RenderTask`."""

    TXT2IMG = "txt2img"
    """A fresh image from a prompt."""
    IMG2IMG = "img2img"
    """A prompt and a source image (``init_image``, ``strength``)."""
    INPAINT = "inpaint"
    """Repaint the white part of ``mask_image`` on ``init_image``."""
    VARIATION = "variation"
    """``init_image`` redrawn with new seeds."""
    UPSCALE = "upscale"
    """``init_image`` at ``upscale_factor`` times its size."""
    ZOOM = "zoom"
    """``init_image`` outpainted on a canvas ``zoom`` times larger."""
    PAN = "pan"
    """``init_image`` extended towards ``pan``."""
    SWEEP = "sweep"
    """One image per combination of the ``sweep`` axes, in one labelled grid."""
    DESCRIBE = "describe"
    """Prompts that could have made ``init_image`` (:attr:`TaskDone.suggestions`), by ``describe_model``."""
    CONTROL = "control"
    """txt2img steered by ``control_image`` through the ControlNet ``controlnet`` (img2img with ``init_image``)."""


class FailureReason(StrEnum):
    """Why a task failed (:class:`TaskFailed`)."""

    OOM = "oom"
    """The device ran out of memory; the message says which memory setting helps."""
    BAD_INPUT = "bad_input"
    """The task asked for something the engine refuses (a size, a path outside the data folder, an unreadable image)."""
    CANCELLED = "cancelled"
    """Cancelled before or while it rendered."""
    TIMEOUT = "timeout"
    """The bot gave up waiting for it (set by the bot's supervisor, never sent by the engine)."""
    INTERNAL = "internal"
    """Anything else: a bug or a library error, with its type and message."""


class Lane(StrEnum):
    """Priority lanes, in order of service: turbo first, then fast, then relax."""

    TURBO = "turbo"
    FAST = "fast"
    RELAX = "relax"


@dataclass(frozen=True)
class RenderTask:
    """One job's worth of work: ``len(seeds)`` images of one prompt."""

    job_id: int
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    cfg: float
    seeds: tuple[int, ...]
    sampler: str
    output_dir: str
    kind: TaskKind = TaskKind.TXT2IMG
    return_bytes: bool = False
    """Send the finished files' contents in :class:`TaskDone` too (for a bot with no access to this disk)."""
    model: str = ""
    """Registry name of the model; empty means the engine's start-up model."""
    init_image: str = ""
    """Path of the source image (img2img, inpaint, variation, upscale, zoom, pan)."""
    mask_image: str = ""
    """Path of the inpaint mask: white is repainted, black is kept."""
    strength: float = 0.75
    """How far img2img, variation and upscale move away from the source (0 keeps it, 1 ignores it)."""
    zoom: float = 2.0
    """Zoom-out factor (1.5 or 2)."""
    pan: str = ""
    """Pan direction: left, right, up or down."""
    upscale_factor: float = 2.0
    sweep: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Up to three axes, e.g. ``(("cfg", ("3", "5", "7")),)``; a sweep renders one image per combination."""
    tile: bool = False
    """Seamless texture (``--tile``): the image wraps around at its edges."""
    tile_vae: bool = False
    """Decode with a tiled VAE (large outputs); upscale turns it on by itself above 1024²."""
    weighted_prompts: tuple[tuple[str, float], ...] = ()
    """A multi-prompt (``a cat:: a dog::2``): each part's text and weight, negative weights pushing away like
    ``--no``; empty for a plain prompt (see :mod:`engine.prompt_weights`)."""
    chaos: int = 0
    """``--chaos`` 0 to 100: each image's CFG scale and part weights jittered from its seed."""
    stop: int = 100
    """``--stop`` 10 to 100: the percentage of the denoising steps that run before the image is decoded."""
    describe_model: str = ""
    """/describe's image-captioning model: ``tiny:blip``, a transformers folder, or a hub id in the local cache."""
    image_prompts: tuple[str, ...] = ()
    """Paths of images that prompt the render through the IP-Adapter ``ip_adapter`` (their embeddings averaged)."""
    image_weight: float = 1.0
    """How strongly the image prompts steer (``--iw``, 0 to 2: the adapter's scale)."""
    ip_adapter: str = ""
    """Registry name of the IP-Adapter the image prompts go through."""
    safety_check: bool = False
    """Check every rendered image with the engine's safety classifier before its files are reported
    (:attr:`TaskDone.safety`)."""
    control_image: str = ""
    """ControlNet: path of the control image, turned into a ``control_mode`` map by the engine."""
    control_mode: str = ""
    """ControlNet: canny, depth, lineart, scribble or raw (see :mod:`engine.control_maps`)."""
    control_weight: float = 1.0
    """ControlNet: how strongly the map steers (``--cw``, 0 to 2: ``controlnet_conditioning_scale``)."""
    controlnet: str = ""
    """ControlNet: registry name of the ControlNet."""


BatchKey = tuple[str, int, int, int, float, str, bool, bool]
"""What txt2img tasks share to run as one pipeline call: model, width, height, steps, cfg, sampler, whether there
is a negative prompt, tile."""


class BatchFields(Protocol):
    """What the batch rule reads: a :class:`RenderTask`, or the bot's parameters of a job before it is one."""

    prompt: str
    negative_prompt: str
    model: str
    width: int
    height: int
    steps: int
    cfg: float
    sampler: str
    tile: bool
    weighted_prompts: tuple[tuple[str, float], ...]
    chaos: int
    stop: int


def batch_key_of(kind: TaskKind, fields: BatchFields) -> BatchKey | None:
    """Tasks with equal keys run as one pipeline call; None for a task that must run alone.

    Only txt2img batches, and only without LoRA tags (``<lora:name:weight>`` loads weights for the whole call) or
    image prompts (the IP-Adapter's embeddings and scale are the whole call's).
    The one rule for both sides: the engine groups a batch by it, and the bot's dispatcher picks jobs by it (on a
    job's parameters, without building its task), so the bot never sends a batch the engine would split.
    """
    if kind != TaskKind.TXT2IMG or "<lora:" in fields.prompt or getattr(fields, "image_prompts", ()):
        return None
    if fields.weighted_prompts or fields.chaos or fields.stop < 100:  # per-image conditioning, CFG, an early stop
        return None
    return (
        fields.model,
        fields.width,
        fields.height,
        fields.steps,
        fields.cfg,
        fields.sampler,
        bool(fields.negative_prompt),
        fields.tile,
    )


def batch_key(task: RenderTask) -> BatchKey | None:
    """:func:`batch_key_of` a task."""
    return batch_key_of(task.kind, task)


COMPACT_ABOVE_BYTES = 10 * 1024 * 1024
"""The largest grid a chat surface posts as it is (uploads of about 10 MiB are accepted): a grid JPEG is kept under
it (lower quality, then smaller, only when needed), and a sweep's sheet PNG above it gets a JPEG copy of at most this
size beside it (same name, ``.jpg``)."""

HEARTBEAT_S = 5.0
"""How often, by default, the engine says which jobs it holds (see :class:`Heartbeat`)."""


@dataclass(frozen=True)
class RenderBatch:
    """Tasks the engine may run together; each task reports on its own."""

    tasks: tuple[RenderTask, ...]
    heartbeat_s: float = HEARTBEAT_S
    """Send a :class:`Heartbeat` for each task this often until its result; 0 sends one only when its phase changes."""


@dataclass(frozen=True)
class Cancel:
    """Stop a job of a batch this engine holds; a Cancel for a job it does not hold is ignored."""

    job_id: int


@dataclass(frozen=True)
class Shutdown:
    """Finish nothing more and exit cleanly."""


@dataclass(frozen=True)
class EngineReady:
    """The model is loaded; the engine takes work from now on."""

    model_name: str
    device: str
    dtype: str
    torch_version: str
    diffusers_version: str
    max_batch: int
    load_seconds: float
    speed: tuple[str, ...] = ()
    """What makes the start-up model fast, e.g. ``("bf16", "sdpa", "tf32", "compiled (regional)")``."""


STARTING_IMPORTING = "importing"
STARTING_DOWNLOADING = "downloading"
STARTING_LOADING = "loading"
STARTING_COMPILING = "compiling"


@dataclass(frozen=True)
class EngineStarting:
    """What the engine does on its way to :class:`EngineReady`: ``importing`` (torch, diffusers), ``downloading``
    (the start-up model from the Hugging Face hub; sent every few seconds with its progress, also when no byte
    arrived, so the bot can tell a slow download from a stalled one), ``loading`` (the model onto its device) and
    ``compiling`` (with ``memory.compile``: a warm-up render that compiles the model before any job does).

    The bot's start timeout counts every phase but a download that makes progress.
    """

    phase: str
    model: str = ""
    detail: str = ""
    """For a download: the repository and the variant, e.g. ``org/repo, fp16 variant``."""
    done_bytes: int = 0
    total_bytes: int = 0
    """0 when the size is unknown."""
    done_files: int = 0
    total_files: int = 0


@dataclass(frozen=True)
class EngineFatal:
    """The engine cannot work (for example a model folder that does not load); it exits after this."""

    message: str


@dataclass(frozen=True)
class Heartbeat:
    """The engine holds this job and works on it: sent every ``RenderBatch.heartbeat_s`` and at each change of
    phase (``queued``, ``loading model NAME``, ``rendering``, ``writing files``), from receipt until its result.

    It comes from a thread of its own, so it keeps coming while the engine is inside one long call (loading a model
    can take minutes); it stops when the process dies or freezes. A render loop that hangs is caught by the bot's
    job timeout, not by the heartbeat.
    """

    job_id: int
    phase: str


@dataclass(frozen=True)
class Progress:
    job_id: int
    step: int
    total: int
    preview: bytes | None = field(default=None, repr=False)
    """A small JPEG projected cheaply from the latents (first image), every ``preview_every`` steps."""


@dataclass(frozen=True)
class TaskDone:
    """A task's finished files, all written by the engine under ``output_dir`` with the A1111 parameters: its images
    in seed order as PNGs (``paths``) and the grid that shows them (``grid_path``, a JPEG; a sweep's sheet is a PNG,
    with a compact JPEG copy beside it, the same name ending in ``.jpg``, when it exceeds
    :data:`COMPACT_ABOVE_BYTES`)."""

    job_id: int
    paths: tuple[str, ...]
    seeds: tuple[int, ...]
    width: int
    height: int
    """The size of one image."""
    seconds: float
    png_bytes: tuple[bytes, ...] | None = field(default=None, repr=False)
    """The images' file contents, in the order of ``paths``, when the task set ``return_bytes``; else None."""
    grid_path: str = ""
    """The job's grid, ``grid.jpg`` beside the images (2×2 for four, 2×1 for two, 1×1 for one); a sweep's is its
    labelled sheet, ``sweep.png``. Every task the engine finishes has one."""
    grid_bytes: bytes | None = field(default=None, repr=False)
    """The grid's file contents when the task set ``return_bytes``; else None."""
    labels: tuple[str, ...] = ()
    """A sweep's label per image, e.g. ``cfg=5, steps=20``."""
    suggestions: tuple[str, ...] = ()
    """A describe task's prompts for its image, the model's likeliest first; empty for every other kind."""
    safety: tuple[str, ...] = ()
    """With ``RenderTask.safety_check``: per image, in the order of ``paths``, why the safety check flagged it, or
    ``""`` when it passed; empty when the task asked for no check."""


@dataclass(frozen=True)
class TaskFailed:
    """A task failed, for ``reason``; ``message`` says what to change."""

    job_id: int
    reason: FailureReason
    message: str


ToEngine = RenderBatch | Cancel | Shutdown
FromEngine = EngineStarting | EngineReady | EngineFatal | Heartbeat | Progress | TaskDone | TaskFailed
