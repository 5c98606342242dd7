"""The engine start clock: the start timeout counts every phase but a download that makes progress; a download
without progress stalls; one log line per phase change, download progress at most every 30 s."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.running.engine_start import StartWatch, download_progress, phase_line, should_log
from engine.protocol import EngineStarting

GiB = 2**30
IMPORTING = EngineStarting("importing", detail="torch and diffusers")
LOADING = EngineStarting("loading", model="sd15", detail="fp16 weights on cuda")


def downloading(done: int, files: int = 0) -> EngineStarting:
    return EngineStarting("downloading", "sd15", "org/sd, fp16 variant", done, 4 * GiB, files, 12)


Events = list[tuple[float, EngineStarting | None]]


def replay(events: Events, *, timeout: float = 60.0, stall: float = 30.0) -> tuple[bool, str, float]:
    """Feed (time, report) pairs to a watch started at 0; (expired, reason, seconds to the next deadline)."""
    watch = StartWatch("sd15", timeout, stall, 0.0)
    for now, status in events:
        watch.observe(now, status)
        verdict = watch.verdict()
        if verdict.expired:
            return True, verdict.reason, 0.0
    return False, "", watch.verdict().wake_in_s


@pytest.mark.parametrize(
    ("events", "expired", "fragment"),
    [
        ([(59.0, None)], False, ""),  # silent engine: the plain start timeout
        ([(60.0, None)], True, "within 60 s; raise engine_start_timeout_s"),
        ([(5.0, IMPORTING), (61.0, IMPORTING)], True, "(it was importing torch and diffusers)"),
        ([(5.0, IMPORTING), (40.0, LOADING), (70.0, LOADING)], True, "(it was loading model sd15 (fp16 weights"),
        # an hour of download with a byte every 20 s: the start clock stands still while it moves
        ([(10.0, IMPORTING), *[(20.0 + 20 * i, downloading(i * 10**8)) for i in range(180)]], False, ""),
        ([(10.0, IMPORTING), (20.0, downloading(0)), (49.0, downloading(0))], False, ""),
        ([(10.0, IMPORTING), (20.0, downloading(0)), (50.0, downloading(0))], True, "stalled: no progress for 30 s"),
        ([(10.0, IMPORTING), (20.0, downloading(5)), (40.0, downloading(3)), (60.0, downloading(5))], True, "stalled"),
        # 20 s counted before the download; loading after it has the 40 s left
        ([(10.0, IMPORTING), (20.0, downloading(5)), (3000.0, LOADING), (3039.0, LOADING)], False, ""),
        ([(10.0, IMPORTING), (20.0, downloading(5)), (3000.0, LOADING), (3040.0, LOADING)], True, "within 60"),
    ],
)
def test_start_clock(events: Events, expired: bool, fragment: str) -> None:
    """One row per rule: silent and non-download phases count; a moving download does not; a still one stalls."""
    timed_out, reason, _ = replay(events)
    assert timed_out is expired, reason
    assert fragment in reason


def test_a_stalled_download_says_how_far_it_got_and_what_to_do() -> None:
    """The stall line names the model, the progress and the command that resumes the download."""
    _, reason, _ = replay([(1.0, downloading(GiB, 3)), (40.0, downloading(GiB, 3))])
    assert reason.startswith("the download of model 'sd15' stalled: no progress for 39 s (3 of 12 files, 1.0 of 4.0")
    assert "python -m bot models pull sd15" in reason


def test_wake_in_is_the_time_to_the_next_deadline() -> None:
    """The waiter sleeps exactly until the clock could expire: the start timeout's rest, or the stall's."""
    assert replay([(10.0, IMPORTING)])[2] == 50.0
    assert replay([(10.0, IMPORTING), (20.0, downloading(1)), (25.0, downloading(1))])[2] == 25.0


@given(st.lists(st.floats(min_value=0.0, max_value=29.0), min_size=1, max_size=200))
def test_a_download_that_keeps_moving_never_times_out(gaps: list[float]) -> None:
    """Whatever its length, a download with a new byte within every stall window never expires."""
    now, events = 5.0, [(5.0, IMPORTING)]
    for index, gap in enumerate(gaps):
        now += gap
        events.append((now, downloading(index + 1)))
    assert replay(events)[0] is False


@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=50))
def test_without_a_download_the_clock_is_the_start_timeout(gaps: list[float]) -> None:
    """With only importing and loading reports it expires exactly when 60 s have passed in all."""
    now, events = 0.0, []
    for index, gap in enumerate(gaps):
        now += gap
        events.append((now, IMPORTING if index % 2 else LOADING))
    assert replay(events)[0] is (now >= 60.0)


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (IMPORTING, "importing torch and diffusers"),
        (LOADING, "loading model sd15 (fp16 weights on cuda)"),
        (
            downloading(GiB, 3),
            "downloading model sd15 (org/sd, fp16 variant): 3 of 12 files, 1.0 of 4.0 GiB (25%)",
        ),
        (
            EngineStarting("downloading", "sd15", "", 4 * GiB, 4 * GiB, 11, 12),
            "sd15: 11 of 12 files, 4.0 of 4.0 GiB (99%)",
        ),
        (EngineStarting("downloading", "x", "", 5 * 2**20), "downloading model x: 5 MiB"),
        (
            EngineStarting("compiling", "sd15", "warm-up: 4 images at 624×416 and 512×512, 2 steps"),
            "compiling model sd15 (warm-up: 4 images at 624×416 and 512×512, 2 steps)",
        ),
    ],
)
def test_phase_lines(status: EngineStarting, line: str) -> None:
    """Each phase in words; a download with files, bytes and a share that says 100% only when every file is in."""
    assert line in phase_line(status)


def test_download_progress_never_passes_100_percent() -> None:
    """More bytes than planned (a file the plan did not list) still reads 100%."""
    assert download_progress(EngineStarting("downloading", "x", "", 5 * GiB, 4 * GiB, 12, 12)).endswith("(100%)")


@pytest.mark.parametrize(
    ("previous", "current", "since", "logged"),
    [
        (None, IMPORTING, 0.0, True),
        (IMPORTING, LOADING, 0.1, True),
        (LOADING, LOADING, 100.0, False),
        (IMPORTING, downloading(0), 0.1, True),
        (downloading(0), downloading(1), 29.9, False),
        (downloading(0), downloading(1), 30.0, True),
    ],
)
def test_one_log_line_per_phase_and_download_progress_every_30_s(
    previous: EngineStarting | None, current: EngineStarting, since: float, logged: bool
) -> None:
    """No flood: a phase change is logged, a download's progress at most every 30 s."""
    assert should_log(previous, current, since) is logged
