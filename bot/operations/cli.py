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
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.discord_surface.discord_token import TOKEN_HELP
from bot.errors import ConfigError
from bot.operations.apikey_commands import add_apikey_commands
from bot.operations.exit_codes import EXIT_CONFIG, EXIT_OK, UsageError
from bot.operations.generate_control import add_control_arguments, with_control
from bot.operations.image_prompt_arguments import add_blend_command, add_image_prompt_arguments, with_image_prompts
from bot.operations.interrupts import run_interruptible, say_interrupted, terminate_as_interrupt
from bot.operations.logs import setup_logging
from config.errors import did_you_mean, one_line
from config.settings import Settings, load_settings

MAX_USER_ID = 2**63 - 1
"""SQLite's largest integer; Discord ids are well below it."""
MAX_CREDITS = 10**12
"""The most credits one command may grant, take or set (keeps every balance far from SQLite's integer limit)."""

HOLDING = "waiting until stopped (not exiting, so nothing restarts the bot in a loop)"


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
    add_control_arguments(generate)
    add_image_prompt_arguments(generate)
    add_blend_command(commands)

    describe = commands.add_parser("describe", help="print four prompts for an image, as /describe (without Discord)")
    describe.add_argument("image", type=Path, help="the image to describe (PNG, JPEG or WebP)")

    doctor = commands.add_parser("doctor", help="check the device, versions, models and settings")
    doctor.add_argument("--no-probe", action="store_true", help="skip the engine probe (no torch import)")
    add_owner_commands(commands)
    add_model_commands(commands)
    add_apikey_commands(commands)
    return parser


def member_id(text: str) -> int:
    """A member's id (argparse type): a Discord user id, or a local web user's id (negative)."""
    what = "a Discord user id, or a local web user's id (negative)"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a user id ({what})") from None
    if not -MAX_USER_ID <= value <= MAX_USER_ID:
        raise argparse.ArgumentTypeError(f"{text} is not a user id ({what}, from -{MAX_USER_ID} to {MAX_USER_ID})")
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
        from bot.running.health import run_health

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
    except (UsageError, ConfigError) as error:  # ConfigError: settings that only fail once used (engine.devices)
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
        from bot.operations.generate_command import generate, output_target
        from bot.requests.request_options import TaskOptions

        options = with_control(TaskOptions(args.model, args.image, args.mask, args.strength, tuple(args.sweep)), args)
        options = with_image_prompts(options, args)
        target = output_target(args.output)
        return asyncio.run(generate(settings, args.prompt, target, options))
    if args.command == "blend":
        from bot.operations.generate_command import output_target
        from bot.operations.image_prompt_commands import blend

        return asyncio.run(blend(settings, args.images, args.dimensions, output_target(args.output)))
    if args.command == "describe":
        from bot.operations.describe_command import describe

        return asyncio.run(describe(settings, args.image))
    if args.command == "invite":
        from bot.discord_surface.discord_setup import print_invite

        return print_invite(settings)
    if args.command == "doctor":
        from bot.operations.doctor import run_doctor

        code, text = run_doctor(settings, probe_engine=not args.no_probe)
        print(text)
        return code
    if args.command == "db":
        from bot.operations.db_check import manage_database

        return manage_database(settings, args)
    if args.command in ("credits", "tier"):
        from bot.operations.credit_commands import manage_credits

        return run_interruptible(manage_credits(settings, args))
    if args.command == "apikey":
        from bot.operations.apikey_commands import manage_api_keys

        return run_interruptible(manage_api_keys(settings, args))
    if args.command == "models":
        from bot.operations.model_commands import list_models, pull_model

        return list_models(settings) if args.action == "list" else pull_model(settings, args.name)
    raise AssertionError(f"unhandled command {args.command}")


def run_bot(settings: Settings, *, hold: bool = False) -> int:
    """Serve every configured surface until stopped: Discord when a token is set, the web UI and APIs when
    ``web.enabled``. 0 when stopped; 2 for neither surface, a rejected or malformed token, a disabled intent, a folder
    the bot cannot write or a web address it cannot listen on (with ``hold``: the error once, then wait, 0)."""
    from bot.operations.folders import check_folders
    from bot.running.health import heartbeat_file, remove_heartbeat

    remove_heartbeat(heartbeat_file(settings.data_dir))  # an earlier run's beat must not vouch for this one
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token is not None else ""
    if not token and not settings.web.enabled:
        from bot.discord_surface.discord_token import no_token_line, with_misnamed_variables

        return refuse(no_token_line(), hold=hold, full=with_misnamed_variables(TOKEN_HELP))
    from bot.discord_surface.discord_token import token_shape_problem

    problem = (token_shape_problem(settings.discord_token.get_secret_value()) if token else None) or check_folders(
        settings
    )
    if problem is not None:
        return refuse(problem, hold=hold)
    from bot.operations.model_commands import check_default_model

    problem = check_default_model(settings)  # a local default model that is missing: known before any start
    if problem is not None:
        return refuse(problem, hold=hold)
    from bot.discord_surface.connection import FatalDiscordError, quiet_discord_client
    from bot.operations.surfaces import bind_web_socket, serve_surfaces

    try:
        web_socket = bind_web_socket(settings) if settings.web.enabled else None
    except ConfigError as error:
        return refuse(str(error), hold=hold)
    # Each write hands work to aiosqlite's thread and back; a short switch interval keeps that hop at ~0.5 ms
    # instead of up to 5 ms (python -m bench.scheduler measures the difference).
    sys.setswitchinterval(0.0005)
    quiet_discord_client()
    try:
        asyncio.run(serve_surfaces(settings, token or None, web_socket))
    except FatalDiscordError as error:
        return refuse(str(error), hold=hold)
    except KeyboardInterrupt:
        pass
    finally:
        if web_socket is not None:
            web_socket.close()
    return EXIT_OK
