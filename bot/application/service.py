"""The application core: the one door every surface (Discord, the command line, later the web API) goes through.

A surface turns what a user did into an :class:`~bot.actors.Actor` and a call of this class (or of its
:attr:`ImagineService.member` and :attr:`ImagineService.admin` actions), and turns the plain data it gets back
into its own presentation. Nothing outside the core reaches into its parts (store, scheduler, ledger, worker,
engine); ``tests/bot/test_imports.py`` enforces it for the cogs.

A request's journey: :meth:`ImagineService.prepare` (or :meth:`~ImagineService.prepare_follow_up`) checks every
rule, moderation included, and stamps the jobs with the actor; :meth:`~ImagineService.attach_images` adds checked
uploads; :meth:`~ImagineService.submit` charges and queues them, or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bot.actors import Actor
from bot.application.admitted import Admitted, Submitted
from bot.application.api_keys import ApiKeys
from bot.application.describe_actions import DescribeActions
from bot.application.image_prompt_intake import ImagePromptActions
from bot.application.member_actions import MemberActions
from bot.application.moderator_actions import ModeratorActions
from bot.application.telemetry import Telemetry, counting_refusals
from bot.errors import BannedError, ImagineError, JobNotFoundError, QueuePausedError
from bot.events import EventBus, EventKind, JobEvent
from bot.jobs import Job, Lane, Status
from bot.requests import preparation
from bot.requests.custom_ids import Action
from bot.requests.follow_ups import shown_where
from bot.requests.image_prompts import check_image_prompts_received
from bot.requests.moderation import Moderation
from bot.requests.preferences import PreferenceStore
from bot.requests.preparation import Prepared, prompts_to_render
from bot.requests.request_options import ImageInput, RequestOptions, TaskOptions
from bot.requests.shell_files import check_shell_files, shell_request_options, upload_limits
from bot.requests.upload_store import StagedUpload, stage_upload
from bot.requests.uploads import CheckedImage, UploadError, UploadLimits, check_upload
from bot.running.delivery import Deliveries
from bot.running.engine_pool import EnginePool, EngineProvider, SharedEngines, engine_provider
from bot.running.engine_supervisor import EngineSupervisor
from bot.running.maintenance import Maintenance
from bot.running.waiting import ExternalWait, passthrough
from bot.running.worker import Worker, heartbeat_interval
from bot.scheduling.ledger import Ledger
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedImage:
    """An uploaded image that passed its checks, staged until its request is admitted."""

    staged: StagedUpload
    input: ImageInput


class ImagineService:
    """Everything between a request and a rendered grid. Open with :meth:`open`, then :meth:`start`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engines: EngineProvider,
        *,
        owns_engine: bool,
        external_wait: ExternalWait = passthrough,
        only_own_jobs: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = Scheduler(store, settings)
        self.ledger = Ledger(store, settings)
        self.moderation = Moderation(store)
        self.preferences = PreferenceStore(store, settings)
        self.events = EventBus()
        self._own_jobs: set[int] | None = set() if only_own_jobs else None
        self.engines = EnginePool(
            self.scheduler,
            self.events,
            settings.images_dir,
            engines,
            owns_engines=owns_engine,
            external_wait=external_wait,
            only=self._own_jobs,
        )
        """The engines (one per device or Ray host) and the worker feeding each, all from the one queue."""
        self.telemetry = Telemetry.for_service(self)
        """Counters and histograms of jobs, credits, refusals and engine use, for a metrics surface."""
        self.engines.telemetry = self.telemetry
        for worker in self.engines.workers:
            worker.telemetry = self.telemetry
        self._started = False
        self.deliveries = Deliveries(store)
        """Which finished jobs a surface has posted (Discord's durable delivery)."""
        self.maintenance: Maintenance | None = None
        self.keys = ApiKeys(store)
        """API keys of the web UI and the APIs, and the owner's local web users."""
        self.member = MemberActions(self)
        """What a member can do besides asking for images (account, own jobs, preferences, the queue)."""
        self.admin = ModeratorActions(self)
        """What moderators and the owner can do (rules, credits, tiers, bans, any job, pause, reports)."""
        self.describe = DescribeActions(self)
        """/describe: four prompts for an image, and running one as /imagine."""
        self.image_prompts = ImagePromptActions(self)
        """/blend, and receiving the image prompts of any request."""

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        engine: EngineSupervisor | Sequence[EngineSupervisor] | None = None,
        external_wait: ExternalWait = passthrough,
        only_own_jobs: bool = False,
    ) -> ImagineService:
        """Open the database, recover jobs a previous process left running, and prepare (not start) the engine.

        Pass ``engine`` (or several) to share running engines; the service then leaves them running on
        :meth:`close`. Otherwise it starts its own from ``settings.engine`` (this machine's devices, or Ray).
        ``only_own_jobs`` makes the worker run only jobs this service submitted (the CLI beside a live bot).
        """
        store = await Store.open(settings.database_file)
        try:
            # Finding the engines may ask the GPU driver or join a Ray cluster: not on the event loop.
            provider = await asyncio.to_thread(engine_provider, settings) if engine is None else None
            service = cls(
                settings,
                store,
                provider if provider is not None else SharedEngines(engine or []),
                owns_engine=engine is None,
                external_wait=external_wait,
                only_own_jobs=only_own_jobs,
            )
            await service.scheduler.load(recover=not only_own_jobs)
        except BaseException:  # also cancelled: an open connection's thread would keep the process from exiting
            await store.close()
            raise
        return service

    @property
    def engine(self) -> EngineSupervisor:
        """The first engine (the only one unless ``engine.devices`` or Ray give more: see :attr:`engines`)."""
        return self.engines.slots[0].engine

    @property
    def worker(self) -> Worker:
        """The first engine's worker (see :attr:`engines` for all of them)."""
        return self.engines.slots[0].worker

    def start(self, *, maintenance: bool = False) -> None:
        """Start the engine processes and their workers in the background; with ``maintenance`` also the periodic
        upkeep (allowances, lease sweep, upload expiry, heartbeat) that a long-running bot needs."""
        if not self._started:
            self._started = True
            self.engines.start()
        if maintenance and self.maintenance is None:
            self.maintenance = Maintenance(
                self.ledger, self.scheduler, events=self.events, wake=self.engines.wake_all, engines=self.engines
            )
            self.maintenance.start()

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
            if self.maintenance is not None:
                self.maintenance.stop()
            await self.engines.stop(engine_grace_s)
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
            await self.engines.run_until_idle()
        finally:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder

    async def _hold_own_jobs(self) -> None:
        interval_s = heartbeat_interval(self.settings.scheduler.lease_s)
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.scheduler.hold(self.own_jobs)
            except sqlite3.Error as error:  # a busy database: the lease is long, the next renewal may succeed
                log.warning("could not renew the lease of job(s) %s: %s", sorted(self.own_jobs), error)

    def abort_rendering(self) -> None:
        """Kill this service's engines at once (a second Ctrl-C on ``generate``); their jobs then end as
        interrupted."""
        self.engines.kill(deliberate=True)

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
        """The size and pixel limits every uploaded image obeys (a surface checks announced sizes against them)."""
        return upload_limits(self.settings)

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / "uploads"

    # --- preparation: every rule, moderation included, before anything is charged ------------------------------

    async def _check_access(self, actor: Actor) -> None:
        """The cheap refusals, first in every preparation: outside a server, a channel the bot is not
        used in, a banned member, a paused queue. Admission checks the ban and the pause again when it charges."""
        await self.moderation.check_channel(actor)
        if self.scheduler.paused:
            raise QueuePausedError()
        banned = await self.store.fetch_value("SELECT banned FROM users WHERE user_id = ?", (actor.user_id,))
        if banned:
            raise BannedError()

    @counting_refusals
    async def prepare(self, actor: Actor, raw_prompt: str, options: RequestOptions | None = None) -> list[Prepared]:
        """Check a request against every rule for ``actor`` (access, the prompt and its flags with the member's
        preferences, the models, then moderation of every prompt that will render) and return its jobs (permutations
        and --repeat give several), stamped for admission. Announce attachments with ``ImageInput.announced()``
        and add them with :meth:`attach_images` once received. Raises an ImagineError saying what to change."""
        await self._check_access(actor)
        preferences = None if actor.is_console else await self.preferences.get(actor.user_id)
        prepared = preparation.prepare_imagine(self.settings, raw_prompt, preferences, options, owner=actor.is_console)
        return await self._moderated(actor, prepared)

    @counting_refusals
    async def prepare_follow_up(self, actor: Actor, parent_id: int, action: Action, index: int) -> Prepared:
        """The job a result button asks for (upscale, vary, reroll, zoom, pan), with the parent's prompt checked
        against today's rules of the actor's server. Raises ImagineError."""
        await self._check_access(actor)
        parent = await self.scheduler.get(parent_id)
        if not shown_where(parent, actor):  # a crafted press: answered as if the job did not exist
            raise JobNotFoundError(parent_id)
        images = await self.scheduler.images(parent_id)
        prepared = preparation.prepare_follow_up(self.settings, parent, images, action, index)
        inputs = prepared.params.input_paths
        if not all(await asyncio.to_thread(lambda: [Path(path).is_file() for path in inputs])):
            raise ImagineError(
                "the image this job started from is no longer kept (uploads expire); upload it again with /imagine"
            )
        [moderated] = await self._moderated(actor, [prepared])
        return moderated

    async def _moderated(self, actor: Actor, prepared: Sequence[Prepared]) -> list[Prepared]:
        await self.moderation.check_prompts(actor, prompts_to_render(prepared))
        return [replace(item, moderated_for=actor) for item in prepared]

    async def receive_image(self, data: bytes, *, mask: bool = False) -> ReceivedImage:
        """Check an uploaded image (off the event loop) and stage it; it is stored for good only when its request
        is admitted (:meth:`submit`). Raises UploadError saying what to upload instead."""
        limits, uploads_dir = self.upload_limits, self.uploads_dir

        def check_and_stage() -> ReceivedImage:
            checked = check_upload(data, limits=limits, mask=mask)
            staged = stage_upload(checked, uploads_dir)
            return ReceivedImage(staged, ImageInput(staged.path, checked.width, checked.height))

        return await asyncio.to_thread(check_and_stage)

    @staticmethod
    def attach_images(
        prepared: Sequence[Prepared],
        image: ReceivedImage | None,
        mask: ReceivedImage | None = None,
        control: ReceivedImage | None = None,
    ) -> list[Prepared]:
        """The prepared jobs with their received images (and the checks that need their size); ``control``: a
        ControlNet's control image. Raises PromptError."""
        return preparation.attach_images(
            prepared,
            image.input if image is not None else None,
            mask.input if mask is not None else None,
            control.input if control is not None else None,
        )

    # --- admission -------------------------------------------------------------------------------------------

    @counting_refusals
    async def submit(
        self,
        actor: Actor,
        prepared: Sequence[Prepared],
        *,
        lane: Lane | None = None,
        uploads: Sequence[StagedUpload] = (),
    ) -> Admitted:
        """The one way into the queue: charge all jobs up front and queue them, or none. Every job must have been
        prepared (and so moderated) for this very actor. Staged uploads are stored for good once the jobs are
        admitted and discarded on any refusal. Raises an ImagineError (limits, credits, ban, pause) when refused."""
        try:
            if not prepared or any(item.moderated_for != actor for item in prepared):
                raise ValueError("submit only jobs that prepare or prepare_follow_up made for this very actor")
            check_image_prompts_received(prepared)  # a surface that takes no image prompts: refused, not charged
            admitted = await self.scheduler.admit(actor.user_id, prepared, origin=actor.origin, lane=lane)
        except BaseException:
            for upload in uploads:
                upload.discard()
            raise
        # No await since the jobs were admitted: the worker cannot have picked them up before their inputs exist.
        for upload in uploads:
            try:
                upload.commit()
            except (UploadError, OSError) as error:  # the job then fails on its missing input and is refunded
                log.error("could not store an upload of job(s) %s: %s", [item.job.id for item in admitted.jobs], error)
        placed: list[Submitted] = []
        for item in admitted.jobs:
            if self._own_jobs is not None:
                self._own_jobs.add(item.job.id)
            position = await self.scheduler.position(item.job)
            placed.append(replace(item, position=position, eta_s=self.scheduler.eta_s(item.job.id)))
            await self.events.emit(JobEvent(EventKind.QUEUED, item.job, position=position))
        self.engines.wake_all()
        return replace(admitted, jobs=tuple(placed))

    async def submit_shell_request(
        self,
        actor: Actor,
        raw_prompt: str,
        options: TaskOptions,
        checked: Mapping[str, CheckedImage] | None = None,
    ) -> Submitted:
        """``python -m bot generate``: check the request and its files (unless ``checked`` by
        :func:`~bot.requests.shell_files.check_shell_files` already), stage the files, prepare one job and queue it."""
        preparation.check_shell_request(self.settings, raw_prompt, options, owner=actor.is_console)  # before any file
        if checked is None:
            checked = await asyncio.to_thread(check_shell_files, self.settings, options)
        received: dict[str, ReceivedImage] = {}
        try:
            for name, image in checked.items():
                staged = await asyncio.to_thread(stage_upload, image, self.uploads_dir)
                received[name] = ReceivedImage(staged, ImageInput(staged.path, image.width, image.height))
            request = shell_request_options(options, {name: item.input for name, item in received.items()})
            prepared = await self.prepare(actor, preparation.shell_prompt(raw_prompt, options), request)
        except BaseException:
            for item in received.values():
                item.staged.discard()
            raise
        admitted = await self.submit(actor, prepared[:1], uploads=[item.staged for item in received.values()])
        return admitted.jobs[0]

    async def cancel(self, job_id: int, actor: str) -> Job:
        """Cancel a queued or running job and refund it; a running job is also stopped in the engine. ``actor``
        names who cancelled in the ledger; surfaces go through :attr:`member` or :attr:`admin`, which check who
        may cancel what."""
        before = await self.scheduler.get(job_id)
        job = await self.scheduler.cancel(job_id, actor)
        if before.status is Status.RUNNING:
            await self.engines.cancel(job_id)
            self.engines.wake_all()  # the member may run another job now
        await self.events.emit(JobEvent(EventKind.CANCELLED, job, message=job.error or ""))
        return job
