"""The JSON shapes of the native API (``/api/v1``): what clients send and what they get back.

The shapes are fixed (the web UI, the benchmarks and the tests rely on them); the models exist so FastAPI validates
requests and documents every response in the OpenAPI schema. Turning the core's data into them is
:mod:`web.job_views`'s job.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

MAX_ID = 2**63 - 1
"""The largest id SQLite stores (job and member ids are bounded by it, so no request overflows the database)."""
LaneName = Literal["fast", "relax", "turbo"]
ActionName = Literal[
    "upscale",
    "vary",
    "vary_subtle",
    "vary_strong",
    "reroll",
    "zoom_out_1.5",
    "zoom_out_2",
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
]


# --- errors -------------------------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="machine code, e.g. insufficient_credits, job_not_found, bad_prompt")
    message: str = Field(description="what to change, the same text Discord shows")


class ErrorOut(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


# --- jobs ---------------------------------------------------------------------------------------------------------


class ParamsOut(BaseModel):
    model: str
    width: int
    height: int
    steps: int
    cfg: float
    seed: int
    sampler: str
    negative_prompt: str
    images: int
    strength: float


class ImageOut(BaseModel):
    index: int = Field(description="0-based place in the grid")
    url: str = Field(description="the PNG with its parameters chunk, relative: /api/v1/jobs/{id}/images/{index}")
    width: int
    height: int
    seed: int
    flagged: bool = Field(default=False, description="the image safety check flagged it (the web UI blurs it)")


class JobOut(BaseModel):
    """A job as a member sees it."""

    id: int
    kind: str = Field(description="imagine, reroll, img2img, inpaint, variation, upscale, zoom, pan or sweep")
    status: str = Field(description="queued, running, completed, failed or cancelled")
    lane: str
    prompt: str
    cost: int = Field(description="credits charged (refunded when it fails or is cancelled)")
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    parent_id: int | None
    parent_index: int | None
    position: int = Field(description="place in the queue, 1 = next; 0 when not queued")
    eta_s: float | None = Field(description="seconds until it is likely done; null without recent durations")
    params: ParamsOut
    images: list[ImageOut]
    grid_url: str | None
    actions: list[str] = Field(description="the follow-ups POST /jobs/{id}/actions accepts for this job now")
    safety: str = Field(
        default="unchecked",
        description="the image safety check: unchecked, passed, flagged:<reason> or skipped:<why>",
    )


class AdminJobOut(JobOut):
    """A job as a moderator sees it: also whose it is."""

    user_id: int


class CreateJobIn(BaseModel):
    """What ``/imagine`` takes: a prompt with its --flags, optionally an image (img2img) and a mask (inpaint)."""

    model_config = {"extra": "forbid"}

    prompt: str = Field(min_length=1, max_length=20_000, description="the prompt, then --flags as in /imagine")
    image: str | None = Field(default=None, description="start from this image: base64 or a data: URI")
    mask: str | None = Field(default=None, description="white = repaint (needs image): base64 or a data: URI")
    strength: float | None = Field(default=None, description="0 keeps the image, 1 ignores it (default 0.75)")
    lane: LaneName | None = Field(default=None, description="this job's lane instead of your default")
    model: str | None = Field(default=None, max_length=200, description="same as --model")
    sweeps: list[str] = Field(default_factory=list, max_length=3, description="sweep axes, e.g. cfg=3,5,7")
    images: int | None = Field(default=None, ge=1, le=4, description="images per job (the server's number if unset)")
    width: int | None = Field(default=None, ge=1, le=16_384, description="exact width (with height)")
    height: int | None = Field(default=None, ge=1, le=16_384, description="exact height (with width)")
    control_image: str | None = Field(
        default=None, description="ControlNet: follow this image's edges, depth or lines: base64 or a data: URI"
    )
    control_mode: Literal["canny", "depth", "lineart", "scribble", "raw"] | None = Field(
        default=None, description="what to follow in control_image (default canny; raw: it already is a map)"
    )
    control_weight: float | None = Field(
        default=None, ge=0, le=2, description="how strongly control_image steers (same as --cw; default 1)"
    )
    image_prompts: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="images that prompt the job too (IP-Adapter): base64 or data: URIs",
    )
    image_weight: float | None = Field(
        default=None, ge=0, le=2, description="how strongly image_prompts steer (same as --iw; default 1)"
    )

    @model_validator(mode="after")
    def _width_with_height(self) -> CreateJobIn:
        if (self.width is None) != (self.height is None):
            raise ValueError("give width and height together, or neither")
        return self


class ActionIn(BaseModel):
    """A result button: ``upscale``/``vary`` take the image's 0-based index; the others work on image 0."""

    model_config = {"extra": "forbid"}

    action: ActionName
    index: int = Field(default=0, ge=0, le=9)


class CreatedOut(BaseModel):
    """The jobs of one request, charged and queued together."""

    jobs: list[JobOut]
    cost: int = Field(description="credits charged for all of them")
    balance: int = Field(description="your balance after the charge")
    lane: str
    tier: str


# --- the member ---------------------------------------------------------------------------------------------------


class PreferencesOut(BaseModel):
    """Your defaults from /settings; null: the server's default."""

    model: str | None
    aspect: str | None
    steps: int | None
    sampler: str | None
    lane: str | None


class PreferencesIn(BaseModel):
    """Only the fields sent change; null sets one back to the server's default."""

    model_config = {"extra": "forbid"}

    model: str | None = Field(default=None, max_length=200)
    aspect: str | None = Field(default=None, max_length=20)
    steps: int | None = Field(default=None, ge=1, le=10_000)
    sampler: str | None = Field(default=None, max_length=100)
    lane: LaneName | None = None


class JobPlaceOut(BaseModel):
    job: JobOut
    position: int = Field(description="1 = next; 0 = rendering now")


class MeOut(BaseModel):
    user_id: int
    balance: int
    tier: str
    banned: bool
    preferences: PreferencesOut
    jobs: list[JobPlaceOut] = Field(description="your queued and running jobs")
    moderator: bool


class SessionIn(BaseModel):
    model_config = {"extra": "forbid"}

    key: str = Field(min_length=1, max_length=200, description="an API key (from /apikey in Discord)")


class ModelOut(BaseModel):
    """One model you may choose: its defaults and what a request may ask of it."""

    name: str
    family: str = Field(description="sd15, sd2, sdxl, sd3 (SD3.5) or flux (FLUX.1)")
    base_size: int = Field(description="the side of its square image (--ar 1:1)")
    steps: int = Field(description="its default --steps")
    max_steps: int
    cfg: float = Field(description="its default --cfg")
    max_cfg: float
    guidance: Literal["cfg", "distilled", "none"] = Field(
        description="cfg: --cfg is the CFG scale and --no works; distilled: --cfg is FLUX.1-dev's distilled guidance "
        "and there is no negative prompt; none: no --cfg and no negative prompt (FLUX.1-schnell)"
    )
    negative_prompt: bool = Field(description="whether --no works on it")
    sampler: str = Field(description="its default --sampler")
    samplers: list[str] = Field(description="the samplers --sampler takes on it")


class ModelsOut(BaseModel):
    models: list[str] = Field(description="the models you may choose with --model")
    default: str = Field(description="the server's default model")
    yours: str = Field(description="the model your jobs use when they name none (your /settings, else the default)")
    details: list[ModelOut] = Field(description="each model of models, in the same order")


class SamplersOut(BaseModel):
    samplers: list[str]


class QueueOut(BaseModel):
    paused: bool
    queued: dict[str, int] = Field(description="jobs waiting in each lane, in order of service")
    total_queued: int
    running: int = Field(description="jobs rendering now")


# --- moderation ---------------------------------------------------------------------------------------------------


class ReasonIn(BaseModel):
    model_config = {"extra": "forbid"}

    reason: str = Field(default="", max_length=500, description="kept in the audit log")


class MemberIn(ReasonIn):
    user_id: int = Field(ge=-MAX_ID, le=MAX_ID)


class CreditsIn(MemberIn):
    change: Literal["give", "take", "set"]
    amount: int = Field(ge=0, le=10_000_000)

    @model_validator(mode="after")
    def _positive_unless_set(self) -> CreditsIn:
        if self.change != "set" and self.amount < 1:
            raise ValueError(f"{self.change} needs an amount of at least 1")
        return self


class TierIn(MemberIn):
    tier: str = Field(min_length=1, max_length=100)


class BlockIn(ReasonIn):
    words: list[str] = Field(min_length=1, max_length=100, description="words or phrases")


class BalanceOut(BaseModel):
    user_id: int
    balance: int


class BanOut(BaseModel):
    user_id: int
    banned: bool


class BlocklistOut(BaseModel):
    words: list[str] = Field(description="the server's blocklist")
    changed: list[str] = Field(description="what this request added or removed")


class AdminQueueOut(BaseModel):
    summary: QueueOut
    running: list[AdminJobOut] = Field(description="jobs of your server rendering now")
    queued: list[AdminJobOut] = Field(description="the oldest waiting jobs of your server")


class EngineOut(BaseModel):
    name: str = Field(description="engine 0, engine 1, …")
    device: str = Field(description="where it runs: cuda:1, cpu, or a Ray engine (ray:2)")
    state: Literal["ready", "starting", "failing", "down"] = Field(
        description="failing: its model cannot load; down: not running (restarting after a crash)"
    )
    model: str = Field(description="the model it started with (or is loading)")
    loaded_models: list[str] = Field(description="the models it holds now")
    busy: bool = Field(description="it holds a batch")
    restarts: int


class StatsOut(BaseModel):
    since: float
    jobs: int
    completed: int
    failed: int
    cancelled: int
    members: int
    credits_spent: int
    credits_refunded: int
    median_seconds: float | None
    engines: list[EngineOut] = Field(default_factory=list, description="every engine now")


class EntryOut(BaseModel):
    id: int
    delta: int
    balance_after: int
    kind: str
    reason: str
    job_id: int | None
    actor: str
    created_at: float


class MemberOut(BaseModel):
    user_id: int
    tier: str
    balance: int
    banned: bool
    default_lane: str


class AccountOut(BaseModel):
    user_id: int
    member: MemberOut | None = Field(description="null: the member has never used the bot")
    entries: list[EntryOut] = Field(description="the newest ledger rows")
