"""``python -m bot credits show|grant|take|set`` and ``python -m bot tier set``: the owner's quota commands.

Every change goes through the ledger with the console as actor.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys

from bot.errors import LedgerError
from bot.operations.db_check import database_problem
from bot.operations.exit_codes import EXIT_FAILED, EXIT_OK, UsageError
from bot.scheduling.ledger import CONSOLE_ACTOR, CONSOLE_USER_ID, Ledger
from bot.storage.store import Store
from config.errors import did_you_mean
from config.settings import Settings


async def manage_credits(settings: Settings, args: argparse.Namespace) -> int:
    """The owner's quota commands; every change goes through the ledger with the console as actor.

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
