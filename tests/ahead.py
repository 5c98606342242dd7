"""Commands a test only checks once they have finished, run ahead of the test on the machine's other core.

A test that starts ``python -m bot generate`` or a chaos benchmark spends almost all of its time in child processes
that import torch and diffusers, one core busy while the test waits. Such a test declares its commands with
:func:`ahead`; when the session starts, :class:`AheadRunner` runs the commands of every collected test that
declared some, in collection order and one process at a time, on a thread of its own, while the other tests run.
The test then checks the finished processes as it would have checked ``subprocess.run``: the same command line,
environment and folder, and a timeout is ``subprocess.TimeoutExpired`` raised in the test.

A test's own commands run one after another, in the order it lists them (a later one may use what an earlier one
wrote). Nothing else shares their folder.

A step may also be a function (an :class:`Interaction`) that drives child processes itself, such as one that sends
Ctrl-C once a command says it renders; the test gets what it returns. It runs on the background thread, so it
must only start processes and read and write files of its folder: it gets its environment from the prepare
function (the test's own environment), never from ``os.environ``, which the tests running meanwhile change.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MARKER = "ahead"


ROOT = Path(__file__).resolve().parents[1]


def child_environment(base: Mapping[str, str] | None = None, **variables: str) -> dict[str, str]:
    """The environment of a child process of the bot's: ``base`` (this process's by default) without any IMAGINE*
    variable (none from the developer's machine), the project importable, offline, no configuration file, no web
    server (a test that runs the bot turns it on, on a free port); then ``variables`` (which may override any)."""
    environment = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("IMAGINE")}
    environment.update(
        {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "IMAGINE_CONFIG": os.devnull, "IMAGINE_WEB__ENABLED": "false"}
    )
    environment.update(variables)
    return environment


@dataclass(frozen=True)
class Command:
    """One child process, as ``subprocess.run(args, cwd=cwd, env=env, timeout=timeout, capture_output=True,
    text=True)`` would start it."""

    args: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    timeout: float = 300.0


Interaction = Callable[[], Any]
"""A scripted session with child processes; it stops them itself (a time limit of its own) and returns what the
test checks."""

Prepare = Callable[[Path, dict[str, Any]], list[Command | Interaction]]
"""Given a fresh folder for the test and its parameters (empty when it has none), write any input files there and
return the commands (or interactions) to run."""


def ahead(prepare: Prepare) -> pytest.MarkDecorator:
    """Mark a test whose commands ``prepare`` gives: they run ahead of it; the test reads them with the ``ran``
    fixture."""
    return pytest.mark.ahead.with_args(prepare)  # with_args: a lone callable would be taken for the test


@dataclass
class Ran:
    """What a test's commands left: their folder, and each finished process (or what each interaction returned) in
    the order of the commands."""

    folder: Path
    results: list[Any]
    seconds: float
    """Wall-clock seconds the commands ran."""


@dataclass
class _Entry:
    key: str
    folder: Path
    commands: list[Command | Interaction]
    done: threading.Event = field(default_factory=threading.Event)
    results: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    seconds: float = 0.0


class AheadRunner:
    """Runs the scheduled tests' commands on one background thread, in the order they were scheduled."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._order: list[_Entry] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.waited_s = 0.0
        """Seconds tests spent waiting for commands that had not finished yet."""

    @property
    def ran_s(self) -> float:
        """Seconds the commands ran, in all."""
        return sum(entry.seconds for entry in self._order if entry.done.is_set())

    def __len__(self) -> int:
        return len(self._order)

    def schedule(self, key: str, folder: Path, commands: list[Command | Interaction]) -> None:
        entry = _Entry(key, folder, commands)
        self._entries[key] = entry
        self._order.append(entry)

    def start(self) -> None:
        if self._order and self._thread is None:
            self._thread = threading.Thread(target=self._work, name="tests-ahead", daemon=True)
            self._thread.start()

    def result(self, key: str) -> Ran:
        """Wait for the commands of ``key`` and give what they left (re-raising what stopped them)."""
        entry = self._entries[key]
        started = time.monotonic()
        entry.done.wait()
        self.waited_s += time.monotonic() - started
        if entry.error is not None:
            raise entry.error
        return Ran(entry.folder, list(entry.results), entry.seconds)

    def stop(self) -> None:
        """Kill the command that runs now (its whole process group; an interaction ends by its own time limit) and
        skip the rest."""
        with self._lock:
            self._stopping = True
            process = self._process
        if process is not None:
            _kill_group(process)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _work(self) -> None:
        for entry in self._order:
            started = time.monotonic()
            try:
                for command in entry.commands:
                    entry.results.append(
                        self._run(command) if isinstance(command, Command) else self._interact(command)
                    )
            except BaseException as error:  # handed to the test that reads the entry
                entry.error = error
            finally:
                entry.seconds = time.monotonic() - started
                entry.done.set()

    def _interact(self, interaction: Interaction) -> Any:
        if self._stopping:
            raise RuntimeError("the test session ended before this interaction ran")
        return interaction()

    def _run(self, command: Command) -> subprocess.CompletedProcess[str]:
        with self._lock:
            if self._stopping:
                raise RuntimeError("the test session ended before this command ran")
            process = self._process = subprocess.Popen(
                list(command.args),
                cwd=command.cwd,
                env=dict(command.env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own process group: a timeout or the session's end kills its children
            )
        try:
            stdout, stderr = process.communicate(timeout=command.timeout)
        except subprocess.TimeoutExpired as expired:
            _kill_group(process)
            stdout, stderr = process.communicate()
            raise subprocess.TimeoutExpired(process.args, command.timeout, stdout, stderr) from expired
        finally:
            with self._lock:
                self._process = None
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
