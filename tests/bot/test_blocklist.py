"""Blocklist matching and channel policy: pure rules, table-tested."""

from __future__ import annotations

import pytest

from bot.blocklist import channel_allowed, find_blocked, normalise_words
from bot.permissions import is_moderator

BLOCKED = ["gore", "blood bath", "nsfw"]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a calm lake", None),
        ("lots of GORE please", "gore"),
        ("g0re", "gore"),
        ("a blood bath scene", "blood bath"),
        ("a bloodbath scene", None),
        ("blood and a bath", None),
        ("n.s.f.w art", "nsfw"),
        ("n s f w art", "nsfw"),
        ("g\u200bore", "gore"),
        ("ｇｏｒｅ", "gore"),
        ("górë", "gore"),
        ("gorengan (a snack)", None),
        ("gore--ar 3:2", "gore"),
    ],
)
def test_find_blocked(prompt: str, expected: str | None) -> None:
    """Whole words match after case, width, accents, zero-width, leetspeak and spelled-out letters are undone."""
    assert find_blocked(prompt, BLOCKED) == expected


def test_normalise_words_joins_single_letters() -> None:
    """Letters spelled one by one become one word."""
    assert normalise_words("a b c dog") == ["abc", "dog"]


@pytest.mark.parametrize(
    ("rules", "channel", "allowed"),
    [
        ({}, 1, True),
        ({1: False}, 1, False),
        ({1: False}, 2, True),
        ({1: True}, 1, True),
        ({1: True}, 2, False),
        ({1: True, 2: False}, 2, False),
    ],
)
def test_channel_allowed(rules: dict[int, bool], channel: int, allowed: bool) -> None:
    """Denied never; when any channel is allowed, only those; otherwise everywhere."""
    assert channel_allowed(rules, channel) is allowed


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"manage_guild": True}, True),
        ({"administrator": True}, True),
        ({"is_owner": True}, True),
        ({"role_names": ["Mods"], "moderator_roles": ["mods"]}, True),
        ({"role_ids": [42], "moderator_roles": ["42"]}, True),
        ({"role_names": ["Members"], "moderator_roles": ["mods"]}, False),
        ({}, False),
    ],
)
def test_is_moderator(kwargs: dict[str, object], expected: bool) -> None:
    """Manage Server, Administrator, owner, or a configured role."""
    base: dict[str, object] = {
        "manage_guild": False,
        "administrator": False,
        "is_owner": False,
        "role_ids": [],
        "role_names": [],
        "moderator_roles": [],
    }
    base.update(kwargs)
    assert is_moderator(**base) is expected  # type: ignore[arg-type]
