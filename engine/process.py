"""The engine process: load the model once, then render batches as they arrive.

Started by the bot with multiprocessing's ``spawn`` method, so this module stays light at import time (the bot
imports it to name the target); torch and diffusers are imported inside :func:`run_engine`.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from engine.protocol import (
    Cancel,
    EngineConfig,
    EngineFatal,
    EngineReady,
    Progress,
    RenderBatch,
    RenderTask,
    Shutdown,
    TaskDone,
    TaskFailed,
    ToEngine,
)

log = logging.getLogger(__name__)


class _Inbox:
    """Reads the pipe on a thread so a Cancel arrives while a batch is rendering."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._queue: queue.Queue[ToEngine] = queue.Queue()
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="engine-inbox", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._queue.put(Shutdown())
                return
            if isinstance(message, Cancel):
                with self._lock:
                    self._cancelled.add(message.job_id)
            else:
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
            self._cancelled.discard(job_id)


def run_engine(conn: Connection, config: EngineConfig) -> None:
    """Entry point of the engine process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    inbox = _Inbox(conn)
    try:
        import diffusers
        import torch

        from engine.pipelines import ModelCache, ModelLoadError

        cache = ModelCache(config)
        model = cache.get()
    except ModelLoadError as error:
        conn.send(EngineFatal(str(error)))
        return
    except Exception as error:  # an unexpected failure must still reach the bot as words, not silence
        log.exception("engine failed to start")
        conn.send(EngineFatal(f"the engine failed to start: {type(error).__name__}: {error}"))
        return
    conn.send(
        EngineReady(
            model_name=config.model_name,
            device=model.device,
            dtype=str(model.dtype).removeprefix("torch."),
            torch_version=torch.__version__,
            diffusers_version=diffusers.__version__,
            max_batch=config.max_batch,
            load_seconds=model.load_seconds,
        )
    )
    data_dir = Path(config.data_dir).resolve()
    while True:
        message = inbox.get()
        if isinstance(message, Shutdown):
            return
        if isinstance(message, RenderBatch):
            from engine.render import group_tasks

            for group in group_tasks(message.tasks, config.max_batch):
                for reply in _run_group(cache, config, group, inbox, conn, data_dir):
                    conn.send(reply)
                for task in group:
                    inbox.forget(task.job_id)


def _run_group(
    cache: object,
    config: EngineConfig,
    tasks: list[RenderTask],
    inbox: _Inbox,
    conn: Connection,
    data_dir: Path,
) -> list[TaskDone | TaskFailed]:
    """Render a group of compatible tasks (one pipeline call) and write their PNGs; one reply per task."""
    import torch

    from engine.pipelines import ModelCache, ModelLoadError, RenderCancelledError
    from engine.render import Hooks, render_group

    assert isinstance(cache, ModelCache)
    replies: dict[int, TaskDone | TaskFailed] = {}
    runnable: list[RenderTask] = []
    for task in tasks:
        output_dir = Path(task.output_dir).resolve()
        outside = [path for path in (task.init_image, task.mask_image) if path and not _inside(path, data_dir)]
        if not output_dir.is_relative_to(data_dir):
            replies[task.job_id] = TaskFailed(
                task.job_id, "bad_input", f"output folder {task.output_dir} is outside {data_dir}"
            )
        elif outside:
            replies[task.job_id] = TaskFailed(
                task.job_id, "bad_input", f"input image {outside[0]} is outside {data_dir}; the engine reads only there"
            )
        elif inbox.is_cancelled(task.job_id):
            replies[task.job_id] = TaskFailed(task.job_id, "cancelled", "cancelled before it started")
        else:
            runnable.append(task)
    started = time.perf_counter()

    def on_step(job_id: int, step: int, total: int, preview: bytes | None) -> None:
        conn.send(Progress(job_id, step, total, preview))

    hooks = Hooks(on_step, inbox.is_cancelled, config.preview_every)
    failure: TaskFailed | None = None
    results: list[object] = []
    if runnable:
        try:
            results = list(render_group(cache, runnable, config.loras, hooks))
        except RenderCancelledError:
            failure = TaskFailed(0, "cancelled", "cancelled while rendering")
        except torch.OutOfMemoryError:
            _free_memory()
            sizes = ", ".join(f"{len(t.seeds)} image(s) of {t.width}x{t.height}" for t in runnable)
            failure = TaskFailed(
                0,
                "oom",
                f"the GPU ran out of memory rendering {sizes}; use a smaller --ar size or fewer images, fewer "
                "steps, or ask the owner to enable memory options (attention slicing, VAE tiling, CPU offload)",
            )
        except (ValueError, ModelLoadError) as error:
            failure = TaskFailed(0, "bad_input", str(error))
        except Exception as error:
            log.exception("job(s) %s failed", [task.job_id for task in runnable])
            failure = TaskFailed(0, "internal", f"{type(error).__name__}: {error}")
    seconds = time.perf_counter() - started
    for index, task in enumerate(runnable):
        if failure is not None:
            replies[task.job_id] = TaskFailed(task.job_id, failure.reason, failure.message)
        elif inbox.is_cancelled(task.job_id):
            replies[task.job_id] = TaskFailed(task.job_id, "cancelled", "cancelled while rendering")
        else:
            replies[task.job_id] = _write_results(task.model or config.model_name, task, results[index], seconds)
    return [replies[task.job_id] for task in tasks]


def _write_results(model_name: str, task: RenderTask, rendered: object, seconds: float) -> TaskDone:
    """Write a task's PNGs (and a sweep's grid) with their metadata; the reply that lists them."""
    from engine.metadata import ImageParameters, png_bytes
    from engine.render import Rendered
    from engine.samplers import sampler_label

    assert isinstance(rendered, Rendered)
    output_dir = Path(task.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    encoded: list[bytes] = []
    for index, (image, info) in enumerate(zip(rendered.images, rendered.infos, strict=True)):
        extra: list[tuple[str, str]] = []
        if info.strength is not None:
            extra.append(("Denoising strength", f"{info.strength:g}"))
        if rendered.loras:
            extra.append(("Lora weights", ", ".join(f"{name}: {weight:g}" for name, weight in rendered.loras)))
        data = png_bytes(
            image,
            ImageParameters(
                prompt=info.prompt,
                negative_prompt=task.negative_prompt,
                steps=info.steps,
                sampler=sampler_label(info.sampler),
                cfg=info.cfg,
                seed=info.seed,
                width=image.width,
                height=image.height,
                model=model_name,
                extra=tuple(extra),
            ),
        )
        path = output_dir / f"{index}.png"
        _write_atomically(path, data)
        paths.append(str(path))
        encoded.append(data)
    grid_path = ""
    if rendered.grid is not None:
        grid_file = output_dir / "sweep.png"
        grid_data = png_bytes(
            rendered.grid,
            ImageParameters(
                prompt=task.prompt,
                negative_prompt=task.negative_prompt,
                steps=task.steps,
                sampler=sampler_label(task.sampler),
                cfg=task.cfg,
                seed=task.seeds[0],
                width=rendered.grid.width,
                height=rendered.grid.height,
                model=model_name,
                extra=tuple((name, ",".join(values)) for name, values in task.sweep),
            ),
        )
        _write_atomically(grid_file, grid_data)
        grid_path = str(grid_file)
    return TaskDone(
        job_id=task.job_id,
        paths=tuple(paths),
        seeds=tuple(info.seed for info in rendered.infos),
        width=rendered.images[0].width,
        height=rendered.images[0].height,
        seconds=seconds,
        png_bytes=tuple(encoded) if task.return_bytes else None,
        grid_path=grid_path,
        labels=tuple(info.label for info in rendered.infos) if rendered.grid is not None else (),
    )


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _inside(path: str, folder: Path) -> bool:
    """True when ``path`` (links resolved) lies under ``folder``: the engine reads and writes only under data/."""
    return Path(path).resolve().is_relative_to(folder)
