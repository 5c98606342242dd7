"""The application core, shared by the Discord bot and the command line: store, queue, engine and worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot import preparation
from bot.actors import Actor
from bot.custom_ids import Action
from bot.engine_supervisor import EngineSupervisor
from bot.errors import BannedError, ImagineError, JobNotFoundError, PromptError, QueuePausedError
from bot.events import EventBus, EventKind, JobEvent
from bot.jobs import Job, Lane, Status
from bot.ledger import Ledger
from bot.moderation import Moderation
from bot.preferences import Preferences, PreferenceStore
from bot.preparation import Prepared, prompts_to_render
from bot.requests import ImageInput, RequestOptions, TaskOptions
from bot.scheduler import Scheduler
from bot.store import Store
from bot.uploads import (
    CheckedImage,
    StagedUpload,
    UploadError,
    UploadLimits,
    check_upload,
    read_upload_file,
    stage_upload,
)
from bot.waiting import ExternalWait, passthrough
from bot.worker import Worker, heartbeat_interval
from config.settings import Settings
from engine.protocol import EngineConfig, LoraEntry, MemoryOptions, ModelEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedImage:
    """An uploaded image that passed its checks, staged until its request is admitted."""

    staged: StagedUpload
    input: ImageInput


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


def upload_limits(settings: Settings) -> UploadLimits:
    return UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels)


def check_shell_files(settings: Settings, options: TaskOptions) -> dict[str, CheckedImage]:
    """Read (size checked first) and check ``generate``'s ``--image`` and ``--mask`` like Discord uploads, before
    any database or engine is opened. Sync: run it in a thread from async code. Raises PromptError naming the file."""
    limits = upload_limits(settings)
    checked: dict[str, CheckedImage] = {}
    for name, path in (("image", options.image), ("mask", options.mask)):
        if path is None:
            continue
        try:
            checked[name] = check_upload(read_upload_file(path, limits), limits=limits, mask=name == "mask")
        except UploadError as error:
            raise PromptError(f"--{name} {path}: {error}", flag=name) from None
    return checked


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
        try:
            await service.queue.load(recover=not only_own_jobs)
        except BaseException:  # also cancelled: an open connection's thread would keep the process from exiting
            await store.close()
            raise
        return service

    def start(self) -> asyncio.Task[None]:
        """Start the engine process and the worker in the background."""
        if self._worker_task is None:
            self.engine.spawn()
            self._worker_task = asyncio.get_running_loop().create_task(self.worker.run(), name="imagine-worker")
            self._worker_task.add_done_callback(_log_worker_exit)
        return self._worker_task

    async def close(self, *, engine_grace_s: float = 10.0) -> None:
        """Stop the worker and the engine (if this service started it: it gets ``engine_grace_s`` to exit before it
        is killed), then close the database. Runs to its end even when the caller is cancelled meanwhile: an open
        connection's thread would keep the process from exiting."""
        closing = asyncio.ensure_future(self._close(engine_grace_s))
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await closing
            raise

    async def _close(self, engine_grace_s: float) -> None:
        try:
            self.worker.stop()
            if self._worker_task is not None:
                self._worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._worker_task
            if self._owns_engine:
                await asyncio.to_thread(self.engine.stop, engine_grace_s)
        finally:
            await self.store.close()

    # --- jobs of this process only (``generate``) ----------------------------------------------------------

    @property
    def own_jobs(self) -> frozenset[int]:
        """The jobs this service queued (with ``only_own_jobs``; empty otherwise)."""
        return frozenset(self._own_jobs or ())

    async def run_own_jobs(self) -> None:
        """Run this service's own jobs until none is queued, holding their leases meanwhile (queued too: the engine
        may load for minutes), so no other process takes them for abandoned."""
        holder = asyncio.get_running_loop().create_task(self._hold_own_jobs(), name="imagine-hold-own-jobs")
        try:
            await self.worker.run_until_idle()
        finally:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder

    async def _hold_own_jobs(self) -> None:
        interval_s = heartbeat_interval(self.settings.scheduler.lease_s)
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.queue.hold(self.own_jobs)
            except sqlite3.Error as error:  # a busy database: the lease is long, the next renewal may succeed
                log.warning("could not renew the lease of job(s) %s: %s", sorted(self.own_jobs), error)

    async def cancel_unfinished_own_jobs(self, actor: str) -> list[Job]:
        """Cancel (and refund, as any cancel) this service's jobs that are still queued or running: ``generate``
        ends without them. Returns the jobs cancelled."""
        cancelled: list[Job] = []
        for job_id in sorted(self.own_jobs):
            try:
                cancelled.append(await self.cancel(job_id, actor))
            except JobNotFoundError:  # it ended on its own
                continue
        return cancelled

    @property
    def upload_limits(self) -> UploadLimits:
        return upload_limits(self.settings)

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / "uploads"

    # --- preparation: every rule, before anything is charged ----------------------------------------------

    def prepare_imagine(
        self,
        raw_prompt: str,
        preferences: Preferences | None = None,
        options: RequestOptions | None = None,
        *,
        owner: bool = False,
    ) -> list[Prepared]:
        """Parse and validate a request (permutations and --repeat give several jobs) without touching the
        database. Raises PromptError naming what to change. ``owner``: the console, which may use any model."""
        return preparation.prepare_imagine(self.settings, raw_prompt, preferences, options, owner=owner)

    async def prepare_follow_up(self, parent_id: int, action: Action, index: int) -> Prepared:
        """The job a result button asks for (upscale, vary, reroll, zoom, pan). Raises ImagineError."""
        parent = await self.queue.get(parent_id)
        images = await self.queue.images(parent_id)
        prepared = preparation.prepare_follow_up(self.settings, parent, images, action, index)
        inputs = [path for path in (prepared.params.init_image, prepared.params.mask_image) if path]
        if not all(await asyncio.to_thread(lambda: [Path(path).is_file() for path in inputs])):
            raise ImagineError(
                "the image this job started from is no longer kept (uploads expire); upload it again with /imagine"
            )
        return prepared

    async def receive_image(self, data: bytes, *, mask: bool = False) -> ReceivedImage:
        """Check an uploaded image (off the event loop) and stage it; it is stored for good only when its request
        is admitted (:meth:`enqueue_many`). Raises UploadError saying what to upload instead."""
        limits, uploads_dir = self.upload_limits, self.uploads_dir

        def check_and_stage() -> ReceivedImage:
            checked = check_upload(data, limits=limits, mask=mask)
            staged = stage_upload(checked, uploads_dir)
            return ReceivedImage(staged, ImageInput(staged.path, checked.width, checked.height))

        return await asyncio.to_thread(check_and_stage)

    async def submit_shell_request(
        self,
        actor: Actor,
        raw_prompt: str,
        options: TaskOptions,
        checked: Mapping[str, CheckedImage] | None = None,
    ) -> Submitted:
        """``python -m bot generate``: check the request and its files (unless ``checked`` by
        :func:`check_shell_files` already), stage the files, prepare one job and queue it (charged)."""
        owner = actor.is_console
        preparation.check_shell_request(self.settings, raw_prompt, options, owner=owner)  # before any file is read
        if checked is None:
            checked = await asyncio.to_thread(check_shell_files, self.settings, options)
        uploads_dir = self.uploads_dir
        received: dict[str, ReceivedImage] = {}
        try:
            for name, image in checked.items():
                staged = await asyncio.to_thread(stage_upload, image, uploads_dir)
                received[name] = ReceivedImage(staged, ImageInput(staged.path, image.width, image.height))
            request = RequestOptions(
                image=received["image"].input if "image" in received else None,
                mask=received["mask"].input if "mask" in received else None,
                strength=options.strength,
                sweeps=options.sweeps,
            )
            prompt = preparation.shell_prompt(raw_prompt, options)
            prepared = self.prepare_imagine(prompt, None, request, owner=owner)[0]
        except BaseException:
            for item in received.values():
                item.staged.discard()
            raise
        admitted = await self.enqueue_many(actor, [prepared], uploads=[item.staged for item in received.values()])
        return admitted.jobs[0]

    async def check_access(self, actor: Actor) -> None:
        """The cheap refusals, before any download or parsing work: outside a server, a channel the bot is not
        used in, a banned member, a paused queue. :meth:`enqueue_many` checks them again when it charges."""
        await self.moderation.check_channel(actor)
        if self.queue.paused:
            raise QueuePausedError()
        banned = await self.store.fetch_value("SELECT banned FROM users WHERE user_id = ?", (actor.user_id,))
        if banned:
            raise BannedError()

    async def check_prompts(self, actor: Actor, prepared: Sequence[Prepared]) -> None:
        """Refuse early when anything the request would render is blocked where the actor is."""
        await self.moderation.check_prompts(actor, prompts_to_render(prepared))

    # --- admission -------------------------------------------------------------------------------------------

    async def enqueue_many(
        self,
        actor: Actor,
        prepared: Sequence[Prepared],
        *,
        lane: Lane | None = None,
        uploads: Sequence[StagedUpload] = (),
    ) -> Admitted:
        """The one way into the queue: moderate everything the jobs will render where the actor is, then charge
        all jobs up front and queue them, or none. Staged uploads are stored for good once the jobs are admitted
        and discarded on any refusal. Raises an ImagineError (moderation, limits, credits) when refused."""
        try:
            await self.moderation.check_channel(actor)
            await self.moderation.check_prompts(actor, prompts_to_render(prepared))
            admission = await self.queue.admit(actor.user_id, prepared, origin=actor.origin, lane=lane)
        except BaseException:
            for upload in uploads:
                upload.discard()
            raise
        # No await since the jobs were admitted: the worker cannot have picked them up before their inputs exist.
        for upload in uploads:
            try:
                upload.commit()
            except (UploadError, OSError) as error:  # the job then fails on its missing input and is refunded
                log.error("could not store an upload of job(s) %s: %s", [job.id for job in admission.jobs], error)
        submitted: list[Submitted] = []
        for job in admission.jobs:
            if self._own_jobs is not None:
                self._own_jobs.add(job.id)
            position = await self.queue.position(job)
            await self.events.emit(JobEvent(EventKind.QUEUED, job, position=position))
            submitted.append(Submitted(job, position, admission.cost, admission.balance, self.queue.eta_s(job.id)))
        self.worker.wake()
        return Admitted(tuple(submitted), admission.cost, admission.balance)

    async def enqueue(self, actor: Actor, prepared: Prepared, *, lane: Lane | None = None) -> Submitted:
        """Charge and queue one prepared job and wake the worker. Raises an ImagineError when refused."""
        admitted = await self.enqueue_many(actor, [prepared], lane=lane)
        return admitted.jobs[0]

    async def cancel(self, job_id: int, actor: str) -> Job:
        """Cancel a queued or running job and refund it; a running job is also stopped in the engine."""
        before = await self.queue.get(job_id)
        job = await self.queue.cancel(job_id, actor)
        if before.status is Status.RUNNING:
            await self.engine.cancel(job_id)
        await self.events.emit(JobEvent(EventKind.CANCELLED, job, message=job.error or ""))
        return job

    async def submit_imagine(self, actor: Actor, raw_prompt: str, *, lane: Lane | None = None) -> Submitted:
        """:meth:`prepare_imagine` then :meth:`enqueue` of its first job (the CLI renders one grid)."""
        prepared = self.prepare_imagine(raw_prompt, owner=actor.is_console)
        return await self.enqueue(actor, prepared[0], lane=lane)


def _log_worker_exit(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("the worker stopped: %s", error)
