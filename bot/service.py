"""The application core, shared by the Discord bot and the command line: store, queue, engine and worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, replace

from bot.custom_ids import Action
from bot.engine_supervisor import EngineSupervisor
from bot.errors import PromptError
from bot.events import EventBus, EventKind, JobEvent
from bot.follow_ups import check_follow_up
from bot.jobs import Job, Kind, Lane, Origin, RenderParams, Status
from bot.ledger import Ledger
from bot.moderation import Moderation
from bot.permutations import expand_permutations
from bot.preferences import Preferences, PreferenceStore, apply_preferences
from bot.prompt import ParsedPrompt, PromptLimits, clean_text, parse_prompt
from bot.requests import TaskOptions, apply_options, follow_up_params, kind_for, store_task_inputs
from bot.scheduler import JobRequest, Scheduler
from bot.sizing import size_for_aspect
from bot.store import Store
from bot.uploads import UploadLimits
from bot.waiting import ExternalWait, passthrough
from bot.worker import Worker
from config.settings import Settings
from engine.protocol import EngineConfig, LoraEntry, MemoryOptions, ModelEntry
from engine.samplers import DEFAULT_SAMPLER, SAMPLERS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A validated request, ready to queue."""

    kind: Kind
    prompt: str
    params: RenderParams
    lane: Lane | None = None
    """The lane a flag asked for (``--fast``, ``--relax``, ``--turbo``); None: the member's default."""
    parent_id: int | None = None
    """For a button's job: the job whose image it starts from."""
    parent_index: int | None = None


@dataclass(frozen=True)
class Submitted:
    job: Job
    position: int
    cost: int = 0
    """Credits charged for the job."""
    balance: int = 0
    """The member's balance after the charge."""
    eta_s: float | None = None


@dataclass(frozen=True)
class Admitted:
    """The jobs of one request, charged together."""

    jobs: tuple[Submitted, ...]
    cost: int
    balance: int


def engine_config(settings: Settings) -> EngineConfig:
    spec = settings.registry[settings.model]
    return EngineConfig(
        model_name=settings.model,
        model_source=spec.source,
        family=spec.family,
        data_dir=str(settings.data_dir),
        device=settings.device,
        dtype=settings.dtype,
        max_batch=settings.engine_max_batch,
        models=tuple(
            ModelEntry(name, entry.source, entry.family, entry.config) for name, entry in settings.registry.items()
        ),
        loras=tuple(LoraEntry(name, entry.path) for name, entry in settings.loras.items()),
        memory=MemoryOptions(**settings.memory.model_dump()),
        max_loaded_models=settings.max_loaded_models,
        memory_budget_gb=settings.memory_budget_gb,
        preview_every=settings.preview_every,
    )


def prompt_limits(settings: Settings) -> PromptLimits:
    return PromptLimits(
        max_chars=settings.max_prompt_chars,
        max_steps=settings.max_steps,
        max_repeat=settings.max_repeat,
        models=tuple(settings.registry),
        samplers=tuple(SAMPLERS),
    )


def build_params(parsed: ParsedPrompt, settings: Settings, seed: int) -> RenderParams:
    """Resolve a parsed prompt against the model's defaults and the server's limits."""
    model_name = parsed.model or settings.model
    spec = settings.registry.get(model_name)
    if spec is None:
        raise PromptError(
            f"model `{model_name}` is not on this server; use one of {', '.join(sorted(settings.registry))}"
        )
    width, height = size_for_aspect(parsed.aspect, spec.base_size, spec.size_multiple)
    if width * height > settings.max_pixels:
        raise PromptError(
            f"{width}x{height} is more pixels than this server allows ({settings.max_pixels}); use a less extreme --ar",
            flag="ar",
        )
    return RenderParams(
        prompt=parsed.text,
        negative=parsed.negative,
        model=model_name,
        width=width,
        height=height,
        steps=parsed.steps if parsed.steps is not None else spec.steps,
        cfg=parsed.cfg if parsed.cfg is not None else spec.cfg,
        seed=parsed.seed if parsed.seed is not None else seed,
        images=settings.images_per_job,
        sampler=parsed.sampler or DEFAULT_SAMPLER,
        tile=parsed.tile,
    )


class ImagineService:
    """Everything between a request and a rendered grid. Open with :meth:`open`, then :meth:`start`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: EngineSupervisor,
        *,
        owns_engine: bool,
        external_wait: ExternalWait = passthrough,
        only_own_jobs: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.queue = Scheduler(store, settings)
        self.ledger = Ledger(store, settings)
        self.moderation = Moderation(store)
        self.preferences = PreferenceStore(store, settings)
        self.engine = engine
        self.events = EventBus()
        self._owns_engine = owns_engine
        self._own_jobs: set[int] | None = set() if only_own_jobs else None
        self.worker = Worker(
            self.queue,
            engine,
            self.events,
            settings.images_dir,
            external_wait=external_wait,
            only=self._own_jobs,
        )
        self._worker_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        engine: EngineSupervisor | None = None,
        external_wait: ExternalWait = passthrough,
        only_own_jobs: bool = False,
    ) -> ImagineService:
        """Open the database, recover jobs a previous process left running, and prepare (not start) the engine.

        Pass ``engine`` to share a running engine; the service then leaves it running on :meth:`close`.
        ``only_own_jobs`` makes the worker run only jobs this service submitted (the CLI beside a live bot).
        """
        store = await Store.open(settings.database_file)
        owns = engine is None
        if engine is None:
            engine = EngineSupervisor(
                engine_config(settings),
                start_timeout_s=settings.engine_start_timeout_s,
                job_timeout_s=settings.job_timeout_s,
            )
        service = cls(
            settings,
            store,
            engine,
            owns_engine=owns,
            external_wait=external_wait,
            only_own_jobs=only_own_jobs,
        )
        await service.queue.load(recover=not only_own_jobs)
        return service

    def start(self) -> asyncio.Task[None]:
        """Start the engine process and the worker in the background."""
        if self._worker_task is None:
            self.engine.spawn()
            self._worker_task = asyncio.get_running_loop().create_task(self.worker.run(), name="imagine-worker")
            self._worker_task.add_done_callback(_log_worker_exit)
        return self._worker_task

    async def close(self) -> None:
        self.worker.stop()
        if self._worker_task is not None:
            self._worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker_task
        if self._owns_engine:
            await asyncio.to_thread(self.engine.stop)
        await self.store.close()

    def prepare_imagine(
        self, raw_prompt: str, preferences: Preferences | None = None, options: TaskOptions | None = None
    ) -> list[Prepared]:
        """Parse and validate an /imagine (permutations and --repeat give several jobs) without touching the
        database. Raises PromptError naming what to change."""
        settings = self.settings
        cap = settings.max_prompts_per_message
        prepared: list[Prepared] = []
        for variant in expand_permutations(clean_text(raw_prompt), cap):
            parsed = parse_prompt(variant, prompt_limits(settings))
            if preferences is not None:
                parsed = apply_preferences(parsed, preferences)
            first = build_params(parsed, settings, _random_seed())
            for repeat in range(parsed.repeat):
                if len(prepared) == cap:
                    raise PromptError(
                        f"this asks for more than {cap} jobs at once (permutations × --repeat); ask for fewer",
                        flag="repeat" if parsed.repeat > 1 else None,
                    )
                params = first if repeat == 0 else _reseeded(first, parsed.seed, repeat)
                lane = Lane(parsed.lane) if parsed.lane else None
                kind = Kind.IMAGINE
                if options is not None:
                    kind, params = kind_for(options), apply_options(params, options)
                prepared.append(Prepared(kind, variant, params, lane))
        return prepared

    def prepare_request(self, raw_prompt: str, options: TaskOptions) -> Prepared:
        """:meth:`prepare_imagine` with a model, a source image, a mask, a strength or sweeps. Raises PromptError."""
        prompt = f"{raw_prompt} --model {options.model}" if options.model else raw_prompt
        settings = self.settings
        limits = UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels)
        options = store_task_inputs(replace(options, model=None), limits, settings.data_dir / "uploads")
        return self.prepare_imagine(prompt, None, options)[0]

    async def prepare_follow_up(self, parent_id: int, action: Action, index: int) -> Prepared:
        """The job a result button asks for (upscale, vary, reroll, zoom, pan). Raises ImagineError."""
        parent = await self.queue.get(parent_id)
        images = await self.queue.images(parent_id)
        follow_up = check_follow_up(parent, action, index, len(images))
        image_path = images[index].path if follow_up.needs_image else ""
        seed = images[index].seed if follow_up.kind is Kind.UPSCALE else _random_seed()
        params = follow_up_params(
            parent.params,
            follow_up.kind,
            image_path,
            seed,
            variation=follow_up.variation,
            zoom=follow_up.zoom,
            pan=follow_up.pan,
        )
        if follow_up.kind in (Kind.VARIATION, Kind.ZOOM, Kind.PAN):
            params = replace(params, images=self.settings.images_per_job)
        return Prepared(follow_up.kind, parent.prompt, params, parent_id=parent_id, parent_index=index)

    async def enqueue_many(
        self, user_id: int, prepared: list[Prepared], *, origin: Origin, lane: Lane | None = None
    ) -> Admitted:
        """Charge all jobs up front and queue them, or none. Raises a SchedulerError when refused."""
        requests = [
            JobRequest(item.kind, item.prompt, item.params, origin, item.parent_id, item.parent_index)
            for item in prepared
        ]
        asked = lane or next((item.lane for item in prepared if item.lane is not None), None)
        admission = await self.queue.admit(user_id, requests, lane=asked)
        submitted: list[Submitted] = []
        for job in admission.jobs:
            if self._own_jobs is not None:
                self._own_jobs.add(job.id)
            position = await self.queue.position(job)
            await self.events.emit(JobEvent(EventKind.QUEUED, job, position=position))
            submitted.append(Submitted(job, position, admission.cost, admission.balance, self.queue.eta_s(job.id)))
        self.worker.wake()
        return Admitted(tuple(submitted), admission.cost, admission.balance)

    async def enqueue(self, user_id: int, prepared: Prepared, *, origin: Origin, lane: Lane | None = None) -> Submitted:
        """Charge and queue one prepared job and wake the worker. Raises a SchedulerError when refused."""
        admitted = await self.enqueue_many(user_id, [prepared], origin=origin, lane=lane)
        return admitted.jobs[0]

    async def cancel(self, job_id: int, actor: str) -> Job:
        """Cancel a queued or running job and refund it; a running job is also stopped in the engine."""
        before = await self.queue.get(job_id)
        job = await self.queue.cancel(job_id, actor)
        if before.status is Status.RUNNING:
            await self.engine.cancel(job_id)
        await self.events.emit(JobEvent(EventKind.CANCELLED, job, message=job.error or ""))
        return job

    async def submit_imagine(
        self, user_id: int, raw_prompt: str, *, origin: Origin, lane: Lane | None = None
    ) -> Submitted:
        """:meth:`prepare_imagine` then :meth:`enqueue` of its first job (the CLI renders one grid)."""
        return await self.enqueue(user_id, self.prepare_imagine(raw_prompt)[0], origin=origin, lane=lane)


def _reseeded(params: RenderParams, explicit_seed: int | None, repeat: int) -> RenderParams:
    """The ``repeat``-th copy of a job: a fresh seed, or with --seed the next grid's worth of seeds."""
    if explicit_seed is None:
        return replace(params, seed=_random_seed())
    return replace(params, seed=(explicit_seed + repeat * params.images) % 2**32)


def _random_seed() -> int:
    return secrets.randbelow(2**32)


def _log_worker_exit(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("the worker stopped: %s", error)
