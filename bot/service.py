"""The application core, shared by the Discord bot and the command line: store, queue, engine and worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass

from bot.engine_supervisor import EngineSupervisor
from bot.errors import PromptError
from bot.events import EventBus, EventKind, JobEvent
from bot.jobs import Job, Kind, Lane, Origin, RenderParams
from bot.prompt import ParsedPrompt, clean_text, parse_prompt
from bot.queue import JobQueue
from bot.requests import TaskOptions, apply_options, kind_for
from bot.sizing import size_for_aspect
from bot.store import Store
from bot.waiting import ExternalWait, passthrough
from bot.worker import Worker
from config.settings import ModelSpec, Settings
from engine.protocol import EngineConfig, LoraEntry, MemoryOptions, ModelEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A validated request, ready to queue."""

    kind: Kind
    prompt: str
    params: RenderParams


@dataclass(frozen=True)
class Submitted:
    job: Job
    position: int


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


def build_params(parsed: ParsedPrompt, model_name: str, spec: ModelSpec, settings: Settings, seed: int) -> RenderParams:
    """Resolve a parsed prompt against the model's defaults and the server's limits."""
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
        self.queue = JobQueue(store)
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
        if not only_own_jobs:
            await service.queue.recover_interrupted()
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

    def prepare_imagine(self, raw_prompt: str) -> Prepared:
        """Parse and validate an /imagine without touching the database. Raises PromptError."""
        settings = self.settings
        parsed = parse_prompt(raw_prompt, max_chars=settings.max_prompt_chars, max_steps=settings.max_steps)
        model_name = settings.model
        params = build_params(parsed, model_name, settings.registry[model_name], settings, _random_seed())
        return Prepared(Kind.IMAGINE, clean_text(raw_prompt), params)

    def prepare_request(self, raw_prompt: str, options: TaskOptions) -> Prepared:
        """:meth:`prepare_imagine` with a model, a source image, a mask, a strength or sweeps. Raises PromptError."""
        settings = self.settings
        parsed = parse_prompt(raw_prompt, max_chars=settings.max_prompt_chars, max_steps=settings.max_steps)
        model_name = options.model or settings.model
        if model_name not in settings.registry:
            known = ", ".join(sorted(settings.registry))
            raise PromptError(f"--model {model_name!r} is not in the registry; use one of: {known}", flag="model")
        params = build_params(parsed, model_name, settings.registry[model_name], settings, _random_seed())
        return Prepared(kind_for(options), clean_text(raw_prompt), apply_options(params, options))

    async def enqueue(self, user_id: int, prepared: Prepared, *, origin: Origin, lane: Lane | None = None) -> Submitted:
        """Queue a prepared job and wake the worker."""
        job = await self.queue.enqueue(
            user_id=user_id,
            kind=prepared.kind,
            lane=lane or Lane(self.settings.default_lane),
            prompt=prepared.prompt,
            params=prepared.params,
            origin=origin,
        )
        if self._own_jobs is not None:
            self._own_jobs.add(job.id)
        position = await self.queue.position(job)
        await self.events.emit(JobEvent(EventKind.QUEUED, job, position=position))
        self.worker.wake()
        return Submitted(job, position)

    async def submit_imagine(
        self, user_id: int, raw_prompt: str, *, origin: Origin, lane: Lane | None = None
    ) -> Submitted:
        """:meth:`prepare_imagine` then :meth:`enqueue`."""
        return await self.enqueue(user_id, self.prepare_imagine(raw_prompt), origin=origin, lane=lane)


def _random_seed() -> int:
    return secrets.randbelow(2**32)


def _log_worker_exit(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("the worker stopped: %s", error)
