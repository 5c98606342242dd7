"""Which button works on which result: a pure rule, table-tested."""

from __future__ import annotations

import dataclasses

import pytest

from bot.actors import Actor
from bot.errors import ImagineError
from bot.jobs import Job, Kind, Lane, Origin, RenderParams, Status
from bot.requests.custom_ids import Action, make_custom_id, parse_custom_id
from bot.requests.follow_ups import check_follow_up, shown_where

PARAMS = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)


def _job(kind: Kind = Kind.IMAGINE, status: Status = Status.COMPLETED) -> Job:
    return Job(7, 1, kind, status, Lane.FAST, "fox", PARAMS, Origin(), 0.0)


@pytest.mark.parametrize(
    ("parent", "action", "index", "fragment"),
    [
        (_job(status=Status.QUEUED), Action.UPSCALE, 0, r"has no images yet \(queued\)"),
        (_job(Kind.SWEEP), Action.UPSCALE, 0, "a sweep grid has no upscale"),
        (_job(), Action.ZOOM_OUT_2, 0, "press U1–U4 first"),
        (_job(), Action.PAN_LEFT, 0, "press U1–U4 first"),
        (_job(), Action.UPSCALE, 4, "has no image 5"),
    ],
)
def test_refused_follow_ups(parent: Job, action: Action, index: int, fragment: str) -> None:
    """Each refusal says what to do instead."""
    with pytest.raises(ImagineError, match=fragment):
        check_follow_up(parent, action, index, image_count=4)


@pytest.mark.parametrize(
    ("parent", "action", "kind"),
    [
        (_job(), Action.UPSCALE, Kind.UPSCALE),
        (_job(), Action.VARY, Kind.VARIATION),
        (_job(), Action.REROLL, Kind.REROLL),
        (_job(Kind.UPSCALE), Action.ZOOM_OUT_15, Kind.ZOOM),
        (_job(Kind.UPSCALE), Action.PAN_DOWN, Kind.PAN),
        (_job(Kind.UPSCALE), Action.VARY_SUBTLE, Kind.VARIATION),
    ],
)
def test_allowed_follow_ups(parent: Job, action: Action, kind: Kind) -> None:
    """Grid buttons on grids, upscale buttons on upscales."""
    assert check_follow_up(parent, action, 0, image_count=4).kind is kind


@pytest.mark.parametrize("action", list(Action))
def test_custom_ids_round_trip_within_discord_limits(action: Action) -> None:
    """Every button's custom_id parses back and stays under 100 characters, even for huge job ids."""
    custom_id = make_custom_id(action, 2**63 - 1, 3)
    assert len(custom_id) <= 100
    assert parse_custom_id(custom_id) == (action, 2**63 - 1, 3)


@pytest.mark.parametrize("text", ["ib:U:1", "ib:ZZ:1:0", "ib:U:-1:0", "ib:U:1:10", "xx:U:1:0", "ib:U:1:0:extra"])
def test_foreign_custom_ids_are_not_ours(text: str) -> None:
    """Anything else is not a result button."""
    assert parse_custom_id(text) is None


PLACED = dataclasses.replace(_job(), origin=Origin(guild_id=1, channel_id=10))


@pytest.mark.parametrize(
    ("actor", "shown"),
    [
        (Actor.discord(7, guild_id=1, channel_id=10), True),
        (Actor.discord(7, guild_id=1, channel_id=11), False),  # another channel of the server (maybe private)
        (Actor.discord(7, guild_id=2, channel_id=10), False),  # another server
        (Actor.discord(7, guild_id=None, channel_id=10), False),
        (Actor.console(), True),
    ],
)
def test_a_button_works_only_where_its_result_is(actor: Actor, shown: bool) -> None:
    """A press counts only from the server and channel of the result it belongs to."""
    assert shown_where(PLACED, actor) is shown
