"""The image safety check's rules in the core: who is checked (settings × where the job came from), the verdict from
the engine's flags, and how a verdict is kept on a job's row."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.actors import Actor
from bot.image_safety import (
    PASSED,
    UNCHECKED,
    JobSafety,
    SafetyDecision,
    SafetyState,
    SafetyVerdictError,
    decide,
    verdict,
    with_safety_check,
    withheld_message,
    withholds,
)
from bot.jobs import Origin
from config.safety_settings import SafetySettings
from engine.protocol import RenderTask

ON = SafetySettings(enabled=True)
OFF = SafetySettings(enabled=False)
DISCORD = Actor.discord(1, guild_id=10, channel_id=20).origin
NSFW_DISCORD = Actor.discord(1, guild_id=10, channel_id=21, nsfw=True).origin
WEB = Actor.web(1, guild_id=10, key_id="k1").origin
CLI = Actor.console().origin


@pytest.mark.parametrize(
    ("settings", "origin", "expected"),
    [
        (OFF, DISCORD, SafetyDecision.OFF),
        (OFF, NSFW_DISCORD, SafetyDecision.OFF),
        (OFF, WEB, SafetyDecision.OFF),
        (OFF, CLI, SafetyDecision.OFF),
        (ON, DISCORD, SafetyDecision.CHECK),
        (ON, NSFW_DISCORD, SafetyDecision.NSFW_CHANNEL),
        (ON, WEB, SafetyDecision.CHECK),
        (ON, CLI, SafetyDecision.CHECK),
        (ON, Origin(source="web", nsfw=True), SafetyDecision.CHECK),
    ],
    ids=["off-discord", "off-nsfw", "off-web", "off-cli", "on-discord", "on-nsfw", "on-web", "on-cli", "on-web-nsfw"],
)
def test_who_is_checked(settings: SafetySettings, origin: Origin, expected: SafetyDecision) -> None:
    """Off checks nobody; on checks everyone but a Discord channel marked age-restricted (the web and the command
    line have none, so an nsfw mark from them counts for nothing)."""
    assert decide(settings, origin) is expected


@pytest.mark.parametrize("kind", ["imagine", "upscale", "sweep", "img2img"])
def test_every_kind_that_renders_is_checked(kind: str) -> None:
    """Whatever the engine renders is checked."""
    assert decide(ON, DISCORD, kind) is SafetyDecision.CHECK


def test_a_kind_that_renders_nothing_is_not_checked() -> None:
    """/describe shows the member's own upload: no render to check."""
    assert decide(ON, DISCORD, "describe") is SafetyDecision.OFF


@pytest.mark.parametrize(("origin", "asks"), [(DISCORD, True), (NSFW_DISCORD, False), (WEB, True), (CLI, True)])
def test_the_engine_task_asks_for_the_check_as_decided(origin: Origin, asks: bool) -> None:
    """The task the worker sends carries the decision."""
    task = RenderTask(1, "a fox", "", 64, 64, 4, 5.0, (1,), "euler_a", "/data/images/1")
    assert with_safety_check(task, ON, origin).safety_check is asks
    assert with_safety_check(task, OFF, origin).safety_check is False


@pytest.mark.parametrize(
    ("decision", "flags", "count", "expected"),
    [
        (SafetyDecision.OFF, (), 4, UNCHECKED),
        (SafetyDecision.NSFW_CHANNEL, (), 4, JobSafety(SafetyState.SKIPPED, "nsfw-channel")),
        (SafetyDecision.CHECK, ("", "", "", ""), 4, PASSED),
        (SafetyDecision.CHECK, ("", "NSFW content", "", ""), 4, JobSafety(SafetyState.FLAGGED, "NSFW content", (1,))),
        (SafetyDecision.CHECK, ("a", "", "b", "a"), 4, JobSafety(SafetyState.FLAGGED, "a; b", (0, 2, 3))),
        (SafetyDecision.CHECK, (), 0, UNCHECKED),
    ],
    ids=["off", "nsfw-channel", "passed", "one-flagged", "reasons-once-each", "nothing-rendered"],
)
def test_the_verdict_from_the_engine_flags(
    decision: SafetyDecision, flags: tuple[str, ...], count: int, expected: JobSafety
) -> None:
    """One verdict per job: passed, or flagged with each reason once and the flagged images' places."""
    assert verdict(decision, flags, count) == expected


def test_a_checked_job_without_a_verdict_per_image_is_an_error() -> None:
    """Images that came back unchecked are never taken as passed."""
    with pytest.raises(SafetyVerdictError, match="without the safety check"):
        verdict(SafetyDecision.CHECK, (), 4)


@pytest.mark.parametrize(
    ("safety", "text", "images_text"),
    [
        (UNCHECKED, "unchecked", ""),
        (PASSED, "passed", ""),
        (JobSafety(SafetyState.FLAGGED, "NSFW content", (0, 3)), "flagged:NSFW content", "0,3"),
        (JobSafety(SafetyState.SKIPPED, "nsfw-channel"), "skipped:nsfw-channel", ""),
    ],
)
def test_the_stored_text(safety: JobSafety, text: str, images_text: str) -> None:
    """The columns read as the documented words."""
    assert (safety.text, safety.images_text) == (text, images_text)


@given(
    state=st.sampled_from(SafetyState),
    detail=st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    images=st.lists(st.integers(0, 40), max_size=6, unique=True),
)
def test_a_verdict_reads_back_as_it_was_written(state: SafetyState, detail: str, images: list[int]) -> None:
    """Any verdict survives its two columns (a reason may hold ':' or ',')."""
    safety = JobSafety(state, detail, tuple(images))
    assert JobSafety.from_columns(safety.text, safety.images_text) == safety


def test_a_row_from_before_the_check_is_unchecked() -> None:
    """A NULL or missing column reads as unchecked."""
    assert JobSafety.from_columns(None, None) == UNCHECKED
    assert JobSafety.from_row({"id": 1}) == UNCHECKED


def test_an_origin_outside_an_nsfw_channel_keeps_its_old_text() -> None:
    """Rows written before the nsfw mark existed read the same; only a marked channel adds it."""
    assert "nsfw" not in json.loads(DISCORD.to_json())
    assert json.loads(NSFW_DISCORD.to_json())["nsfw"] is True
    assert Origin.from_json(NSFW_DISCORD.to_json()) == NSFW_DISCORD


@pytest.mark.parametrize(
    ("action", "safety", "withheld"),
    [
        ("withhold", JobSafety(SafetyState.FLAGGED, "x", (0,)), True),
        ("spoiler", JobSafety(SafetyState.FLAGGED, "x", (0,)), False),
        ("withhold", PASSED, False),
        ("withhold", JobSafety(SafetyState.SKIPPED, "nsfw-channel"), False),
    ],
)
def test_only_a_flagged_job_is_withheld_and_only_when_the_server_says_so(
    action: str, safety: JobSafety, withheld: bool
) -> None:
    """withhold applies to flagged jobs; spoiler posts them."""
    assert withholds(SafetySettings(enabled=True, action=action), safety) is withheld  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("images", "count", "expected"),
    [
        ((0,), 1, "the image was flagged"),
        ((1,), 4, "image 2 was flagged"),
        ((0, 2), 4, "images 1 and 3 were flagged"),
        ((0, 1, 3), 4, "images 1, 2 and 4 were flagged"),
    ],
)
def test_the_withheld_message_names_the_images(images: tuple[int, ...], count: int, expected: str) -> None:
    """Members count images from 1, as the buttons do."""
    message = withheld_message(JobSafety(SafetyState.FLAGGED, "NSFW content", images), count)
    assert f"{expected} (NSFW content)" in message and "nothing was posted" in message
