"""Jobs: what a member asked the engine to render, and the states a job moves through."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from bot.image_safety import UNCHECKED, JobSafety
from engine.protocol import Lane, RenderTask, TaskKind  # Lane is the protocol's, re-exported here


class Status(StrEnum):
    """Where a job is in its life. A job ends in exactly one of the terminal states."""

    QUEUED = "queued"
    """Waiting for the engine; survives restarts."""
    RUNNING = "running"
    """Handed to the engine. A job found running at start-up was interrupted and goes back to the queue."""
    COMPLETED = "completed"
    """Rendered; its images are on disk and listed in ``results``."""
    FAILED = "failed"
    """Gave up, with the reason in ``error``."""
    CANCELLED = "cancelled"
    """Stopped by the member or a moderator before it finished."""

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


class Kind(StrEnum):
    """What a member asked for; :data:`KIND_TO_ENGINE` names the engine task that renders it."""

    IMAGINE = "imagine"
    """txt2img: a fresh grid from a prompt."""
    REROLL = "reroll"
    """txt2img again with new seeds (🔄)."""
    IMG2IMG = "img2img"
    """A grid from a prompt and a source image (``init_image``, ``strength``)."""
    INPAINT = "inpaint"
    """Repaint the white part of ``mask_image`` on ``init_image``."""
    VARIATION = "variation"
    """V1–V4: one result redrawn with new seeds (``strength`` subtle or strong)."""
    UPSCALE = "upscale"
    """U1–U4: one result at ``upscale_factor`` × its size."""
    ZOOM = "zoom"
    """Zoom out by ``zoom`` (1.5 or 2): the result outpainted on a larger canvas."""
    PAN = "pan"
    """Extend one result towards ``pan`` (left, right, up, down)."""
    SWEEP = "sweep"
    """One image per combination of up to three ``sweep`` axes, in one labelled grid."""
    DESCRIBE = "describe"
    """/describe: four prompts for ``init_image`` from a captioning model (``describe_model``); no rendering."""
    CONTROL = "control"
    """A grid steered by ``control_image`` through a ControlNet (``control_mode``, ``control_weight``); with
    ``init_image`` (a V button of such a grid) from that image too."""
    BLEND = "blend"
    """/blend: 2 to 5 images mixed through the IP-Adapter (``image_prompts``), with an empty text prompt."""


KIND_TO_ENGINE: dict[Kind, TaskKind] = {
    Kind.IMAGINE: TaskKind.TXT2IMG,
    Kind.REROLL: TaskKind.TXT2IMG,
    Kind.IMG2IMG: TaskKind.IMG2IMG,
    Kind.INPAINT: TaskKind.INPAINT,
    Kind.VARIATION: TaskKind.VARIATION,
    Kind.UPSCALE: TaskKind.UPSCALE,
    Kind.ZOOM: TaskKind.ZOOM,
    Kind.PAN: TaskKind.PAN,
    Kind.SWEEP: TaskKind.SWEEP,
    Kind.DESCRIBE: TaskKind.DESCRIBE,
    Kind.CONTROL: TaskKind.CONTROL,
    Kind.BLEND: TaskKind.TXT2IMG,
}
"""The engine's task kind for each job kind."""

LANE_ORDER: dict[Lane, int] = {lane: rank for rank, lane in enumerate(Lane)}
"""Each lane's rank in order of service (:class:`engine.protocol.Lane`): turbo 0, fast 1, relax 2."""


@dataclass(frozen=True)
class RenderParams:
    """Everything the engine needs to render a job, resolved from the prompt and the model's defaults."""

    prompt: str
    negative_prompt: str
    model: str
    width: int
    height: int
    steps: int
    cfg: float
    seed: int
    images: int = 4
    sampler: str = "euler_a"
    tile: bool = False
    init_image: str = ""
    mask_image: str = ""
    strength: float = 0.75
    zoom: float = 2.0
    pan: str = ""
    upscale_factor: float = 2.0
    sweep: tuple[tuple[str, tuple[str, ...]], ...] = ()
    weighted_prompts: tuple[tuple[str, float], ...] = ()
    """A multi-prompt's parts and weights (``a cat:: a dog::2``); empty for a plain prompt."""
    chaos: int = 0
    """``--chaos``: each image's CFG scale and part weights jittered from its seed (0: none)."""
    stop: int = 100
    """``--stop``: the percentage of the steps that run (and are charged)."""
    describe_model: str = ""
    """/describe: the captioning model (the owner's ``[describe] source`` when the job was asked for)."""
    control_image: str = ""
    """ControlNet: the uploaded control image (preprocessed by ``control_mode`` in the engine)."""
    control_mode: str = ""
    control_weight: float = 1.0
    controlnet: str = ""
    """ControlNet: the registry name of the ControlNet the job uses."""
    image_prompts: tuple[str, ...] = ()
    """Stored images that prompt the render through the IP-Adapter (/blend, ``image_prompt``, Discord image links)."""
    image_weight: float = 1.0
    """``--iw``: how strongly the image prompts steer (0 to 2)."""
    ip_adapter: str = ""
    """The registry name of the IP-Adapter the image prompts go through."""

    @property
    def input_paths(self) -> tuple[str, ...]:
        """Every image file the job reads (source, mask, control image, image prompts), which must stay kept."""
        single = (self.init_image, self.mask_image, self.control_image)
        return tuple(path for path in (*single, *self.image_prompts) if path)

    @property
    def seeds(self) -> tuple[int, ...]:
        """One seed per image: image ``i`` of a grid uses ``seed + i``, so any one image can be redone."""
        return tuple((self.seed + index) % 2**32 for index in range(self.images))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RenderParams:
        """Read :meth:`to_json`'s text, also as written by older versions (``negative`` for ``negative_prompt``)."""
        values = json.loads(text)
        if "negative" in values:
            values["negative_prompt"] = values.pop("negative")
        if "sweep" in values:
            values["sweep"] = tuple((name, tuple(options)) for name, options in values["sweep"])
        if "weighted_prompts" in values:
            values["weighted_prompts"] = tuple((text, float(weight)) for text, weight in values["weighted_prompts"])
        if "image_prompts" in values:
            values["image_prompts"] = tuple(values["image_prompts"])
        return cls(**values)


_SHARED_FIELDS = tuple(
    field.name for field in fields(RenderTask) if field.name in {own.name for own in fields(RenderParams)}
)


def engine_task(kind: Kind, params: RenderParams, *, job_id: int = 0, output_dir: str = "") -> RenderTask:
    """The engine task that renders a job of ``kind`` with ``params``: every field both spell the same is copied
    as is (one name per thing), plus the job's id, seeds, engine kind and output folder."""
    shared = {name: getattr(params, name) for name in _SHARED_FIELDS}
    return RenderTask(job_id=job_id, seeds=params.seeds, output_dir=output_dir, kind=KIND_TO_ENGINE[kind], **shared)


WEB_SOURCE = "web"
"""The origin source of jobs asked for through the web UI or an API."""


@dataclass(frozen=True)
class Origin:
    """Where a job came from, so its result can be posted back there (also after a restart)."""

    source: str = "discord"
    guild_id: int | None = None
    channel_id: int | None = None
    message_id: int | None = None
    interaction_id: int | None = None
    key_id: str | None = None
    """The API key a web request came with (which key of the member asked)."""
    nsfw: bool = False
    """The Discord channel is marked age-restricted (the image safety check skips it)."""

    def to_json(self) -> str:
        values = asdict(self)
        if values["key_id"] is None:  # the same text as before keys existed
            del values["key_id"]
        if not values["nsfw"]:  # the same text as before the safety check existed
            del values["nsfw"]
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Origin:
        return cls(**json.loads(text)) if text else cls()


@dataclass(frozen=True)
class Job:
    """One row of the ``jobs`` table."""

    id: int
    user_id: int
    kind: Kind
    status: Status
    lane: Lane
    prompt: str
    params: RenderParams
    origin: Origin
    created_at: float
    attempts: int = 0
    cost: int = 0
    """Credits charged when it was queued (refunded if it fails or is cancelled)."""
    error: str | None = None
    grid_path: str | None = None
    parent_id: int | None = None
    parent_index: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    safety: JobSafety = UNCHECKED
    """What the image safety check decided (:mod:`bot.image_safety`)."""

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            kind=Kind(row["kind"]),
            status=Status(row["status"]),
            lane=Lane(row["lane"]),
            prompt=row["prompt"],
            params=RenderParams.from_json(row["params"]),
            origin=Origin.from_json(row["origin"]),
            created_at=row["created_at"],
            attempts=row["attempts"],
            cost=row["cost"],
            error=row["error"],
            grid_path=row["grid_path"],
            parent_id=row["parent_id"],
            parent_index=row["parent_index"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            safety=JobSafety.from_row(row),
        )


@dataclass(frozen=True)
class ImageResult:
    """One rendered image of a job."""

    job_id: int
    index: int
    path: str
    seed: int
    width: int
    height: int
