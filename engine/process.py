"""The engine process: load the model once, then render batches as they arrive.

Started by the bot with multiprocessing's ``spawn`` method, so this module stays light at import time (the bot
imports it to name the target); torch and diffusers are imported inside :func:`run_engine`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from engine.compile_cache import compile_cache_environment
from engine.protocol import (
    STARTING_IMPORTING,
    Cancel,
    EngineConfig,
    EngineFatal,
    EngineReady,
    EngineStarting,
    FailureReason,
    FromEngine,
    Heartbeat,
    Progress,
    RenderBatch,
    RenderTask,
    Shutdown,
    TaskDone,
    TaskFailed,
    TaskKind,
    ToEngine,
)

if TYPE_CHECKING:
    from engine.finishing import Outcome
    from engine.preview import PreviewEncoder

log = logging.getLogger(__name__)

MIN_HEARTBEAT_S = 0.05
"""The shortest heartbeat interval the engine honours."""


class _Outbox:
    """Sends to the bot from several threads (the render loop, the heartbeat), one whole message at a time."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, message: FromEngine) -> None:
        with self._lock:
            self._conn.send(message)


class _Heartbeat:
    """Says every few seconds which jobs this engine holds and in what phase, from receipt until their result.

    It runs on a thread of its own so it keeps beating while the render loop is inside one long call (loading a
    model, decoding, writing files); it stops when the process dies or freezes, so the bot's lease on a job
    outlives neither. A render loop that hangs keeps the beat going and is stopped by the bot's job timeout.
    """

    def __init__(self, outbox: _Outbox) -> None:
        self._outbox = outbox
        self._jobs: dict[int, tuple[str, float]] = {}
        """job id -> (phase, interval in seconds; 0 for beats on phase changes only)."""
        self._holds: dict[int, int] = {}
        """job id -> how many attempts of it the engine holds."""
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="engine-heartbeat", daemon=True)
        self._thread.start()

    def hold(self, job_ids: list[int], interval_s: float) -> None:
        """The engine received these jobs: beat for them from now on (until each is released as often as held: a
        new attempt of a job may arrive while the last one's files are still written)."""
        interval = max(MIN_HEARTBEAT_S, interval_s) if interval_s > 0 else 0.0
        with self._lock:
            for job_id in job_ids:
                self._holds[job_id] = self._holds.get(job_id, 0) + 1
                phase = self._jobs[job_id][0] if job_id in self._jobs else "queued"
                self._jobs[job_id] = (phase, interval)
        self._changed.set()

    def phase(self, job_ids: list[int], phase: str) -> None:
        """The jobs entered a new phase; a beat goes out at once."""
        with self._lock:
            for job_id in job_ids:
                if job_id in self._jobs:
                    self._jobs[job_id] = (phase, self._jobs[job_id][1])
        self._changed.set()

    def release(self, job_id: int) -> None:
        """The job's result is about to be sent: no beat for it follows, unless another attempt of it is held."""
        with self._lock:
            holds = self._holds.pop(job_id, 0) - 1
            if holds > 0:
                self._holds[job_id] = holds
            else:
                self._jobs.pop(job_id, None)

    def _beat(self) -> None:
        while True:
            with self._lock:
                intervals = [interval for _, interval in self._jobs.values() if interval > 0]
            self._changed.wait(min(intervals) if intervals else None)
            self._changed.clear()
            with self._lock:  # held while sending, so a beat never follows the job's result
                try:
                    for job_id, (phase, _) in self._jobs.items():
                        self._outbox.send(Heartbeat(job_id, phase))
                except (OSError, ValueError):
                    return


class _Inbox:
    """Reads the pipe on a thread so a Cancel arrives while a batch is rendering.

    It remembers the jobs of the batches it received until they are forgotten; a Cancel for any other job is
    ignored, so a stale cancel can never stop a later job that happens to have the same id.
    """

    def __init__(self, conn: Connection, heartbeat: _Heartbeat | None = None) -> None:
        self._conn = conn
        self._heartbeat = heartbeat
        self._queue: queue.Queue[ToEngine] = queue.Queue()
        self._held: set[int] = set()
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="engine-inbox", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):  # the bot is gone: nobody waits for these jobs, stop them at the next step
                with self._lock:
                    self._cancelled.update(self._held)
                self._queue.put(Shutdown())
                return
            if isinstance(message, Cancel):
                with self._lock:
                    if message.job_id in self._held:
                        self._cancelled.add(message.job_id)
                continue
            if isinstance(message, RenderBatch):
                job_ids = [task.job_id for task in message.tasks]
                with self._lock:
                    self._held.update(job_ids)
                if self._heartbeat is not None:
                    self._heartbeat.hold(job_ids, message.heartbeat_s)
            self._queue.put(message)
            if isinstance(message, Shutdown):
                return

    def get(self) -> ToEngine:
        return self._queue.get()

    def is_cancelled(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def forget(self, job_id: int) -> None:
        with self._lock:
            self._held.discard(job_id)
            self._cancelled.discard(job_id)


def run_engine(conn: Connection, config: EngineConfig) -> None:
    """Entry point of the engine process.

    SIGINT is ignored: Ctrl-C in a terminal reaches the whole foreground process group, and the bot that started
    this process decides what it means (it sends Shutdown or a Cancel, and kills an engine that does not stop).
    SIGTERM keeps its default action, so ``kill`` and multiprocessing's exit handling still end the process."""
    with contextlib.suppress(ValueError):  # only possible on the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(levelname)s %(name)s: %(message)s")
    if config.visible_devices:  # one GPU of several: this engine's "cuda" is that card (before CUDA starts)
        os.environ["CUDA_VISIBLE_DEVICES"] = config.visible_devices
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    compile_cache_environment(config.data_dir)  # before diffusers' import fixes inductor's cache folder
    outbox = _Outbox(conn)
    heartbeat = _Heartbeat(outbox)
    inbox = _Inbox(conn, heartbeat)
    outbox.send(EngineStarting(STARTING_IMPORTING, detail="torch and diffusers"))
    try:
        import diffusers
        import torch
        import tqdm

        from engine.finishing import ResultQueue
        from engine.pipelines import ModelCache, ModelLoadError
        from engine.preview import PreviewEncoder
        from engine.render import group_tasks
    except Exception as error:  # an old torch or a broken install: one line with the cause and what to do
        from engine.import_failure import describe_import_failure

        log.debug("the engine's libraries did not import", exc_info=True)
        outbox.send(EngineFatal(describe_import_failure(error)))
        return
    # diffusers' (disabled) progress bars would make tqdm create a multiprocessing lock, a named semaphore that an
    # engine killed by the bot (a job past its timeout, a second Ctrl-C) leaves for the bot to warn about at exit.
    tqdm.tqdm.set_lock(threading.RLock())
    try:
        # What the imports made lives as long as the process: keep it out of every later collection. A full
        # collection otherwise walks it all (about 0.8 s on a 2-core CPU, the GIL held) each time a model is
        # dropped, stalling the render loop and the heartbeat alike; frozen, it takes about 0.1 s.
        gc.freeze()
        cache = ModelCache(config)
        model = cache.get(on_phase=outbox.send)
    except ModelLoadError as error:
        outbox.send(EngineFatal(str(error)))
        return
    except Exception as error:  # an unexpected failure must still reach the bot as words, not silence
        log.exception("engine failed to start")
        outbox.send(EngineFatal(f"the engine failed to start: {type(error).__name__}: {error}"))
        return
    outbox.send(
        EngineReady(
            model_name=config.model_name,
            device=model.device,
            dtype=str(model.dtype).removeprefix("torch."),
            torch_version=torch.__version__,
            diffusers_version=diffusers.__version__,
            max_batch=config.max_batch,
            load_seconds=model.load_seconds,
            speed=model.speed,
        )
    )
    data_dir = Path(config.data_dir).resolve()

    def deliver(reply: TaskDone | TaskFailed) -> None:
        heartbeat.release(reply.job_id)
        outbox.send(reply)

    def show_preview(job_id: int, step: int, total: int, preview: bytes) -> None:
        outbox.send(Progress(job_id, step, total, preview))

    results = ResultQueue(deliver)
    previews = PreviewEncoder(show_preview)
    try:
        while True:
            message = inbox.get()
            if isinstance(message, Shutdown):
                return
            if isinstance(message, RenderBatch):
                for group in group_tasks(message.tasks, config.max_batch):
                    outcomes = _render(cache, config, group, inbox, outbox, data_dir, heartbeat, previews)
                    for task in group:  # decided: a later attempt of the same job starts with a clean slate
                        inbox.forget(task.job_id)
                    results.put(outcomes)
    finally:  # what is rendered is still written and reported (a Shutdown waits for it)
        previews.close()
        results.close()


def _render(
    cache: object,
    config: EngineConfig,
    tasks: list[RenderTask],
    inbox: _Inbox,
    conn: _Outbox | Connection,
    data_dir: Path,
    heartbeat: _Heartbeat | None = None,
    previews: PreviewEncoder | None = None,
) -> list[Outcome]:
    """Render a group of compatible tasks (one pipeline call); one outcome per task, in order: its images (their
    files are written by :mod:`engine.finishing`), or why it failed.

    Each phase (loading the group's model, rendering, then writing files) is told to ``heartbeat``. Previews are
    encoded on ``previews`` when given, else on the render thread.
    """
    import torch

    from engine.families import family_traits
    from engine.finishing import RenderedTask
    from engine.memory_advice import render_oom_message
    from engine.pipelines import GpuMemoryError, ModelCache, ModelLoadError, RenderCancelledError
    from engine.render import Hooks, Rendered, render_group
    from engine.safety import check_rendered

    assert isinstance(cache, ModelCache)
    outcomes: dict[int, Outcome] = {}
    runnable: list[RenderTask] = []
    for task in tasks:
        output_dir = Path(task.output_dir).resolve()
        inputs = (task.init_image, task.mask_image, *task.image_prompts, task.control_image)
        outside = [path for path in inputs if path and not _inside(path, data_dir)]
        if not output_dir.is_relative_to(data_dir):
            outcomes[task.job_id] = TaskFailed(
                task.job_id, "bad_input", f"output folder {task.output_dir} is outside {data_dir}"
            )
        elif outside:
            outcomes[task.job_id] = TaskFailed(
                task.job_id, "bad_input", f"input image {outside[0]} is outside {data_dir}; the engine reads only there"
            )
        elif inbox.is_cancelled(task.job_id):
            outcomes[task.job_id] = TaskFailed(task.job_id, FailureReason.CANCELLED, "cancelled before it started")
        else:
            runnable.append(task)
    started = time.perf_counter()

    def on_step(job_id: int, step: int, total: int, preview: bytes | None) -> None:
        conn.send(Progress(job_id, step, total, preview))

    hooks = Hooks(on_step, inbox.is_cancelled, config.preview_every, previews.submit if previews else None)
    failure: tuple[FailureReason, str] | None = None  # why the whole group failed: each of its jobs gets it
    results: list[Rendered] = []
    job_ids = [task.job_id for task in runnable]
    distilled = False  # the group's model guides with a distilled guidance input (FLUX.1): its files say so

    def phase(name: str) -> None:
        if heartbeat is not None:
            heartbeat.phase(job_ids, name)

    if runnable:
        try:
            model_name = runnable[0].model or config.model_name
            describing = runnable[0].kind == TaskKind.DESCRIBE  # a captioning model: no diffusion model to load
            if model_name not in cache.loaded_names and not describing:
                phase(f"loading model {model_name}")
            if not describing:
                distilled = not family_traits(cache.get(model_name).family).cfg
            phase("rendering")
            results = list(render_group(cache, runnable, config.loras, hooks))
        except RenderCancelledError:
            failure = (FailureReason.CANCELLED, "cancelled while rendering")
        except torch.OutOfMemoryError:
            _free_memory()
            images = [(len(t.seeds), t.width, t.height) for t in runnable]
            failure = (FailureReason.OOM, render_oom_message(images, config.memory, len(runnable)))
        except GpuMemoryError as error:  # the group's model did not fit: the owner's line, as the job's reason
            failure = (FailureReason.OOM, str(error))
        except (ValueError, ModelLoadError) as error:
            failure = (FailureReason.BAD_INPUT, str(error))
        except Exception as error:
            log.exception("job(s) %s failed", [task.job_id for task in runnable])
            failure = (FailureReason.INTERNAL, f"{type(error).__name__}: {error}")
    seconds = time.perf_counter() - started
    if failure is None and runnable:
        phase("writing files")
    for index, task in enumerate(runnable):
        if failure is not None:
            outcomes[task.job_id] = TaskFailed(task.job_id, *failure)
        elif inbox.is_cancelled(task.job_id):  # one job of a shared call: the others go on
            outcomes[task.job_id] = TaskFailed(task.job_id, FailureReason.CANCELLED, "cancelled while rendering")
        else:
            rendered = RenderedTask(task, task.model or config.model_name, results[index], seconds, distilled=distilled)
            outcomes[task.job_id] = check_rendered(rendered, config) if task.safety_check else rendered
    return [outcomes[task.job_id] for task in tasks]


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _inside(path: str, folder: Path) -> bool:
    """True when ``path`` (links resolved) lies under ``folder``: the engine reads and writes only under data/."""
    return Path(path).resolve().is_relative_to(folder)
