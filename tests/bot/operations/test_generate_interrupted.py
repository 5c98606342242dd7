"""``python -m bot generate`` that does not finish its job: stopped by Ctrl-C or SIGTERM at any moment, or failing,
it cancels and refunds its job, says so in one line and exits promptly (130 when stopped), with no traceback from
itself or its engine process. Console jobs that a ``generate`` which is gone left behind are never rendered by the
bot: it cancels and refunds them. Also ``doctor`` and ``models pull`` stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.jobs import Status
from bot.operations.db_check import check_database
from bot.requests.request_options import TaskOptions
from bot.running.engine_supervisor import EngineSupervisor
from bot.scheduling.scheduler import ABANDONED_CONSOLE_JOB
from tests.ahead import Ran, ahead, child_environment
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[3]
PAYING_CONSOLE = '[credits]\nconsole_tier = "free"\n'
"""The console pays like a member on the free tier (allowance 100), so a charge and its refund show."""
ALLOWANCE = 100
STOPPED_WITHIN_S = 10.0
"""From the signal to the exit: the engine gets a few seconds to stop, then it is killed."""


# --- a command in a process group of its own, as a terminal runs it ---------------------------------------------


@dataclass
class Command:
    """``python -m bot ARGS`` in ``folder`` (its data in ``folder/data``), its standard error read line by line."""

    folder: Path
    process: subprocess.Popen[str]
    lines: list[tuple[float, str]] = field(default_factory=list)
    signalled_at: float | None = None
    code: int | None = None
    """The exit code, once :meth:`finish` returned it (kept for a test that checks a command run ahead)."""
    seconds: float = 0.0
    """The seconds from the signal to the exit, likewise."""

    @classmethod
    def start(
        cls,
        folder: Path,
        *args: str,
        config: str = PAYING_CONSOLE,
        env: dict[str, str] | None = None,
        base: Mapping[str, str] | None = None,
    ) -> Command:
        """Start the command; its environment is ``base`` (``os.environ`` by default) and ``env``."""
        (folder / "bot.toml").write_text(config)
        defaults = {"IMAGINE_CONFIG": str(folder / "bot.toml"), "IMAGINE_MODEL": "tiny", "PYTHONUNBUFFERED": "1"}
        environment = child_environment(base, **{**defaults, **(env or {})})
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            cwd=folder,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: the signal reaches it and its children, like Ctrl-C
        )
        command = cls(folder, process)
        threading.Thread(target=command._read, daemon=True).start()
        return command

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:  # text mode: a progress line's "\r" ends a line too
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    @property
    def database(self) -> Path:
        return self.folder / "data" / "imagine.db"

    def wait_for(self, condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
        deadline = time.monotonic() + limit_s
        while not condition():
            assert self.process.poll() is None, f"exited ({self.process.returncode}) before {what}:\n{self.text}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.text}"
            time.sleep(0.01)

    def wait_for_line(self, fragment: str) -> None:
        self.wait_for(lambda: any(fragment in line for _, line in self.lines), repr(fragment))

    def wait_for_child(self, fragment: str) -> None:
        """Until a child process whose command line holds ``fragment`` runs (and a moment more: the command
        ignores SIGINT while it starts a child)."""
        self.wait_for(lambda: any(fragment in command for command in _children(self.process.pid)), fragment)
        time.sleep(0.3)

    def send(self, number: signal.Signals, times: int = 1) -> None:
        """SIGINT to the process group, as Ctrl-C in a terminal; SIGTERM to the command alone, as ``kill`` or
        ``docker stop``."""
        self.signalled_at = time.monotonic()
        for _ in range(times):
            with contextlib.suppress(ProcessLookupError):  # it may have just finished
                if number == signal.SIGINT:
                    os.killpg(self.process.pid, number)
                else:
                    os.kill(self.process.pid, number)
            time.sleep(0.05)

    def finish(self, limit_s: float = 60.0) -> tuple[int, float]:
        """The exit code and the seconds from the signal to the exit (killed after ``limit_s``: a hang)."""
        try:
            code = self.process.wait(limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(f"still running {limit_s} s after the signal (hung):\n{self.text}") from None
        time.sleep(0.1)  # the reader takes the last lines
        return code, time.monotonic() - (self.signalled_at or time.monotonic())

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def said_after_signal(self) -> list[str]:
        """Lines written after the signal, without the progress line's redraws."""
        assert self.signalled_at is not None
        return [
            line
            for at, line in self.lines
            if at >= self.signalled_at and line.strip() and not line.startswith("rendering job ")
        ]

    def job(self) -> sqlite3.Row:
        with sqlite3.connect(self.database) as db:
            db.row_factory = sqlite3.Row
            (row,) = db.execute("SELECT * FROM jobs").fetchall()
            return row

    def job_status(self) -> str | None:
        try:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as db:
                row = db.execute("SELECT status FROM jobs").fetchone()
        except sqlite3.Error:
            return None
        return None if row is None else str(row[0])


def _children(pid: int) -> list[str]:
    """The command lines of the child processes of ``pid``."""
    found: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return found


def refunded(database: Path, job_id: int) -> tuple[int, int]:
    """What the job was charged and what its ledger rows add up to (0 once refunded)."""
    with sqlite3.connect(database) as db:
        cost = db.execute("SELECT cost FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
        total = db.execute("SELECT COALESCE(SUM(delta), 0) FROM ledger WHERE job_id = ?", (job_id,)).fetchone()[0]
    return cost, total


# --- generate stopped by a signal ----------------------------------------------------------------------------------


def _stop_generate(folder: Path, params: dict[str, Any]) -> list[Callable[[], Command]]:
    base = dict(os.environ)

    def interact() -> Command:
        command = Command.start(folder, "generate", "a red fox --steps 60", "-o", "fox.png", base=base)
        if params["moment"] == "importing":
            command.wait_for_line("importing torch")
        else:
            command.wait_for_line("engine ready")
            command.wait_for(lambda: command.job_status() == "running", "the job to run")
        command.send(params["number"], params["times"])
        command.code, command.seconds = command.finish()
        return command

    return [interact]


@pytest.mark.slow
@ahead(_stop_generate)
@pytest.mark.parametrize(
    ("moment", "number", "times"),
    [
        ("importing", signal.SIGINT, 1),
        ("rendering", signal.SIGINT, 1),
        ("rendering", signal.SIGTERM, 1),
        ("rendering", signal.SIGINT, 2),
    ],
    ids=[
        "ctrl-c-while-the-engine-imports",
        "ctrl-c-while-it-renders",
        "sigterm-while-it-renders",
        "ctrl-c-twice-while-it-renders",
    ],
)
async def test_generate_stopped_cancels_its_job_in_one_line(
    ran: Ran, moment: str, number: signal.Signals, times: int
) -> None:
    """Stopped while the engine imports or renders: exit 130 promptly, one line `interrupted; job N cancelled`,
    no traceback from the command or its engine, the job cancelled and refunded, the database consistent, and a
    bot started afterwards does not render it."""
    (command,) = ran.results
    code, seconds = command.code, command.seconds
    job = command.job()
    assert code == 130, command.text
    assert seconds < STOPPED_WITHIN_S, command.text
    assert "Traceback" not in command.text
    assert command.said_after_signal() == [f"interrupted; job {job['id']} cancelled"], command.text
    assert job["status"] == Status.CANCELLED
    cost, total = refunded(command.database, job["id"])
    assert cost > 0 and total == 0
    assert check_database(command.database, check_files=False) == []
    if moment == "rendering":  # the bot that starts next leaves it alone
        service = await ImagineService.open(make_settings(ran.folder / "data", database_path=command.database))
        try:
            assert await service.scheduler.dispatch() == []
        finally:
            await service.close()


def _ctrl_c_while_closing(folder: Path, _params: dict[str, Any]) -> list[Callable[[], Command]]:
    base = dict(os.environ)

    def interact() -> Command:
        command = Command.start(folder, "generate", "a red fox --steps 2", "-o", "fox.png", base=base)
        command.wait_for_line("grid: ")
        command.send(signal.SIGINT)
        command.code, command.seconds = command.finish(limit_s=30)
        return command

    return [interact]


@pytest.mark.slow
@ahead(_ctrl_c_while_closing)
def test_ctrl_c_while_generate_closes_does_not_hang(ran: Ran) -> None:
    """Ctrl-C right after the grid is written, while the engine stops: the job is done, exit 0 promptly (this
    used to hang until a second Ctrl-C: the database was left open)."""
    (command,) = ran.results
    code, seconds = command.code, command.seconds
    assert code == 0, command.text
    assert seconds < STOPPED_WITHIN_S and "Traceback" not in command.text
    assert command.job()["status"] == Status.COMPLETED
    assert (ran.folder / "fox.png").is_file()


def _unfetchable_model(folder: Path, _params: dict[str, Any]) -> list[Callable[[], Command]]:
    base = dict(os.environ)

    def interact() -> Command:
        command = Command.start(
            folder,
            "generate",
            "a red fox",
            "-o",
            "fox.png",
            env={"IMAGINE_MODEL": "sd15", "HF_HOME": str(folder / "hf")},
            base=base,
        )
        command.signalled_at = time.monotonic()
        command.code, command.seconds = command.finish()
        return command

    return [interact]


@pytest.mark.slow
@ahead(_unfetchable_model)
def test_generate_whose_model_cannot_be_fetched_leaves_no_job(ran: Ran) -> None:
    """The default hub model, not downloaded, offline: one error line that says the job was cancelled, exit 1,
    the job cancelled and refunded (no queued job for the next bot start to render)."""
    (command,) = ran.results
    code = command.code
    job = command.job()
    assert code == 1, command.text
    assert "Traceback" not in command.text
    errors = [line for _, line in command.lines if line.startswith("error: ")]
    assert len(errors) == 1 and "is not downloaded" in errors[0], command.text
    assert errors[0].endswith(f"; job {job['id']} cancelled")
    assert job["status"] == Status.CANCELLED
    cost, total = refunded(command.database, job["id"])
    assert cost > 0 and total == 0
    assert check_database(command.database, check_files=False) == []


# --- other commands stopped by Ctrl-C -----------------------------------------------------------------------------


def _ctrl_c_while_the_child_imports(folder: Path, params: dict[str, Any]) -> list[Callable[[], Command]]:
    base = dict(os.environ)

    def interact() -> Command:
        command = Command.start(folder, *params["args"], base=base)
        command.wait_for_child(params["child"])
        command.send(signal.SIGINT)
        command.code, command.seconds = command.finish()
        return command

    return [interact]


@pytest.mark.slow
@ahead(_ctrl_c_while_the_child_imports)
@pytest.mark.parametrize(
    ("args", "child", "line"),
    [
        (("doctor",), "engine.probe", "interrupted"),
        (
            ("models", "pull", "tiny"),
            "engine.pull",
            "interrupted; run `python -m bot models pull tiny` again to finish (a download resumes)",
        ),
    ],
    ids=["doctor", "models-pull"],
)
def test_ctrl_c_stops_a_command_and_its_child_in_one_line(
    ran: Ran, args: tuple[str, ...], child: str, line: str
) -> None:
    """Ctrl-C while the command's child process imports torch: exit 130 promptly, one line, no traceback."""
    (command,) = ran.results
    code, seconds = command.code, command.seconds
    assert code == 130, command.text
    assert seconds < STOPPED_WITHIN_S
    assert "Traceback" not in command.text
    assert command.said_after_signal() == [line], command.text


# --- console jobs whose generate is gone, seen by the bot --------------------------------------------------------


async def _left_by_a_generate(database: Path, data: Path, *, claim: bool) -> int:
    """Queue (and with ``claim`` start) a console job as ``generate`` does, then end without a word, as a
    ``generate`` that was killed does. Its job id."""
    settings = make_settings(data, database_path=database, credits={"console_tier": "free"})
    generate = await ImagineService.open(settings, only_own_jobs=True)
    try:
        submitted = await generate.submit_shell_request(Actor.console(), "a fox", TaskOptions())
        if claim:
            assert await generate.scheduler.claim_next(generate.own_jobs) is not None
    finally:
        await generate.close()
    return submitted.job.id


def _set_lease(database: Path, job_id: int, lease: float | None) -> None:
    with sqlite3.connect(database) as db:
        db.execute("UPDATE jobs SET lease_expires_at = ? WHERE id = ?", (lease, job_id))


@pytest.mark.parametrize(
    ("claimed", "lease_in_s", "cancelled"),
    [
        (False, None, True),  # queued by a release that held nothing
        (False, -1.0, True),  # queued; its generate stopped holding it
        (True, -1.0, True),  # running; its generate stopped holding it
        (False, 60.0, False),  # queued; a generate beside the bot holds it
        (True, 60.0, False),  # running in a generate beside the bot
    ],
)
async def test_bot_start_never_renders_a_console_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, claimed: bool, lease_in_s: float | None, cancelled: bool
) -> None:
    """A bot that starts leaves a console job to its generate: it never dispatches or requeues it; one whose
    generate no longer holds it is cancelled and refunded with a log line, one still held keeps its state."""
    database = tmp_path / "imagine.db"
    job_id = await _left_by_a_generate(database, tmp_path / "data", claim=claimed)
    _set_lease(database, job_id, None if lease_in_s is None else time.time() + lease_in_s)
    caplog.set_level(logging.WARNING, logger="bot.scheduling.scheduler")
    bot = await ImagineService.open(make_settings(tmp_path / "data", database_path=database))
    try:
        assert await bot.scheduler.dispatch() == []
        job = await bot.scheduler.get(job_id)
        if cancelled:
            assert job.status is Status.CANCELLED and job.error == ABANDONED_CONSOLE_JOB
            assert f"[{job_id}]" in caplog.text and "no longer running" in caplog.text
        else:
            assert job.status is (Status.RUNNING if claimed else Status.QUEUED)
    finally:
        await bot.close()
    cost, total = refunded(database, job_id)
    assert cost > 0 and total == (0 if cancelled else -cost)
    assert check_database(database, check_files=False) == []


async def test_lease_sweep_cancels_a_console_job_instead_of_requeueing_it(tmp_path: Path) -> None:
    """A running bot's lease sweep: a console job whose generate stopped holding it is cancelled and refunded,
    never put back in the bot's queue."""
    database = tmp_path / "imagine.db"
    job_id = await _left_by_a_generate(database, tmp_path / "data", claim=True)
    bot = await ImagineService.open(make_settings(tmp_path / "data", database_path=database))
    try:
        _set_lease(database, job_id, time.time() - 1)
        assert await bot.scheduler.expire_leases() == [job_id]
        assert (await bot.scheduler.get(job_id)).status is Status.CANCELLED
        assert await bot.scheduler.dispatch() == []
    finally:
        await bot.close()
    assert refunded(database, job_id)[1] == 0


@pytest.mark.slow
async def test_generate_holds_its_job_while_a_bot_sweeps(
    data_dir: Path, tmp_path: Path, engine: EngineSupervisor
) -> None:
    """A generate that renders for longer than the lease keeps its job: the bot's sweep beside it, every 0.1 s,
    never takes it for abandoned."""
    settings = make_settings(
        data_dir,
        database_path=tmp_path / "imagine.db",
        credits={"console_tier": "free"},
        scheduler={"lease_s": 1.0},
    )
    generate = await ImagineService.open(settings, engine=engine, only_own_jobs=True)
    bot = await ImagineService.open(settings, engine=engine)
    swept: list[int] = []
    try:
        # 24 steps of a 4-image grid: about 3 s, three leases
        submitted = await generate.submit_shell_request(Actor.console(), "a fox --steps 24", TaskOptions())
        rendering = asyncio.create_task(generate.run_own_jobs())
        while not rendering.done():
            swept += await bot.scheduler.expire_leases()
            await asyncio.sleep(0.1)
        await rendering
        job = await generate.scheduler.get(submitted.job.id)
    finally:
        await bot.close()
        await generate.close()
    assert swept == []
    assert job.status is Status.COMPLETED
    assert job.finished_at is not None and job.started_at is not None
    assert job.finished_at - job.created_at > settings.scheduler.lease_s  # it outlived one lease
