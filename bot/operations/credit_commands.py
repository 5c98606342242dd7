"""``python -m bot credits show|grant|take|set`` and ``python -m bot tier set``: the owner's quota commands.

Every change is one of the core's moderator actions with the console as actor (so it is audited like a
moderator's change in Discord).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys

from bot.actors import Actor
from bot.application.moderator_actions import CreditChange
from bot.application.service import ImagineService
from bot.errors import LedgerError
from bot.operations.db_check import database_problem
from bot.operations.exit_codes import EXIT_FAILED, EXIT_OK, UsageError
from bot.scheduling.ledger import CONSOLE_USER_ID
from config.errors import did_you_mean
from config.settings import Settings

CLI_CHANGES: dict[str, CreditChange] = {"grant": "give", "give": "give", "take": "take", "set": "set"}
"""The command line's words for a credit change (``grant`` and its alias ``give``)."""


async def manage_credits(settings: Settings, args: argparse.Namespace) -> int:
    """The owner's quota commands, as the console through the core's moderator actions.

    Everything is checked before the database is opened; ``credits show`` only reads, and an unknown member is
    shown as such without creating an account.
    """
    if args.command == "tier" and args.tier not in settings.tiers:
        raise UsageError(
            f"there is no tier {args.tier!r}{did_you_mean(args.tier, settings.tiers)}; "
            f"use one of: {', '.join(sorted(settings.tiers))}"
        )
    path = settings.database_file
    problem = database_problem(path)
    if problem is not None:
        raise UsageError(problem)
    if args.command == "credits" and args.action == "show" and not path.exists():
        print(_no_account(settings, args.user_id))
        return EXIT_OK
    try:
        service = await ImagineService.open(settings, only_own_jobs=True)  # no worker, no engine, no recovery
    except (sqlite3.Error, OSError) as error:
        raise UsageError(f"could not open the database {path}: {error}") from None
    owner = Actor.console()
    try:
        if args.command == "tier":
            member = await service.admin.set_tier(owner, args.user_id, args.tier)
            print(f"member {member.user_id}: tier {member.tier}, balance {member.balance}")
            return EXIT_OK
        if args.action == "show":
            account = await service.admin.account(owner, args.user_id, args.limit)
            found = account.member
            if found is None:
                print(_no_account(settings, args.user_id))
                return EXIT_OK
            print(f"member {found.user_id}: tier {found.tier}, balance {found.balance}, banned {found.banned}")
            for entry in account.entries:
                job = f" job {entry.job_id}" if entry.job_id is not None else ""
                change = f"{entry.delta:+d} -> {entry.balance_after}"
                print(f"  {entry.id}: {change} {entry.kind.value}{job} by {entry.actor}: {entry.reason}")
            return EXIT_OK
        change = CLI_CHANGES[args.action]
        balance = await service.admin.change_credits(owner, change, args.user_id, args.amount, args.reason)
        print(f"member {args.user_id}: balance {balance}")
        return EXIT_OK
    except LedgerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except sqlite3.Error as error:
        print(f"error: the database {path} refused the change: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await service.close()


def _no_account(settings: Settings, user_id: int) -> str:
    """What ``credits show`` says for a member the bot has not seen: what they will start with."""
    tier_name = settings.credits.console_tier if user_id == CONSOLE_USER_ID else settings.credits.default_tier
    tier = settings.tiers[tier_name]
    start = "jobs cost nothing" if tier.unlimited else f"{tier.allowance} credits"
    return f"member {user_id}: no account yet; on first use they start on tier {tier_name} with {start}"
