"""Per-member defaults from /settings: model, aspect ratio, steps and sampler (the lane lives on the user)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, replace

from bot.errors import ImagineError
from bot.jobs import Lane
from bot.requests.prompt import ParsedPrompt
from bot.scheduling import ledger
from bot.storage.store import Store
from config.settings import Settings

PREFERENCE_FIELDS = ("model", "aspect", "steps", "sampler")


@dataclass(frozen=True)
class Preferences:
    model: str | None = None
    aspect: str | None = None
    steps: int | None = None
    sampler: str | None = None
    lane: Lane | None = None


def apply_preferences(parsed: ParsedPrompt, preferences: Preferences) -> ParsedPrompt:
    """Fill what the prompt did not say from the member's /settings; flags in the prompt always win."""
    changes: dict[str, object] = {}
    if preferences.model and "model" not in parsed.flags:
        changes["model"] = preferences.model
    if preferences.aspect and "ar" not in parsed.flags:
        width, height = preferences.aspect.split(":")
        changes["aspect"] = (int(width), int(height))
    if preferences.steps and "steps" not in parsed.flags:
        changes["steps"] = preferences.steps
    if preferences.sampler and "sampler" not in parsed.flags:
        changes["sampler"] = preferences.sampler
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
        """Set some fields (None clears one back to the server default)."""
        unknown = set(changes) - {*PREFERENCE_FIELDS, "lane"}
        if unknown:
            raise ImagineError(f"unknown setting(s): {', '.join(sorted(unknown))}")
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
