"""Several engines fed by one queue: one worker per engine, all drawing from the one scheduler.

The scheduler (SQLite) stays the only authority over order, credits and leases; each engine only renders the
batches its worker claims. A worker hands its engine a batch when the engine is free (and prefetches one more
while it renders, unless another engine is free to start it now). Jobs go to an engine that already holds their
model when one is free (:class:`~bot.scheduling.affinity.Affinity`), so two models on two cards never reload.

Each engine keeps its own supervisor: its process, crash backoff, job timeout and leases. One engine crashing,
hanging or running out of memory fails only the jobs it held, which go back to the head of the queue for the
others. Engines come from an :class:`EngineProvider`: this machine's devices (:class:`LocalEngines`), or a Ray
cluster whose hosts may join and leave while the bot runs (``bot.running.ray_engines``), polled for how many
engines it can run now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from bot.events import EventBus
from bot.running.engine_config import engine_config
from bot.running.engine_devices import EngineDevice, local_engine_devices
from bot.running.engine_host import StartRun
from bot.running.engine_run import EngineRun
from bot.running.engine_supervisor import EngineSupervisor
from bot.running.waiting import ExternalWait, passthrough
from bot.running.worker import BatchRecorder, Worker
from bot.scheduling.affinity import Affinity
from bot.scheduling.scheduler import Scheduler
from config.errors import ConfigError
from config.settings import Settings
from engine.protocol import EngineConfig

log = logging.getLogger(__name__)


class EngineProvider(Protocol):
    """Where engines come from: how many the hosts can run now, and a new (not started) one."""

    poll_s: float | None
    """How often :meth:`wanted` may change (hosts joining); None: it never does."""

    def wanted(self) -> int:
        """How many engines the hosts can run now."""
        ...

    def create(self, index: int) -> tuple[EngineSupervisor, str]:
        """Engine number ``index`` (not started) and a label of where it runs (``cuda:1``, a Ray node)."""
        ...

    def close(self) -> None:
        """Release what the provider holds (a Ray connection); engines are stopped before."""
        ...


def supervised_engine(settings: Settings, config: EngineConfig, start_run: StartRun = EngineRun) -> EngineSupervisor:
    """An engine (not started) run by ``start_run`` with ``config``, under the settings' start and job timeouts."""
    return EngineSupervisor(
        config,
        start_timeout_s=settings.engine_start_timeout_s,
        job_timeout_s=settings.job_timeout_s,
        start_run=start_run,
    )


class LocalEngines:
    """One engine process per device of this machine (``engine.devices``)."""

    poll_s: float | None = None

    def __init__(self, settings: Settings, devices: list[EngineDevice] | None = None) -> None:
        self.settings = settings
        if devices is None:
            try:
                devices = local_engine_devices(settings.engine.devices, settings.device)
            except ValueError as error:
                raise ConfigError(f"invalid configuration: {error}") from None
        self.devices = devices

    def wanted(self) -> int:
        return len(self.devices)

    def create(self, index: int) -> tuple[EngineSupervisor, str]:
        device = self.devices[index]
        config = replace(engine_config(self.settings), device=device.device, visible_devices=device.visible)
        return supervised_engine(self.settings, config), device.label

    def close(self) -> None:
        return None


class SharedEngines:
    """Engines someone else started and stops (tests, benchmarks): the pool uses them and leaves them running."""

    poll_s: float | None = None

    def __init__(self, engines: EngineSupervisor | Sequence[EngineSupervisor]) -> None:
        self.shared = [engines] if isinstance(engines, EngineSupervisor) else list(engines)
        if not self.shared:
            raise ValueError("share at least one engine")

    def wanted(self) -> int:
        return len(self.shared)

    def create(self, index: int) -> tuple[EngineSupervisor, str]:
        engine = self.shared[index % len(self.shared)]
        return engine, engine.config.visible_devices or engine.config.device

    def close(self) -> None:
        return None


def engine_provider(settings: Settings) -> EngineProvider:
    """Where the engines come from: this machine's devices, or the Ray cluster of ``engine.ray_address``."""
    if settings.engine.backend == "ray":
        from bot.running.ray_engines import RayEngines  # ray is an optional extra: loaded only when asked for

        return RayEngines(settings)
    return LocalEngines(settings)


@dataclass
class EngineSlot:
    """One engine of the pool and the worker that feeds it."""

    index: int
    device: str
    engine: EngineSupervisor
    worker: Worker
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"engine {self.index}"


@dataclass(frozen=True)
class EngineStatus:
    """One engine as ``doctor``, ``/admin stats`` and the metrics show it."""

    name: str
    device: str
    state: str
    """``ready``, ``starting``, ``failing`` (its model cannot load) or ``down`` (restarting after a crash)."""
    model: str
    loaded_models: tuple[str, ...]
    busy: bool
    restarts: int
    pid: int | str | None
    """A local engine's process id; where a Ray engine runs (actor, host, pids)."""


class EnginePool:
    """The engines and their workers. :meth:`start` in the running loop, :meth:`stop` on shutdown."""

    def __init__(
        self,
        scheduler: Scheduler,
        events: EventBus,
        images_dir: Path,
        provider: EngineProvider,
        *,
        owns_engines: bool = True,
        external_wait: ExternalWait = passthrough,
        only: Collection[int] | None = None,
        telemetry: BatchRecorder | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.events = events
        self.images_dir = images_dir
        self.provider = provider
        self.owns_engines = owns_engines
        self.external_wait = external_wait
        self.only = only
        self.telemetry = telemetry
        self.slots: list[EngineSlot] = []
        self._next_index = 0
        self._started = False
        self._poller: asyncio.Task[None] | None = None
        self._grow(max(1, provider.wanted()))

    # --- the slots ---------------------------------------------------------------------------------------

    def _grow(self, wanted: int) -> list[EngineSlot]:
        added: list[EngineSlot] = []
        while len(self.slots) < wanted:
            index = self._next_index
            self._next_index += 1
            engine, device = self.provider.create(index)
            worker = Worker(
                self.scheduler,
                engine,
                self.events,
                self.images_dir,
                external_wait=self.external_wait,
                only=self.only,
                telemetry=self.telemetry,
                peers=self,
            )
            slot = EngineSlot(index, device, engine, worker)
            self.slots.append(slot)
            added.append(slot)
            if self._started:
                self._start_slot(slot)
        self.scheduler.engines = len(self.slots)
        return added

    @property
    def engines(self) -> list[EngineSupervisor]:
        return [slot.engine for slot in self.slots]

    @property
    def workers(self) -> list[Worker]:
        return [slot.worker for slot in self.slots]

    # --- Peers (what each worker asks about the others) ------------------------------------------------

    def affinity_for(self, worker: Worker) -> Affinity | None:
        if len(self.slots) < 2:
            return None
        elsewhere: set[str] = set()
        loaded: frozenset[str] = frozenset()
        for slot in self.slots:
            if slot.worker is worker:
                loaded = slot.engine.loaded_models
            elif slot.worker.free:
                elsewhere |= slot.engine.loaded_models
        return Affinity(loaded, frozenset(elsewhere - loaded))

    def other_is_free(self, worker: Worker) -> bool:
        return any(slot.worker.free for slot in self.slots if slot.worker is not worker)

    def wake_all(self) -> None:
        for slot in self.slots:
            slot.worker.wake()

    # --- life ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every engine and its worker; with a provider whose engines may change, watch it."""
        if self._started:
            return
        self._started = True
        for slot in self.slots:
            self._start_slot(slot)
        if self.provider.poll_s is not None:
            self._poller = asyncio.get_running_loop().create_task(self._watch(self.provider.poll_s), name="engines")

    def _start_slot(self, slot: EngineSlot) -> None:
        slot.engine.spawn()
        slot.task = asyncio.get_running_loop().create_task(slot.worker.run(), name=f"imagine-worker-{slot.index}")
        slot.task.add_done_callback(_log_worker_exit)

    async def _watch(self, every_s: float) -> None:
        """Follow the hosts: an engine for each new one, and engines of hosts that left retired once idle."""
        while True:
            await asyncio.sleep(every_s)
            try:
                wanted = await asyncio.to_thread(self.provider.wanted)
            except Exception:
                log.exception("could not ask how many engines the hosts can run; asking again in %g s", every_s)
                continue
            if wanted > len(self.slots):
                added = self._grow(wanted)
                log.info("%d engine(s) added (%d in all): %s", len(added), len(self.slots), _labels(added))
            elif wanted < len(self.slots):
                await self._shrink(max(1, wanted))

    async def _shrink(self, wanted: int) -> None:
        """Retire engines beyond ``wanted`` that hold no work, the ones that are not running first."""
        spare = sorted(
            (slot for slot in self.slots if slot.worker.batches_in_engine == 0),
            key=lambda slot: (slot.engine.alive, slot.index),
        )
        retired = spare[: len(self.slots) - wanted]
        for slot in retired:
            self.slots.remove(slot)
        self.scheduler.engines = len(self.slots)
        if retired:
            log.info("%d engine(s) retired (%d left): %s", len(retired), len(self.slots), _labels(retired))
            await asyncio.gather(*(self._stop_slot(slot, 10.0) for slot in retired))

    async def _stop_slot(self, slot: EngineSlot, grace_s: float) -> None:
        slot.worker.stop()
        if slot.task is not None:
            slot.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await slot.task
        if self.owns_engines:
            await asyncio.to_thread(slot.engine.stop, grace_s)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop every worker, then every engine this pool started (each gets ``grace_s`` to exit)."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await asyncio.gather(*(self._stop_slot(slot, grace_s) for slot in self.slots))
        if self.owns_engines:
            await asyncio.to_thread(self.provider.close)

    async def run_until_idle(self) -> None:
        """Every worker runs jobs until none is queued and its engine holds none (the CLI, benchmarks)."""
        await asyncio.gather(*(slot.worker.run_until_idle() for slot in self.slots))

    async def cancel(self, job_id: int) -> None:
        """Stop the job in whichever engine holds it (a cancel is kept by each: it is never handed over)."""
        for slot in self.slots:
            await slot.engine.cancel(job_id)

    def kill(self, *, deliberate: bool = False) -> None:
        for slot in self.slots:
            slot.engine.kill(deliberate=deliberate)

    @property
    def alive(self) -> bool:
        """Every worker's serving loop runs."""
        return all(slot.worker.alive for slot in self.slots)

    @property
    def restarts(self) -> int:
        return sum(slot.engine.restarts for slot in self.slots)

    def status(self) -> list[EngineStatus]:
        """Each engine now: where it runs, what it does, which models it holds."""
        return [engine_status(slot) for slot in self.slots]


def engine_status(slot: EngineSlot) -> EngineStatus:
    engine = slot.engine
    ready = engine.ready
    if ready is not None:
        state, model = "ready", ready.model_name
    elif engine.fatal is not None:
        state, model = "failing", engine.config.model_name
    elif engine.alive:
        state, model = "starting", engine.config.model_name
    else:
        state, model = "down", engine.config.model_name
    return EngineStatus(
        name=slot.name,
        device=slot.device,
        state=state,
        model=model,
        loaded_models=tuple(sorted(engine.loaded_models)),
        busy=slot.worker.batches_in_engine > 0,
        restarts=engine.restarts,
        pid=engine.pid,
    )


def _labels(slots: list[EngineSlot]) -> str:
    return ", ".join(f"{slot.name} ({slot.device})" for slot in slots)


def _log_worker_exit(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("a worker stopped on an error: %r", error, exc_info=error)
