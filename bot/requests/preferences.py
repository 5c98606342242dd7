"""Per-member defaults from /settings: model, aspect ratio, steps and sampler (the lane lives on the user)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bot.errors import ImagineError, PromptError
from bot.jobs import Lane
from bot.requests.prompt import ParsedPrompt, PromptLimits, parse_flag
from bot.scheduling import ledger
from bot.storage.store import Store
from config.settings import Settings

PREFERENCE_FLAGS = {"model": "model", "aspect": "ar", "steps": "steps", "sampler": "sampler"}
"""Each stored preference and the prompt flag whose rule it obeys."""
PREFERENCE_FIELDS = tuple(PREFERENCE_FLAGS)


@dataclass(frozen=True)
class Preferences:
    model: str | None = None
    aspect: str | None = None
    steps: int | None = None
    sampler: str | None = None
    lane: Lane | None = None


def checked_preferences(changes: Mapping[str, object], limits: PromptLimits) -> dict[str, object]:
    """The values a member chose in /settings (text, or None for the server default), checked by the rules of the
    flags they stand for and in the form they are stored in. Raises PromptError (ImagineError for an unknown key)."""
    unknown = set(changes) - {*PREFERENCE_FIELDS, "lane"}
    if unknown:
        raise ImagineError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    checked: dict[str, object] = {}
    for key, value in changes.items():
        if value is None:
            checked[key] = None
        elif key == "lane":
            if str(value) not in tuple(Lane):
                *others, last = Lane
                raise PromptError(f"`{value}` is not a lane: use {', '.join(others)} or {last}")
            checked[key] = Lane(str(value))
        else:
            _field, parsed = parse_flag(PREFERENCE_FLAGS[key], str(value), limits)
            checked[key] = f"{parsed[0]}:{parsed[1]}" if key == "aspect" else parsed
    return checked


def apply_preferences(parsed: ParsedPrompt, preferences: Preferences, limits: PromptLimits) -> ParsedPrompt:
    """Fill what the prompt did not say from the member's /settings (flags in the prompt always win), each value
    checked by its flag's rule as it stands today. Raises PromptError naming the setting to change."""
    changes: dict[str, object] = {}
    for key, flag in PREFERENCE_FLAGS.items():
        value = getattr(preferences, key)
        if value is None or flag in parsed.flags:
            continue
        try:
            field, changes_value = parse_flag(flag, str(value), limits)
        except PromptError:
            raise PromptError(
                f"your default {key} `{value}` (from /settings) is not available on this server any more; "
                f"choose another in /settings or add --{flag}",
                flag=flag,
            ) from None
        changes[field] = changes_value
    return replace(parsed, **changes)  # type: ignore[arg-type]


class PreferenceStore:
    """Reads and writes /settings. The lane is the member's ``users.default_lane``, which the scheduler uses."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def get(self, user_id: int) -> Preferences:
        row = await self.store.fetch_one(
            "SELECT p.model, p.aspect, p.steps, p.sampler, u.default_lane FROM users u"
            " LEFT JOIN preferences p ON p.user_id = u.user_id WHERE u.user_id = ?",
            (user_id,),
        )
        if row is None:
            return Preferences()
        return Preferences(row[0], row[1], row[2], row[3], Lane(row[4]) if row[4] else None)

    async def update(self, user_id: int, **changes: object) -> Preferences:
        """Set some fields (None clears one back to the server default), checked already (:func:`checked_preferences`:
        the core's ``member.update_preferences`` checks them)."""
        current = replace(await self.get(user_id), **changes)  # type: ignore[arg-type]
        now = time.time()

        def work(db: sqlite3.Connection) -> None:
            ledger.ensure_member(db, user_id, self.settings, now)  # a new member gets their tier and allowance
            if "lane" in changes and current.lane is not None:
                db.execute("UPDATE users SET default_lane = ? WHERE user_id = ?", (current.lane.value, user_id))
            db.execute(
                "INSERT INTO preferences (user_id, model, aspect, steps, sampler, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET model = excluded.model,"
                " aspect = excluded.aspect, steps = excluded.steps, sampler = excluded.sampler,"
                " updated_at = excluded.updated_at",
                (user_id, current.model, current.aspect, current.steps, current.sampler, now),
            )

        await self.store.write(work)
        return await self.get(user_id)
