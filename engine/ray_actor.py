"""One engine on a Ray host: the same engine process (:func:`engine.process.run_engine`), started by a Ray actor.

The host shares no disk with the bot. A batch travels with the bytes of the images its tasks read (sources, masks,
control images, image prompts); the actor writes them to a scratch folder of its own and points the tasks there.
Each task's files are written under that scratch folder too, come back as bytes in the result (``return_bytes``),
and are deleted once sent. Every message of the engine streams back to the bot (a Ray streaming generator), in
order, ending with :class:`EngineExit` when the engine process ends.

The class is plain Python: ``bot.running.ray_engine`` makes it a Ray actor with the resources the owner asks for
(one GPU by default). ``ray`` is imported only inside the methods that need it, so this module loads without it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from engine.process import run_engine
from engine.protocol import Cancel, EngineConfig, FromEngine, RenderBatch, RenderTask, Shutdown, TaskDone, TaskFailed

log = logging.getLogger(__name__)

INPUT_FIELDS = ("init_image", "mask_image", "control_image")
"""The fields of a :class:`RenderTask` that name one image the engine reads (``image_prompts`` names several)."""
JOIN_S = 10.0
TEMPORARY_PREFIX = "imaginebot-engine-"
"""An actor with no data folder of its own makes a temporary one, ``imaginebot-engine-<actor pid>-…``."""


@dataclass(frozen=True)
class RemoteBatch:
    """A batch for an engine on another host, with the bytes of every input image its tasks name (by path)."""

    batch: RenderBatch
    inputs: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class RemoteDone:
    """A finished task from another host: its result with the files' bytes, and the bytes of any other file the
    engine wrote beside them (a sweep's compact JPEG copy), by file name."""

    done: TaskDone
    extra_files: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class ActorHello:
    """The first message of the stream: where the engine runs, for the log."""

    where: str


@dataclass(frozen=True)
class EngineExit:
    """The last message of the stream: the engine process ended with ``code``."""

    code: int | None


RemoteMessage = FromEngine | RemoteDone | ActorHello | EngineExit


def input_paths(task: RenderTask) -> tuple[str, ...]:
    """Every image file ``task`` reads: its source, mask, control image and image prompts."""
    single = tuple(getattr(task, name) for name in INPUT_FIELDS)
    return tuple(path for path in (*single, *task.image_prompts) if path)


def host_config(config: EngineConfig, data_dir: Path) -> EngineConfig:
    """``config`` for an engine on this host: files under ``data_dir``, the GPU Ray gave the actor (Ray sets
    ``CUDA_VISIBLE_DEVICES``, where that card is ``cuda``)."""
    device = "cuda" if config.device.startswith("cuda:") else config.device
    return replace(config, data_dir=str(data_dir), device=device, visible_devices="")


class EngineActor:
    """Runs one engine process on this host and relays its messages. Made a Ray actor (with ``max_concurrency``
    of at least 2, so :meth:`send` runs while :meth:`messages` streams) by ``bot.running.ray_engine``.

    ``data_dir`` is the engine's data folder on this host (tiny models and caches are built there); empty: a fresh
    temporary folder, removed when the engine ends. Job files live under ``<data_dir>/ray-scratch/<actor pid>-…``.
    What a killed actor left (its scratch folder, its temporary data folder) is removed when the next one starts.
    """

    def __init__(self, config: EngineConfig, data_dir: str = "") -> None:
        self._own_folder = not data_dir
        if not data_dir:
            remove_stale(Path(tempfile.gettempdir()), TEMPORARY_PREFIX)
        root = Path(data_dir or tempfile.mkdtemp(prefix=f"{TEMPORARY_PREFIX}{os.getpid()}-")).resolve()
        root.mkdir(parents=True, exist_ok=True)
        self.data_dir = root
        scratches = _made(root / "ray-scratch")
        remove_stale(scratches)
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=scratches))
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        self._conn: Connection = parent
        self._process: BaseProcess = context.Process(
            target=run_engine, args=(child, host_config(config, root)), name="imagine-engine", daemon=True
        )
        self._process.start()
        child.close()
        self._lock = threading.Lock()
        self._next_seq = 0
        self._early: dict[int, RemoteBatch | Cancel | Shutdown] = {}
        """Messages that arrived before one sent ahead of them (Ray may run a threaded actor's calls out of order)."""
        self._attempts: dict[int, deque[Path]] = {}
        """job id -> the scratch folders of its attempts the engine holds, oldest first (it answers in order)."""
        self._counter = 0

    def where(self) -> str:
        """``host (ip), actor pid N, engine pid M``."""
        import ray

        ip = ray.util.get_node_ip_address()
        return f"{socket.gethostname()} ({ip}), actor pid {os.getpid()}, engine pid {self._process.pid}"

    def send(self, seq: int, message: RemoteBatch | Cancel | Shutdown) -> None:
        """Hand the engine message number ``seq``; messages reach it in the order of their numbers."""
        with self._lock:
            self._early[seq] = message
            while self._next_seq in self._early:
                ready = self._early.pop(self._next_seq)
                self._next_seq += 1
                with contextlib.suppress(OSError, ValueError):  # a dead engine ends the stream by itself
                    self._conn.send(self._local(ready) if isinstance(ready, RemoteBatch) else ready)

    def messages(self) -> Iterator[RemoteMessage]:
        """Every message of the engine, in order: :class:`ActorHello` first, :class:`EngineExit` last."""
        yield ActorHello(self.where())
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, TaskDone | TaskFailed):
                yield self._finished(message)
            else:
                yield message
        self._process.join(JOIN_S)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join(JOIN_S)
        code = self._process.exitcode
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self._own_folder:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        yield EngineExit(code)

    # --- files -----------------------------------------------------------------------------------------

    def _local(self, remote: RemoteBatch) -> RenderBatch:
        """The batch with each task's inputs written to its scratch folder and its files written there too."""
        contents = dict(remote.inputs)
        tasks = []
        for task in remote.batch.tasks:
            self._counter += 1
            folder = self.scratch / f"{self._counter}-{task.job_id}"
            inputs = _made(folder / "inputs")
            moved: dict[str, str] = {}
            for index, path in enumerate(dict.fromkeys(input_paths(task))):
                local = inputs / f"{index}{Path(path).suffix[:8]}"
                if path in contents:
                    local.write_bytes(contents[path])
                moved[path] = str(local)
            singles = {name: moved[getattr(task, name)] for name in INPUT_FIELDS if getattr(task, name)}
            prompts = tuple(moved[path] for path in task.image_prompts)
            output = str(folder / "output")
            tasks.append(replace(task, output_dir=output, return_bytes=True, image_prompts=prompts, **singles))
            self._attempts.setdefault(task.job_id, deque()).append(folder)
        return replace(remote.batch, tasks=tuple(tasks))

    def _finished(self, reply: TaskDone | TaskFailed) -> TaskDone | TaskFailed | RemoteDone:
        """The reply to send for a task: a result with every file it wrote; its scratch folder is deleted."""
        with self._lock:
            attempts = self._attempts.get(reply.job_id)
            folder = attempts.popleft() if attempts else None
            if attempts is not None and not attempts:
                del self._attempts[reply.job_id]
        try:
            if not isinstance(reply, TaskDone):
                return reply
            listed = {Path(path).name for path in (*reply.paths, reply.grid_path) if path}
            output = folder / "output" if folder is not None else None
            extra = tuple(
                (path.name, path.read_bytes())
                for path in sorted(output.iterdir() if output is not None and output.is_dir() else ())
                if path.is_file() and path.name not in listed and not path.name.startswith(".")
            )
            return RemoteDone(reply, extra)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


def remove_stale(parent: Path, prefix: str = "") -> None:
    """Delete the folders ``<prefix><actor pid>-…`` in ``parent`` that this user's actors no longer running left
    (one that is killed cannot delete its own)."""
    for folder in parent.glob(f"{prefix}*"):
        pid = folder.name.removeprefix(prefix).partition("-")[0]
        with contextlib.suppress(OSError):
            if pid.isdigit() and folder.is_dir() and folder.stat().st_uid == os.getuid() and not _running(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
