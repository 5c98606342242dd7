"""One engine run on a Ray host, as the bot sees it: the same interface as a local engine process
(:class:`~bot.running.engine_run.RunLike`), over an actor (:class:`engine.ray_actor.EngineActor`).

A reader thread iterates the actor's stream of engine messages. A result arrives with its files' bytes (the host
shares no disk with the bot): they are written under the task's own output folder here, with the engine's file
names, and the supervisor gets a result naming those local files, as from a local engine. The actor or its host
dying ends the stream with an error: that is the run's exit, a crash like any other, and its jobs go back to the
queue for another engine.

``ray`` is imported only inside functions (``import bot…`` never loads it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.running.engine_run import RunState
from engine.atomic_files import write_atomically
from engine.protocol import (
    Cancel,
    EngineConfig,
    FailureReason,
    FromEngine,
    RenderBatch,
    Shutdown,
    TaskDone,
    TaskFailed,
)
from engine.ray_actor import ActorHello, EngineActor, EngineExit, RemoteBatch, RemoteDone, input_paths

log = logging.getLogger(__name__)

ACTOR_CONCURRENCY = 4
"""Calls an engine actor runs at once: its stream of messages, and what the bot sends meanwhile."""


def actor_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """Ray's actor options for an engine asking for ``resources`` (``engine.ray_resources``): ``CPU`` and ``GPU``
    become ``num_cpus`` and ``num_gpus`` (no CPU unless asked: the GPU is what an engine needs), anything else a
    custom resource."""
    custom = {name: amount for name, amount in resources.items() if name not in ("CPU", "GPU")}
    options: dict[str, Any] = {"num_cpus": resources.get("CPU", 0), "max_concurrency": ACTOR_CONCURRENCY}
    if "GPU" in resources:
        options["num_gpus"] = resources["GPU"]
    if custom:
        options["resources"] = custom
    return options


@functools.cache
def _actor_class() -> Any:
    """:class:`EngineActor` as a Ray actor class (made once: each one is exported to the cluster)."""
    import ray

    return ray.remote(EngineActor)


def local_done(done: TaskDone, output_dir: Path, extra_files: tuple[tuple[str, bytes], ...]) -> TaskDone:
    """Write a remote result's files into ``output_dir`` (the engine's file names, nothing outside the folder) and
    return the result naming them, with no bytes. Raises OSError when a file cannot be written, ValueError when the
    result lacks its bytes or names a file no folder can hold."""
    if done.png_bytes is None or len(done.png_bytes) != len(done.paths):
        raise ValueError("the engine sent a result without its images")
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = tuple(_write(output_dir, path, data) for path, data in zip(done.paths, done.png_bytes, strict=True))
    grid_path = ""
    if done.grid_path:
        if done.grid_bytes is None:
            raise ValueError("the engine sent a result without its grid")
        grid_path = _write(output_dir, done.grid_path, done.grid_bytes)
    for name, data in extra_files:
        _write(output_dir, name, data)
    return replace(done, paths=paths, grid_path=grid_path, png_bytes=None, grid_bytes=None)


def _write(folder: Path, remote_path: str, data: bytes) -> str:
    """``data`` as ``folder/<file name of remote_path>``, all of it or nothing; the local path."""
    name = Path(remote_path).name
    if name in ("", ".", ".."):
        raise ValueError(f"the engine named a file {remote_path!r}")
    target = folder / name
    write_atomically(target, data)
    return str(target)


class RayEngineRun(RunState):
    """One engine actor on a Ray cluster (already joined with ``ray.init``), the thread that reads its stream, and
    what the engine said about itself. ``resources``: what the actor asks Ray for (one GPU by default);
    ``data_dir``: the engine's data folder on its host (empty: a temporary one); ``name``: the actor's name, before a
    random suffix (each run is a new actor)."""

    def __init__(
        self,
        config: EngineConfig,
        on_message: Callable[[Any, FromEngine | None], None],
        *,
        resources: Mapping[str, float] | None = None,
        data_dir: str = "",
        name: str = "",
    ) -> None:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("join the Ray cluster (ray.init) before starting an engine on it")
        super().__init__()
        self.name = f"{name or 'imaginebot-engine'}-{uuid.uuid4().hex[:8]}"
        self.pid = self.name
        options = actor_options(resources if resources is not None else {"GPU": 1.0})
        self.actor: Any = _actor_class().options(name=self.name, **options).remote(config, data_dir)
        self._stream = self.actor.messages.options(num_returns="streaming").remote()
        self._send_lock = threading.Lock()
        self._seq = 0
        self._outputs: dict[int, deque[str]] = {}
        """job id -> the output folders of its attempts sent to this engine, oldest first."""
        self._code: int | None = None
        self._on_message = on_message
        self.reader = threading.Thread(target=self._read, name="ray-engine-reader", daemon=True)
        self.reader.start()

    @property
    def alive(self) -> bool:
        return not self.killed and not self.exited.is_set()

    def send(self, message: object) -> None:
        """Hand the engine a batch (with its input images' bytes), a cancel or a shutdown. Returns at once; raises
        OSError once the engine is gone."""
        if not self.alive:
            raise OSError("the engine on the Ray cluster is gone")
        outgoing: object = message
        with self._send_lock:
            if isinstance(message, RenderBatch):
                outgoing = self._remote(message)
            elif not isinstance(message, Cancel | Shutdown):
                raise ValueError(f"an engine takes no {type(message).__name__}")
            self.actor.send.remote(self._seq, outgoing)
            self._seq += 1

    def _remote(self, batch: RenderBatch) -> RemoteBatch:
        """The batch with the bytes of its input images; its tasks' output folders are remembered for the results.
        Call with the send lock held."""
        inputs: list[tuple[str, bytes]] = []
        for path in dict.fromkeys(path for task in batch.tasks for path in input_paths(task)):
            with contextlib.suppress(OSError):  # unreadable here: the engine fails the task as it would locally
                inputs.append((path, Path(path).read_bytes()))
        for task in batch.tasks:
            self._outputs.setdefault(task.job_id, deque()).append(task.output_dir)
        tasks = tuple(replace(task, return_bytes=True) for task in batch.tasks)
        return RemoteBatch(replace(batch, tasks=tasks), tuple(inputs))

    def exit_code(self) -> int | None:
        return self._code

    def kill(self) -> None:
        """End the actor (and with it the engine) now."""
        import ray

        with contextlib.suppress(Exception):  # already gone, or Ray itself is shut down
            ray.kill(self.actor, no_restart=True)

    # --- the stream --------------------------------------------------------------------------------------

    def _read(self) -> None:
        import ray

        try:
            for ref in self._stream:
                message = ray.get(ref)
                if isinstance(message, EngineExit):
                    self._code = message.code
                    break
                if isinstance(message, ActorHello):
                    self.pid = f"{self.name} on {message.where}"
                    log.info("engine %s", self.pid)
                    continue
                self._on_message(self, self._here(message))
        except Exception as error:  # the actor or its host died, or the bot left the cluster
            level = logging.DEBUG if self.killed or self.stopping else logging.WARNING
            log.log(level, "engine %s ended: %s", self.name, str(error).splitlines()[0] if str(error) else error)
        self.exited.set()
        self.kill()  # a clean exit too: the actor holds its GPU until it is gone
        self._on_message(self, None)
        self.gone.set()

    def _here(self, message: FromEngine | RemoteDone) -> FromEngine:
        """A message as a local engine would have sent it: a result's files written here."""
        if not isinstance(message, RemoteDone | TaskFailed):
            return message
        done = message.done if isinstance(message, RemoteDone) else message
        with self._send_lock:
            attempts = self._outputs.get(done.job_id)
            output_dir = attempts.popleft() if attempts else None
            if attempts is not None and not attempts:
                del self._outputs[done.job_id]
        if isinstance(message, TaskFailed):
            return message
        if output_dir is None:
            return TaskFailed(
                done.job_id, FailureReason.INTERNAL, "the engine sent the files of a job it was not given"
            )
        try:
            return local_done(message.done, Path(output_dir), message.extra_files)
        except (OSError, ValueError) as error:
            log.error("could not store the images of job %s in %s: %s", done.job_id, output_dir, error)
            return TaskFailed(done.job_id, FailureReason.INTERNAL, f"could not store its images here: {error}")
