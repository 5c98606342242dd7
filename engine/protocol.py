"""The plain messages the bot and the engine process exchange. No torch here: both sides import this.

The seam is narrow on purpose: the bot submits a batch, streams its events (progress, result, failure),
cancels a job, and learns the engine's capacity from ``EngineReady``. A result carries the paths of the PNGs
it wrote and, when asked (an engine on a host with no shared disk), their bytes too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EngineConfig:
    """What the engine process needs to start: the model to load and where to put files."""

    model_name: str
    model_source: str
    family: str
    data_dir: str
    device: str = "auto"
    dtype: str = "auto"
    max_batch: int = 1


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
    kind: str = "txt2img"
    return_bytes: bool = False


@dataclass(frozen=True)
class RenderBatch:
    """Tasks the engine may run together; each task reports on its own."""

    tasks: tuple[RenderTask, ...]


@dataclass(frozen=True)
class Cancel:
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


@dataclass(frozen=True)
class EngineFatal:
    """The engine cannot work (for example a model folder that does not load); it exits after this."""

    message: str


@dataclass(frozen=True)
class Progress:
    job_id: int
    step: int
    total: int


@dataclass(frozen=True)
class TaskDone:
    """A task's images, written as PNGs under ``output_dir``, in seed order."""

    job_id: int
    paths: tuple[str, ...]
    seeds: tuple[int, ...]
    width: int
    height: int
    seconds: float
    png_bytes: tuple[bytes, ...] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TaskFailed:
    """A task failed; ``reason`` is one of ``oom``, ``bad_input``, ``cancelled`` or ``internal``."""

    job_id: int
    reason: str
    message: str


ToEngine = RenderBatch | Cancel | Shutdown
FromEngine = EngineReady | EngineFatal | Progress | TaskDone | TaskFailed
