"""``python -m bot …``: run the bot, or render from a shell without Discord."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.actors import Actor
from bot.errors import ConfigError, ImagineError
from bot.events import EventKind, JobEvent
from bot.jobs import Status
from bot.logs import setup_logging
from bot.requests import TaskOptions
from config.settings import Settings, load_settings

log = logging.getLogger(__name__)

CONSOLE_USER_ID = 0
"""Jobs started from a shell belong to this user id (no Discord user has it)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

TOKEN_HELP = """\
error: no Discord bot token is configured (setting discord_token, environment variable IMAGINE_DISCORD_TOKEN).

To get one: open https://discord.com/developers/applications, create an application (or pick yours),
open "Bot", press "Reset Token" and copy it. Then either
  - put IMAGINE_DISCORD_TOKEN=<token> in a .env file in this folder, or
  - export IMAGINE_DISCORD_TOKEN=<token> before starting the bot.
Invite the bot with the "bot" and "applications.commands" scopes.
To try everything without Discord: python -m bot generate "a red fox --ar 3:2" -o fox.png"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="imaginebot: images for Discord")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="connect to Discord and serve /imagine")

    generate = commands.add_parser("generate", help="render a prompt to a grid PNG without Discord")
    generate.add_argument("prompt", help='the prompt with flags, e.g. "a red fox --ar 3:2 --seed 7"')
    generate.add_argument("-o", "--output", type=Path, help="where to write the grid PNG")
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
    return parser


def add_owner_commands(commands: Any) -> None:
    """``credits show|grant|take|set`` and ``tier set``: quotas from a shell, recorded with the console as actor."""
    credits = commands.add_parser("credits", help="show or change a member's credits")
    actions = credits.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="balance, tier and recent ledger rows")
    show.add_argument("user_id", type=int, metavar="USER_ID")
    show.add_argument("--limit", type=int, default=10, help="ledger rows to print (default 10)")
    for name, text in (("grant", "add N credits"), ("take", "remove N credits"), ("set", "set the balance to N")):
        action = actions.add_parser(name, help=text)
        action.add_argument("user_id", type=int, metavar="USER_ID")
        action.add_argument("amount", type=int, metavar="N")
        action.add_argument("--reason", required=True, help="why (kept in the ledger)")
    tier = commands.add_parser("tier", help="change a member's tier")
    tier_actions = tier.add_subparsers(dest="action", required=True, metavar="ACTION")
    tier_set = tier_actions.add_parser("set", help="move a member to a tier")
    tier_set.add_argument("user_id", type=int, metavar="USER_ID")
    tier_set.add_argument("tier", metavar="TIER")
    database = commands.add_parser("db", help="check or back up the database")
    db_actions = database.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = db_actions.add_parser("check", help="verify every invariant; exit 1 with the broken rows")
    check.add_argument("--no-files", action="store_true", help="do not check that result images exist")
    backup = db_actions.add_parser("backup", help="an online backup (safe while the bot runs), then checked")
    backup.add_argument("path", type=Path, metavar="PATH")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    token = settings.discord_token.get_secret_value() if settings.discord_token else ""
    setup_logging(settings.log_level, secrets=[token])
    if args.command == "run":
        return run_bot(settings)
    if args.command == "generate":
        options = TaskOptions(args.model, args.image, args.mask, args.strength, tuple(args.sweep))
        return asyncio.run(generate(settings, args.prompt, args.output, options))
    if args.command == "doctor":
        from bot.doctor import run_doctor

        code, text = run_doctor(settings, probe_engine=not args.no_probe)
        print(text)
        return code
    if args.command == "db":
        return manage_database(settings, args)
    if args.command in ("credits", "tier"):
        return asyncio.run(manage_credits(settings, args))
    raise AssertionError(f"unhandled command {args.command}")


def run_bot(settings: Settings) -> int:
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        print(TOKEN_HELP, file=sys.stderr)
        return EXIT_CONFIG
    import discord

    from bot.discord_bot import ImagineBot

    # Each write hands work to aiosqlite's thread and back; a short switch interval keeps that hop at ~0.5 ms
    # instead of up to 5 ms (python -m bench.scheduler measures the difference).
    sys.setswitchinterval(0.0005)

    async def serve() -> None:
        async with ImagineBot(settings) as bot:
            assert settings.discord_token is not None
            await bot.start(settings.discord_token.get_secret_value().strip())

    try:
        asyncio.run(serve())
    except discord.LoginFailure:
        print(
            "error: Discord rejected the token (IMAGINE_DISCORD_TOKEN). Reset it in the developer portal "
            "(Bot -> Reset Token) and paste the new one.",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    except discord.PrivilegedIntentsRequired:
        print("error: the bot asked for a privileged intent that is not enabled in the portal", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        pass
    return EXIT_OK


async def generate(settings: Settings, prompt: str, output: Path | None, options: TaskOptions | None = None) -> int:
    """Render one /imagine through the queue and a real engine process; print the image paths."""
    from bot.service import ImagineService

    try:
        service = await ImagineService.open(settings, only_own_jobs=True)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    service.events.subscribe(_print_progress)
    try:
        try:
            submitted = await service.submit_shell_request(Actor.console(), prompt, options or TaskOptions())
        except ImagineError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            await service.worker.run_until_idle()
        except ImagineError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILED
        job = await service.queue.get(submitted.job.id)
        if job.status is not Status.COMPLETED or job.grid_path is None:
            print(f"error: job {job.id} {job.status.value}: {job.error}", file=sys.stderr)
            return EXIT_FAILED
        images = await service.queue.images(job.id)
        grid = Path(job.grid_path)
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(grid, output)
            grid = output
        print(f"grid: {grid}", file=sys.stderr)
        for image in images:
            print(image.path)
        return EXIT_OK
    finally:
        await service.close()


def manage_database(settings: Settings, args: argparse.Namespace) -> int:
    from bot.db_check import backup_database, check_database, describe

    path = settings.database_file
    try:
        if args.action == "backup":
            target = backup_database(path, args.path)
            problems = check_database(target, check_files=False)
            print(f"backup written to {target}")
        else:
            problems = check_database(path, check_files=not args.no_files)
    except (FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(describe(problems))
    return EXIT_FAILED if problems else EXIT_OK


async def manage_credits(settings: Settings, args: argparse.Namespace) -> int:
    """The owner's quota commands; every change goes through the ledger with the console as actor."""
    from bot.errors import LedgerError
    from bot.ledger import CONSOLE_ACTOR, Ledger
    from bot.store import Store

    store = await Store.open(settings.database_file)
    ledger = Ledger(store, settings)
    try:
        if args.command == "tier":
            member = await ledger.set_tier(args.user_id, args.tier, actor=CONSOLE_ACTOR)
            print(f"member {member.user_id}: tier {member.tier}, balance {member.balance}")
            return EXIT_OK
        if args.action == "show":
            member = await ledger.member(args.user_id)
            print(f"member {member.user_id}: tier {member.tier}, balance {member.balance}, banned {member.banned}")
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
    finally:
        await store.close()


def _print_progress(event: JobEvent) -> None:
    if event.kind is EventKind.PROGRESS:
        print(f"\rrendering job {event.job.id}: step {event.step}/{event.total}", end="", file=sys.stderr)
        if event.step == event.total:
            print(file=sys.stderr)
    elif event.kind is EventKind.FAILED:
        print(f"job {event.job.id} failed: {event.message}", file=sys.stderr)
