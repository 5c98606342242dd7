"""``python -m bot …``: run the bot, render from a shell without Discord, and the owner's commands.

Exit codes, the same for every subcommand:

- ``0``: done.
- ``1``: the command ran and failed: the ledger refused a change, a job failed, the database breaks an invariant,
  a model could not be downloaded, ``doctor`` found problems.
- ``2``: the command line or the configuration must change first: a bad argument or setting, an unknown name,
  a file that cannot be read or written, a database file that is not SQLite, no Discord token or one Discord
  rejects, a privileged intent that is not enabled in the developer portal, a folder the bot must write that it
  cannot (``run`` tries each for real at start-up).

Every refusal comes before any work (no database is created, no engine started) and is one line without a
traceback. ``run`` never exits because Discord cannot be reached: it retries with backoff (1 s doubling to 60 s),
one log line per attempt, so a restart policy does not turn a network outage into a crash loop.

Two exceptions for containers, whose restart policies cannot tell exit codes apart: ``run --hold-on-config-error``
prints a configuration error (what would exit 2) as one line, then waits instead of exiting, so it is not restarted
in a loop, and exits 0 when stopped (SIGTERM, SIGINT). ``health`` (Docker's HEALTHCHECK) answers only 0, healthy,
or 1, not: Docker reserves 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.actors import Actor
from bot.errors import ConfigError, ImagineError
from bot.events import EventKind, JobEvent
from bot.interrupts import (
    EXIT_INTERRUPTED,
    CommandInterruptedError,
    StopSignals,
    run_interruptible,
    say_interrupted,
    terminate_as_interrupt,
)
from bot.jobs import Status
from bot.ledger import CONSOLE_ACTOR, CONSOLE_USER_ID
from bot.logs import setup_logging
from bot.requests import TaskOptions
from config.errors import did_you_mean, one_line
from config.settings import Settings, load_settings

if TYPE_CHECKING:
    from bot.service import ImagineService
    from bot.uploads import CheckedImage

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

MAX_USER_ID = 2**63 - 1
"""SQLite's largest integer; Discord ids are well below it."""
MAX_CREDITS = 10**12
"""The most credits one command may grant, take or set (keeps every balance far from SQLite's integer limit)."""

TOKEN_HELP = """\
error: no Discord bot token is configured (setting discord_token, environment variable IMAGINE_DISCORD_TOKEN).

To get one: open https://discord.com/developers/applications, create an application (or pick yours),
open "Bot", press "Reset Token" and copy it. Then either
  - put IMAGINE_DISCORD_TOKEN=<token> in a .env file in this folder, or
  - export IMAGINE_DISCORD_TOKEN=<token> before starting the bot.
Then add the bot to your server: python -m bot invite prints the link, with exactly the permissions it needs.
To try everything without Discord: IMAGINE_MODEL=tiny python -m bot generate "a red fox --ar 3:2" -o fox.png"""
HOLDING = "waiting until stopped (not exiting, so nothing restarts the bot in a loop)"


class UsageError(Exception):
    """The command line names something that cannot work; the message says what to change (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="imaginebot: images for Discord",
        epilog="exit codes: 0 done, 1 the command failed, 2 fix the command line or the configuration",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="connect to Discord and serve /imagine (retries until Discord is reachable)")
    run.add_argument(
        "--hold-on-config-error",
        action="store_true",
        help="on a configuration error (exit code 2) print it once, in one line, and wait until stopped instead of "
        "exiting: a container's restart policy then does not restart it in a loop",
    )
    commands.add_parser(
        "health", help="is the running bot alive? one line from its heartbeat file; exit 0 healthy, 1 not"
    )
    commands.add_parser("invite", help="print the URL that adds the bot to a server, with the permissions it needs")

    generate = commands.add_parser("generate", help="render a prompt to a grid PNG without Discord")
    generate.add_argument("prompt", help='the prompt with flags, e.g. "a red fox --ar 3:2 --seed 7"')
    generate.add_argument("-o", "--output", help="where to write the grid PNG (a folder: <folder>/imagine_<job>.png)")
    generate.add_argument("--image", type=Path, help="source image: img2img (or inpaint with --mask)")
    generate.add_argument("--mask", type=Path, help="inpaint mask for --image: white is repainted")
    generate.add_argument("--strength", type=float, help="how far to move away from --image (0-1, default 0.75)")
    generate.add_argument("--model", help="a registry model name (default: the configured model)")
    generate.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="AXIS=V1,V2",
        help='a sweep axis, e.g. "cfg=3,5,7" (seed, cfg, steps, sampler, prompt, strength); up to 3',
    )

    doctor = commands.add_parser("doctor", help="check the device, versions, models and settings")
    doctor.add_argument("--no-probe", action="store_true", help="skip the engine probe (no torch import)")
    add_owner_commands(commands)
    add_model_commands(commands)
    return parser


def member_id(text: str) -> int:
    """A Discord user id (argparse type): a whole number from 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a user id (a whole number such as 123456789)") from None
    if not 0 <= value <= MAX_USER_ID:
        raise argparse.ArgumentTypeError(f"{text} is not a user id (a whole number from 0 to {MAX_USER_ID})")
    return value


def credit_amount(minimum: int) -> Any:
    """An argparse type for a whole number of credits from ``minimum`` to :data:`MAX_CREDITS`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of credits") from None
        if not minimum <= value <= MAX_CREDITS:
            raise argparse.ArgumentTypeError(f"{text} credits is out of range: use {minimum} to {MAX_CREDITS}")
        return value

    return parse


def row_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text} is out of range: use 1 to 1000")
    return value


def add_owner_commands(commands: Any) -> None:
    """``credits show|grant|take|set`` (``give`` is ``grant``) and ``tier set``: quotas from a shell, recorded with
    the console as actor."""
    credits = commands.add_parser("credits", help="show or change a member's credits")
    actions = credits.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="balance, tier and recent ledger rows (changes nothing)")
    show.add_argument("user_id", type=member_id, metavar="USER_ID")
    show.add_argument("--limit", type=row_limit, default=10, help="ledger rows to print (default 10)")
    for name, aliases, text, minimum in (
        ("grant", ["give"], "add N credits (give: the same, as in /admin credits give)", 1),
        ("take", [], "remove N credits", 1),
        ("set", [], "set the balance to N", 0),
    ):
        action = actions.add_parser(name, aliases=aliases, help=text)
        action.set_defaults(action=name)  # an alias runs its command
        action.add_argument("user_id", type=member_id, metavar="USER_ID")
        action.add_argument("amount", type=credit_amount(minimum), metavar="N")
        action.add_argument("--reason", required=True, help="why (kept in the ledger)")
    tier = commands.add_parser("tier", help="change a member's tier")
    tier_actions = tier.add_subparsers(dest="action", required=True, metavar="ACTION")
    tier_set = tier_actions.add_parser("set", help="move a member to a tier")
    tier_set.add_argument("user_id", type=member_id, metavar="USER_ID")
    tier_set.add_argument("tier", metavar="TIER")
    database = commands.add_parser("db", help="check or back up the database")
    db_actions = database.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = db_actions.add_parser("check", help="verify every invariant; exit 1 with the broken rows")
    check.add_argument("--no-files", action="store_true", help="do not check that result images exist")
    backup = db_actions.add_parser("backup", help="an online backup (safe while the bot runs), then checked")
    backup.add_argument("path", type=Path, metavar="PATH")


def add_model_commands(commands: Any) -> None:
    """``models list`` and ``models pull NAME``."""
    models = commands.add_parser("models", help="list the models, or download one (members never trigger downloads)")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="each model: source, family, usable by members, on disk")
    pull = actions.add_parser("pull", help="download a hub model (progress bar), build a tiny one, or check a file")
    pull.add_argument("name", metavar="NAME")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "health":  # no logging set-up, no heavy import; never 2
        from bot.health import run_health

        return run_health()
    hold = args.command == "run" and args.hold_on_config_error
    try:
        settings = load_settings()
    except ConfigError as error:
        return refuse(str(error), hold=hold)
    token = settings.discord_token.get_secret_value() if settings.discord_token else ""
    setup_logging(settings.log_level, secrets=[token])
    try:
        with terminate_as_interrupt(enabled=args.command != "run"):
            return dispatch(settings, args)
    except UsageError as error:
        return refuse(str(error), hold=hold)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM in a command with nothing left to clean up
        return say_interrupted()


def refuse(message: str, *, hold: bool = False, full: str | None = None) -> int:
    """A configuration error: print it and return 2; with ``hold``, print it as one line, wait until stopped and
    return 0. ``full`` is a longer text shown instead of ``message`` when not holding."""
    if not hold:
        print(full if full is not None else f"error: {message}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"error: {one_line(message)}; {HOLDING}", file=sys.stderr, flush=True)
    wait_until_stopped()
    return EXIT_OK


def wait_until_stopped(poll_s: float = 0.25) -> None:
    """Block until SIGTERM or SIGINT (``docker stop``, Ctrl-C). Signal handlers run in the main thread between
    waits, so a signal delivered to another thread is seen within ``poll_s``."""
    stopped = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopped.set()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopped.wait(poll_s):
            pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def dispatch(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "run":
        return run_bot(settings, hold=args.hold_on_config_error)
    if args.command == "generate":
        if args.model is not None and args.model not in settings.registry:
            raise UsageError(
                f"--model {args.model}: there is no such model{did_you_mean(args.model, settings.registry)}; "
                f"use one of: {', '.join(sorted(settings.registry))}"
            )
        options = TaskOptions(args.model, args.image, args.mask, args.strength, tuple(args.sweep))
        target = output_target(args.output)
        return asyncio.run(generate(settings, args.prompt, target, options))
    if args.command == "invite":
        from bot.discord_setup import print_invite

        return print_invite(settings)
    if args.command == "doctor":
        from bot.doctor import run_doctor

        code, text = run_doctor(settings, probe_engine=not args.no_probe)
        print(text)
        return code
    if args.command == "db":
        return manage_database(settings, args)
    if args.command in ("credits", "tier"):
        return run_interruptible(manage_credits(settings, args))
    if args.command == "models":
        from bot.model_commands import list_models, pull_model

        return list_models(settings) if args.action == "list" else pull_model(settings, args.name)
    raise AssertionError(f"unhandled command {args.command}")


def run_bot(settings: Settings, *, hold: bool = False) -> int:
    """Serve Discord until stopped: 0 on Ctrl-C, 2 for a missing or rejected token, a disabled intent or a folder
    the bot cannot write (with ``hold``: the error once, then wait until stopped, 0)."""
    from bot.folders import check_folders
    from bot.health import heartbeat_file, remove_heartbeat

    remove_heartbeat(heartbeat_file(settings.data_dir))  # an earlier run's beat must not vouch for this one
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        from bot.discord_token import no_token_line, with_misnamed_variables

        return refuse(no_token_line(), hold=hold, full=with_misnamed_variables(TOKEN_HELP))
    from bot.discord_token import token_shape_problem

    problem = token_shape_problem(settings.discord_token.get_secret_value()) or check_folders(settings)
    if problem is not None:
        return refuse(problem, hold=hold)
    from bot.model_commands import check_default_model

    problem = check_default_model(settings)  # a local default model that is missing: known before any start
    if problem is not None:
        return refuse(problem, hold=hold)
    from bot.connection import FatalDiscordError, quiet_discord_client, serve_forever

    # Each write hands work to aiosqlite's thread and back; a short switch interval keeps that hop at ~0.5 ms
    # instead of up to 5 ms (python -m bench.scheduler measures the difference).
    sys.setswitchinterval(0.0005)
    quiet_discord_client()
    token = settings.discord_token.get_secret_value().strip()
    try:
        asyncio.run(serve_forever(settings, token))
    except FatalDiscordError as error:
        return refuse(str(error), hold=hold)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


# --- generate -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputTarget:
    """Where ``generate -o`` writes the grid: a file, or a folder that gets ``imagine_<job>.png``."""

    path: Path
    folder: bool

    def for_job(self, job_id: int) -> Path:
        return self.path / f"imagine_{job_id}.png" if self.folder else self.path


def output_target(output: str | None) -> OutputTarget | None:
    """Check ``-o`` before anything is rendered. A folder (existing, or written with a trailing slash) gets
    ``imagine_<job>.png`` inside; otherwise the grid is written to the file (a ``.png``). Raises UsageError."""
    if output is None:
        return None
    if not output.strip():
        raise UsageError("-o needs a file name (*.png) or a folder")
    path = Path(output).expanduser()
    if path.is_dir() or output.endswith(("/", os.sep)):
        _check_writable_folder(path)
        return OutputTarget(path, folder=True)
    if path.suffix.lower() != ".png":
        raise UsageError(f"-o {output}: the grid is a PNG; name the file *.png (or give a folder)")
    if path.exists() and not path.is_file():
        raise UsageError(f"-o {output}: it exists and is not a regular file; choose another path")
    if path.exists():
        try:
            with path.open("ab"):  # opened for writing, nothing written
                pass
        except OSError as error:
            raise UsageError(
                f"-o {output}: the file cannot be written ({error.strerror}); choose another path"
            ) from None
    _check_writable_folder(path.parent)
    return OutputTarget(path, folder=False)


def _check_writable_folder(folder: Path) -> None:
    """The folder (or, when it does not exist yet, the closest existing folder above it) must take a new file:
    tried for real with a nameless temporary file, since permission bits say nothing to root or on /proc."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"-o: {existing} is not a folder, so nothing can be written under it")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UsageError(f"-o: nothing can be written in {existing} ({error.strerror}); choose another place") from None


INTERRUPTED_ENGINE_GRACE_S = 3.0
"""After Ctrl-C, how long the engine may take to exit (its job is cancelled at its next step) before it is killed."""


async def generate(
    settings: Settings, prompt: str, output: OutputTarget | None, options: TaskOptions | None = None
) -> int:
    """Render one /imagine through the queue and a real engine process; print the image paths.

    Nothing it queues outlives it: ending any other way than with its job done (an error, an engine that cannot
    start, Ctrl-C or SIGTERM) cancels the job, refunded as any cancel. Ctrl-C or SIGTERM also stops the engine
    and ends with one line, ``interrupted; job N cancelled``, and exit 130; a second one kills the engine at once.
    """
    with StopSignals(asyncio.get_running_loop()) as stop:
        return await _generate(settings, prompt, output, options or TaskOptions(), stop)


async def _generate(
    settings: Settings, prompt: str, output: OutputTarget | None, options: TaskOptions, stop: StopSignals
) -> int:
    from bot.preparation import check_shell_request
    from bot.service import ImagineService, check_shell_files

    try:  # every refusal before any database is opened or engine started
        check_shell_request(settings, prompt, options)
        checked = await asyncio.to_thread(check_shell_files, settings, options)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if stop.stopped:
        return say_interrupted()
    database_problem = _database_problem(settings.database_file)
    if database_problem is not None:
        print(f"error: {database_problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:  # not cut short by a signal: a half-open database would keep the process from exiting
        service = await ImagineService.open(settings, only_own_jobs=True)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (sqlite3.Error, OSError) as error:
        print(f"error: could not open the database {settings.database_file}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    stop.on_repeat = lambda: service.engine.kill(deliberate=True)
    progress = ProgressLine()
    service.events.subscribe(progress.show)
    try:
        code, line = await _render_own_job(service, stop, prompt, options, checked, output)
    except CommandInterruptedError:
        code, line = EXIT_INTERRUPTED, "interrupted"
    except BaseException:
        await _end_own_jobs(service, grace_s=INTERRUPTED_ENGINE_GRACE_S)
        raise
    grace_s = INTERRUPTED_ENGINE_GRACE_S if stop.stopped else 10.0
    cancelled = await _end_own_jobs(service, grace_s=grace_s)
    if line is not None:
        if cancelled:
            line += f"; {_job_list(cancelled)} cancelled"
        progress.end()
        print(line, file=sys.stderr, flush=True)
    return code


async def _render_own_job(
    service: ImagineService,
    stop: StopSignals,
    prompt: str,
    options: TaskOptions,
    checked: Mapping[str, CheckedImage],
    output: OutputTarget | None,
) -> tuple[int, str | None]:
    """Queue the job, have it rendered, write the grid; the exit code and the line to end with (None: done).
    Raises CommandInterruptedError when a stop signal came before the job was done."""
    stop.check()
    try:  # one transaction: it is not cut short, a signal during it is seen right after
        submitted = await service.submit_shell_request(Actor.console(), prompt, options, checked)
    except ImagineError as error:
        return EXIT_CONFIG, f"error: {error}"
    try:
        await stop.interruptible(service.run_own_jobs())
    except ImagineError as error:
        return EXIT_FAILED, f"error: {error}"
    job = await service.queue.get(submitted.job.id)
    if job.status is not Status.COMPLETED or job.grid_path is None:
        return EXIT_FAILED, f"error: job {job.id} {job.status.value}: {job.error}"
    images = await service.queue.images(job.id)
    grid = Path(job.grid_path)
    if output is not None:
        destination = output.for_job(job.id)
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(grid, destination)
        except OSError as error:
            return EXIT_FAILED, f"error: could not write {destination} ({error.strerror}); the grid is at {grid}"
        grid = destination
    print(f"grid: {grid}", file=sys.stderr)
    for image in images:
        print(image.path)
    return EXIT_OK, None


async def _end_own_jobs(service: ImagineService, *, grace_s: float) -> list[int]:
    """Cancel (and refund) the jobs this ``generate`` queued that did not end, then stop the engine and close the
    database. The ids cancelled."""
    cancelled: list[int] = []
    try:
        cancelled = [job.id for job in await service.cancel_unfinished_own_jobs(CONSOLE_ACTOR)]
    except (sqlite3.Error, ImagineError) as error:  # their lease runs out: the next start cancels them
        log.error("could not cancel job(s) %s: %s", sorted(service.own_jobs), error)
    finally:
        await service.close(engine_grace_s=grace_s)
    return cancelled


def _job_list(job_ids: Sequence[int]) -> str:
    """``job 12`` or ``jobs 12, 13``."""
    return f"job {job_ids[0]}" if len(job_ids) == 1 else f"jobs {', '.join(str(job_id) for job_id in job_ids)}"


# --- the owner's database commands --------------------------------------------------------------------------------


def _database_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the bot's database (it exists and is not SQLite, or is a folder), or None."""
    if path.is_dir():
        return f"the database path {path} is a folder; set database_path (or data_dir) to a file"
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            header = handle.read(16)
    except OSError as error:
        return f"the database {path} cannot be read ({error.strerror})"
    if header and header != b"SQLite format 3\x00":
        return f"{path} is not a SQLite database; set database_path (or data_dir) to the bot's database"
    return None


def manage_database(settings: Settings, args: argparse.Namespace) -> int:
    from bot.db_check import backup_database, check_database, describe

    path = settings.database_file
    problem = _database_problem(path)
    if problem is None and not path.exists():
        problem = f"no database at {path} (the bot creates it when it first starts; check data_dir)"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.action == "backup":
            target = backup_database(path, args.path)
            problems = check_database(target, check_files=False)
            print(f"backup written to {target}")
        else:
            problems = check_database(path, check_files=not args.no_files)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (sqlite3.Error, OSError) as error:
        where = f"could not write the backup {args.path}" if args.action == "backup" else f"could not read {path}"
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        print(f"error: {where}: {reason}", file=sys.stderr)
        return EXIT_CONFIG
    print(describe(problems))
    return EXIT_FAILED if problems else EXIT_OK


async def manage_credits(settings: Settings, args: argparse.Namespace) -> int:
    """The owner's quota commands; every change goes through the ledger with the console as actor.

    Everything is checked before the database is opened; ``credits show`` only reads, and an unknown member is
    shown as such without creating an account.
    """
    from bot.errors import LedgerError
    from bot.ledger import CONSOLE_ACTOR, Ledger
    from bot.store import Store

    if args.command == "tier" and args.tier not in settings.tiers:
        raise UsageError(
            f"there is no tier {args.tier!r}{did_you_mean(args.tier, settings.tiers)}; "
            f"use one of: {', '.join(sorted(settings.tiers))}"
        )
    path = settings.database_file
    problem = _database_problem(path)
    if problem is not None:
        raise UsageError(problem)
    if args.command == "credits" and args.action == "show" and not path.exists():
        print(_no_account(settings, args.user_id))
        return EXIT_OK
    try:
        store = await Store.open(path)
    except (sqlite3.Error, OSError) as error:
        raise UsageError(f"could not open the database {path}: {error}") from None
    ledger = Ledger(store, settings)
    try:
        if args.command == "tier":
            member = await ledger.set_tier(args.user_id, args.tier, actor=CONSOLE_ACTOR)
            print(f"member {member.user_id}: tier {member.tier}, balance {member.balance}")
            return EXIT_OK
        if args.action == "show":
            found = await ledger.find_member(args.user_id)
            if found is None:
                print(_no_account(settings, args.user_id))
                return EXIT_OK
            print(f"member {found.user_id}: tier {found.tier}, balance {found.balance}, banned {found.banned}")
            for entry in await ledger.entries(args.user_id, args.limit):
                job = f" job {entry.job_id}" if entry.job_id is not None else ""
                change = f"{entry.delta:+d} -> {entry.balance_after}"
                print(f"  {entry.id}: {change} {entry.kind.value}{job} by {entry.actor}: {entry.reason}")
            return EXIT_OK
        change = {"grant": ledger.grant, "take": ledger.take, "set": ledger.set_balance}[args.action]
        balance = await change(args.user_id, args.amount, actor=CONSOLE_ACTOR, reason=args.reason)
        print(f"member {args.user_id}: balance {balance}")
        return EXIT_OK
    except LedgerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except sqlite3.Error as error:
        print(f"error: the database {path} refused the change: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await store.close()


def _no_account(settings: Settings, user_id: int) -> str:
    """What ``credits show`` says for a member the bot has not seen: what they will start with."""
    tier_name = settings.credits.console_tier if user_id == CONSOLE_USER_ID else settings.credits.default_tier
    tier = settings.tiers[tier_name]
    start = "jobs cost nothing" if tier.unlimited else f"{tier.allowance} credits"
    return f"member {user_id}: no account yet; on first use they start on tier {tier_name} with {start}"


class ProgressLine:
    """``generate``'s progress on standard error: ``rendering job N: step i/n``, rewritten in place on one line."""

    def __init__(self) -> None:
        self.open = False
        """A progress line is on the screen without its line end."""

    def show(self, event: JobEvent) -> None:
        if event.kind is EventKind.PROGRESS:
            print(f"\rrendering job {event.job.id}: step {event.step}/{event.total}", end="", file=sys.stderr)
            self.open = event.step != event.total
            if not self.open:
                print(file=sys.stderr)
        elif event.kind is EventKind.FAILED:
            self.end()
            print(f"job {event.job.id} failed: {event.message}", file=sys.stderr)

    def end(self) -> None:
        """Close an open progress line, so what follows starts a line of its own."""
        if self.open:
            print(file=sys.stderr)
            self.open = False
