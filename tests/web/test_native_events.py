"""A job's Server-Sent Events: in order from where the job stands to its end, at once for an ended job, and a
stream that ends (and stops watching) as soon as its client goes."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bot.core import Actor, ImagineService
from tests.web.conftest import bearer
from tests.web.native import API, create, events_of, parse_sse, wait_for_job
from web import sse
from web.feed import JobFeed


async def queued_behind_two(client: httpx.AsyncClient, key: str, prompt: str) -> list[dict[str, Any]]:
    """Three jobs in one request: with one running and one waiting in the engine, the third waits in the queue."""
    response = await create(client, key, prompt=f"{prompt} --repeat 3")
    assert response.status_code == 202, response.text
    return list(response.json()["jobs"])


@pytest.mark.slow
async def test_events_arrive_in_order_with_previews(client: httpx.AsyncClient, member_key: str) -> None:
    """queued (with its place), started, progress with a JPEG data URI, completed with the images; then it ends."""
    jobs = await queued_behind_two(client, member_key, "a waterfall --steps 5")
    third = jobs[2]
    response = await client.get(f"{API}/jobs/{third['id']}/events", headers=bearer(member_key))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    blocks = parse_sse(response.text)
    assert blocks[0].retry == sse.RETRY_MS
    events = events_of(blocks)
    names = [event.event for event in events if event.event != "position"]
    assert names[:2] == ["queued", "started"] and names[-1] == "completed"
    assert set(names[2:-1]) == {"progress"} and names[2:-1]
    assert events[0].data["job"]["position"] >= 1
    previews = [event.data["preview"] for event in events if event.event == "progress" and event.data["preview"]]
    assert previews and previews[0].startswith("data:image/jpeg;base64,")
    assert base64.b64decode(previews[0].split(",", 1)[1])[:2] == b"\xff\xd8"
    last = events[-1].data["job"]
    assert last["status"] == "completed" and len(last["images"]) == 4
    assert [int(event.id or 0) for event in events] == list(range(1, len(events) + 1))


@pytest.mark.slow
async def test_a_late_subscriber_gets_the_end_at_once(client: httpx.AsyncClient, member_key: str) -> None:
    """An ended job's stream is its terminal event alone, then the stream closes."""
    job = (await create(client, member_key, prompt="a meadow")).json()["jobs"][0]
    await wait_for_job(client, member_key, job["id"])
    # The stream closes after its one event: a stream left open would never return (a hang guard, not a timing).
    response = await asyncio.wait_for(client.get(f"{API}/jobs/{job['id']}/events", headers=bearer(member_key)), 30)
    [event] = events_of(parse_sse(response.text))
    assert event.event == "completed" and event.data["job"]["grid_url"] == f"{API}/jobs/{job['id']}/grid"


async def test_a_cancelled_job_ends_its_stream_with_the_reason(client: httpx.AsyncClient, member_key: str) -> None:
    """A stream that waits on a queued job ends with ``cancelled`` and the job when the member cancels it."""
    third = (await queued_behind_two(client, member_key, "a cliff --relax"))[2]
    url = f"{API}/jobs/{third['id']}/events"
    stream = asyncio.create_task(client.get(url, headers=bearer(member_key)))
    await asyncio.sleep(0.2)
    assert (await client.delete(f"{API}/jobs/{third['id']}", headers=bearer(member_key))).status_code == 200
    events = events_of(parse_sse((await asyncio.wait_for(stream, 30)).text))
    assert events[-1].event == "cancelled" and events[-1].data["job"]["status"] == "cancelled"
    assert "message" in events[-1].data
    assert events[0].event in ("queued", "cancelled")


class RawClient:
    """An ASGI client that sees each chunk as it is sent and can hang up, as a browser's EventSource does."""

    def __init__(self, app: FastAPI, path: str, key: str, spec_version: str | None) -> None:
        self.app = app
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", **({"spec_version": spec_version} if spec_version else {})},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {key}".encode())],
            "client": ("127.0.0.1", 1234),
            "server": ("testserver", 80),
        }
        self.chunks: list[str] = []
        self.status = 0
        self.hung_up = asyncio.Event()
        self._request_sent = False

    async def receive(self) -> dict[str, Any]:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and message.get("body"):
            self.chunks.append(message["body"].decode())

    async def run(self) -> None:
        await self.app(self.scope, self.receive, self.send)

    def text(self) -> str:
        return "".join(self.chunks)


async def wait_for(condition: Any, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("spec_version", [None, "2.4"], ids=["server-watches-disconnect", "stream-polls-disconnect"])
async def test_streams_end_when_their_clients_hang_up(
    app: FastAPI,
    client: httpx.AsyncClient,
    service: ImagineService,
    member_key: str,
    monkeypatch: pytest.MonkeyPatch,
    spec_version: str | None,
) -> None:
    """Many idle watchers of a waiting job get the keep-alive; when they hang up every stream ends and stops
    watching, whether the server tells the response (ASGI < 2.4) or the stream must ask (2.4)."""
    monkeypatch.setattr(sse, "KEEPALIVE_S", 0.3)
    third = (await queued_behind_two(client, member_key, "a dune --relax"))[2]
    await service.admin.pause(Actor.console(), "hold the job in the queue")
    feed: JobFeed = app.state.feed
    clients = [RawClient(app, f"{API}/jobs/{third['id']}/events", member_key, spec_version) for _ in range(50)]
    tasks = [asyncio.create_task(raw.run()) for raw in clients]
    await wait_for(lambda: all(sse.KEEP_ALIVE in raw.text() for raw in clients))
    assert feed.watchers == len(clients)
    assert all(raw.status == 200 and "event: queued" in raw.text() for raw in clients)
    for raw in clients:
        raw.hung_up.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert feed.watchers == 0
