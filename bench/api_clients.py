"""The clients of ``python -m bench.api``: many members' HTTP clients at once, in a process of their own.

Each member (and each SSE subscriber) has its own ``httpx.AsyncClient`` with one connection, as separate programs
would: one shared client's connection pool scans every connection on every request and close, which at hundreds
of connections costs the client seconds and would be measured as the server's latency. The clients share one SSL
context (making one per client costs ~45 ms each; these URLs are plain http anyway).

Run by :mod:`bench.api` as ``python -m bench.api_clients`` (so their CPU is not the server's): it reads one JSON
line (the plan), answers ``{"ready": true}`` once its connections are open (a burst: then waits for a ``go``
line) or once every stream has the job's first event (SSE), and ends with one JSON line of results. Timestamps are
``time.monotonic()``, which is the same clock in every process of the machine. Only httpx and the standard library
are imported, so it starts in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

TERMINAL = frozenset({"completed", "failed", "cancelled"})
TIMEOUT_S = 300.0
"""How long one request, or one silence on a stream, may last."""

Ready = Callable[[], Awaitable[None]]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextlib.asynccontextmanager
async def member_clients(base_url: str, count: int) -> Any:
    """``count`` clients of one connection each, sharing one SSL context."""
    context = ssl.create_default_context()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, limits=limits, verify=context, timeout=TIMEOUT_S)
            )
            for _ in range(count)
        ]
        yield clients


async def burst(
    base_url: str, path: str, requests: Sequence[tuple[int, str, dict[str, Any] | None]], ready: Ready
) -> list[dict[str, Any]]:
    """Each ``(member, key, body)`` sent by its own client, all at once (``gather``): ``POST path`` with the JSON
    ``body``, or ``GET path`` when the body is None.

    Each client's connection is opened first with a request that reads nothing (``/api/v1/models`` without a key:
    401), then ``ready`` is awaited; latency is from a request's send to its answer."""

    async def send(client: httpx.AsyncClient, user_id: int, key: str, body: dict[str, Any] | None) -> dict[str, Any]:
        sent_at = time.monotonic()
        if body is None:
            response = await client.get(path, headers=bearer(key))
        else:
            response = await client.post(path, json=body, headers=bearer(key))
        answered_at = time.monotonic()
        return {
            "user_id": user_id,
            "latency_s": answered_at - sent_at,
            "sent_at": sent_at,
            "answered_at": answered_at,
            "status": response.status_code,
            "body": response.json(),
        }

    async with member_clients(base_url, len(requests)) as clients:
        await asyncio.gather(*(client.get("/api/v1/models") for client in clients))
        await ready()
        return list(
            await asyncio.gather(*(send(client, *request) for client, request in zip(clients, requests, strict=True)))
        )


async def follow(client: httpx.AsyncClient, job_id: int, key: str, opened: Callable[[], None]) -> dict[str, Any]:
    """One job's events to their end: their names in order and when the terminal one arrived; ``opened`` is called
    at the first event (the job's state when the stream began) or when the stream failed."""
    result: dict[str, Any] = {"job_id": job_id, "status": 0, "events": [], "terminal_at": None, "error": ""}
    told = False
    try:
        async with client.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=bearer(key)) as response:
            result["status"] = response.status_code
            if response.status_code != 200:
                result["error"] = (await response.aread()).decode(errors="replace")[:200]
                return result
            name = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    name = line.removeprefix("event:").strip()
                elif not line and name:
                    result["events"].append(name)
                    if name in TERMINAL:
                        result["terminal_at"] = time.monotonic()
                    if not told:
                        told = True
                        opened()
                    name = ""
    except httpx.HTTPError as error:
        result["error"] = f"{type(error).__name__}: {error}"
    finally:
        if not told:
            opened()
    return result


async def follow_all(base_url: str, streams: Sequence[tuple[int, str]], ready: Ready) -> list[dict[str, Any]]:
    """Each ``(job, key)`` followed by its own client; ``ready`` is awaited once every stream has its first event
    (every stream is open then), while they go on to their ends."""
    all_open = asyncio.Event()
    opened_count = 0

    def opened() -> None:
        nonlocal opened_count
        opened_count += 1
        if opened_count >= len(streams):
            all_open.set()

    async with member_clients(base_url, len(streams)) as clients:
        tasks = [
            asyncio.ensure_future(follow(client, job_id, key, opened))
            for client, (job_id, key) in zip(clients, streams, strict=True)
        ]
        await all_open.wait()
        await ready()
        return list(await asyncio.gather(*tasks))


# --- the child process --------------------------------------------------------------------------------------------


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _child() -> None:
    loop = asyncio.get_running_loop()
    plan = json.loads(await loop.run_in_executor(None, sys.stdin.readline))

    async def ready_then_go() -> None:
        _say({"ready": True})
        await loop.run_in_executor(None, sys.stdin.readline)

    async def ready() -> None:
        _say({"ready": True})

    if "burst" in plan:
        requests = [(int(user_id), str(key), body) for user_id, key, body in plan["burst"]["requests"]]
        results = await burst(plan["base_url"], plan["burst"]["path"], requests, ready_then_go)
    else:
        streams = [(int(job_id), str(key)) for job_id, key in plan["streams"]]
        results = await follow_all(plan["base_url"], streams, ready)
    _say({"results": results})


if __name__ == "__main__":
    asyncio.run(_child())
