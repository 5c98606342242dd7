"""``python -m bench.api`` at a tiny scale, so the benchmark keeps working: both parts over real HTTP with the
session's engine, the clients in their own process and in the server's loop; and its pure rules."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import pytest

from bench import api
from bot.core import ImagineService
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings


@pytest.mark.parametrize(
    ("events", "ordered", "missing"),
    [
        (["queued", "started", "completed"], True, 0),
        (["queued", "position", "position", "started", "progress", "progress", "completed"], True, 0),
        (["queued", "started", "progress", "failed"], True, 0),
        (["queued", "completed"], False, 1),
        (["queued", "started"], False, 1),
        ([], False, 2),
        (["started", "completed"], False, 0),
        (["queued", "started", "position", "completed"], False, 0),
        (["queued", "started", "started", "completed"], False, 0),
        (["queued", "started", "completed", "progress"], False, 0),
        (["queued", "progress", "started", "completed"], False, 0),
    ],
)
def test_subscriber_events_order_and_lost_changes(events: list[str], ordered: bool, missing: int) -> None:
    """A subscriber's events are in order only as queued, position…, started, progress…, end; started and the end
    are the state changes that count as lost."""
    assert api.in_order(events) is ordered
    assert api.missing_changes(events) == missing


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([1.0], 0.99, 1.0),
        ([float(value) for value in range(1, 101)], 0.99, 99.0),
        ([float(value) for value in range(1, 101)], 0.5, 50.0),
        ([float(value) for value in range(1, 201)], 0.99, 198.0),
        ([3.0, 1.0, 2.0], 1.0, 3.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    """The percentile is a value that was measured: the smallest with at least that share at or below it."""
    assert api.percentile(values, fraction) == expected


def test_server_socket_gets_tcp_nodelay() -> None:
    """The benchmark's socket is a TCP one as the bot's own is, so asyncio turns Nagle off on its connections."""
    sock = api.free_socket()
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.fixture
async def idle_service(settings: Settings, engine: EngineSupervisor) -> AsyncIterator[ImagineService]:
    """The core on this test's database and the session's engine, its worker not started (the benchmark starts it
    once its streams are open)."""
    service = await ImagineService.open(settings, engine=engine)
    try:
        yield service
    finally:
        await service.close()


@pytest.mark.slow
@pytest.mark.parametrize("clients", [api.in_child, api.in_loop], ids=["child-process", "in-loop"])
async def test_api_benchmark_small(idle_service: ImagineService, clients: api.Clients) -> None:
    """4 concurrent admissions and 2 jobs with 3 subscribers each: every request admitted and charged once, every
    subscriber gets every state change in order, and the result is one JSON object."""
    parts: list[dict[str, object]] = []
    result = await api.measure(
        idle_service, admissions=4, rounds=1, jobs=2, per_job=3, clients=clients, report=parts.append
    )
    assert [part["part"] for part in parts] == ["sse", "admissions"]
    assert json.loads(json.dumps(result)) == result
    admissions = result["admissions"]
    assert admissions["rounds"][0]["statuses"] == {"202": 4}
    assert admissions["jobs_admitted"] == 4
    assert admissions["jobs_ended"] == {"completed": 4}
    assert admissions["charged_once"] is True
    assert admissions["reference"]["statuses"] == {"200": 4}
    assert admissions["latency_ms"]["p99"] > 0
    sse = result["sse"]
    assert sse["subscribers"] == 6
    assert sse["events_lost"] == 0
    assert sse["in_order"] is True
    assert sse["terminal_received"] == 6
    assert sse["errors"] == []
    assert sse["rss_mb"]["streams_open"] > 0
    assert sse["final_event_ms"]["max"] >= 0
