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

        from engine.pipelines import ModelLoadError, load_model

        model = load_model(config)
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
            for task in message.tasks:
                conn.send(_run_task(model, task, inbox, conn, data_dir))
                inbox.forget(task.job_id)


def _run_task(
    model: object, task: RenderTask, inbox: _Inbox, conn: Connection, data_dir: Path
) -> TaskDone | TaskFailed:
    import torch

    from engine.metadata import ImageParameters, png_bytes
    from engine.pipelines import LoadedModel, RenderCancelledError, render_txt2img
    from engine.samplers import sampler_label

    assert isinstance(model, LoadedModel)
    output_dir = Path(task.output_dir).resolve()
    if not output_dir.is_relative_to(data_dir):
        return TaskFailed(task.job_id, "bad_input", f"output folder {task.output_dir} is outside {data_dir}")
    if inbox.is_cancelled(task.job_id):
        return TaskFailed(task.job_id, "cancelled", "cancelled before it started")
    started = time.perf_counter()

    def on_step(step: int, total: int) -> None:
        conn.send(Progress(task.job_id, step, total))

    try:
        images = render_txt2img(model, task, on_step, lambda: inbox.is_cancelled(task.job_id))
    except RenderCancelledError:
        return TaskFailed(task.job_id, "cancelled", "cancelled while rendering")
    except torch.OutOfMemoryError:
        _free_memory()
        return TaskFailed(
            task.job_id,
            "oom",
            f"the GPU ran out of memory rendering {len(task.seeds)} images of {task.width}x{task.height}; "
            "use a smaller --ar size, fewer steps, or ask the owner to enable memory options",
        )
    except ValueError as error:
        return TaskFailed(task.job_id, "bad_input", str(error))
    except Exception as error:
        log.exception("job %s failed", task.job_id)
        return TaskFailed(task.job_id, "internal", f"{type(error).__name__}: {error}")
    output_dir.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    encoded: list[bytes] = []
    for index, (image, seed) in enumerate(zip(images, task.seeds, strict=True)):
        data = png_bytes(
            image,
            ImageParameters(
                prompt=task.prompt,
                negative_prompt=task.negative_prompt,
                steps=task.steps,
                sampler=sampler_label(task.sampler),
                cfg=task.cfg,
                seed=seed,
                width=image.width,
                height=image.height,
                model=model.name,
            ),
        )
        path = output_dir / f"{index}.png"
        _write_atomically(path, data)
        paths.append(str(path))
        encoded.append(data)
    return TaskDone(
        job_id=task.job_id,
        paths=tuple(paths),
        seeds=task.seeds,
        width=images[0].width,
        height=images[0].height,
        seconds=time.perf_counter() - started,
        png_bytes=tuple(encoded) if task.return_bytes else None,
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
