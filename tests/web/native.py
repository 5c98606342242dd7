"""Helpers for the native API's tests: waiting for a job, reading an SSE stream, and images to upload."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from tests.web.conftest import bearer

API = "/api/v1"
ENDED = ("completed", "failed", "cancelled")


async def wait_for_job(
    client: httpx.AsyncClient, key: str, job_id: int, statuses: tuple[str, ...] = ENDED, limit_s: float = 60.0
) -> dict[str, Any]:
    """The job once its status is one of ``statuses`` (read every 50 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        response = await client.get(f"{API}/jobs/{job_id}", headers=bearer(key))
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in statuses:
            return job
        assert loop.time() < deadline, f"job {job_id} is still {job['status']} after {limit_s} s"
        await asyncio.sleep(0.05)


async def create(client: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    return await client.post(f"{API}/jobs", json=body, headers=bearer(key))


async def balance(client: httpx.AsyncClient, key: str) -> int:
    response = await client.get(f"{API}/me", headers=bearer(key))
    assert response.status_code == 200, response.text
    value: int = response.json()["balance"]
    return value


@dataclass(frozen=True)
class Sse:
    """One block of an event stream: an event with its id and JSON data, a ``retry:``, or a comment."""

    event: str | None
    data: Any
    id: str | None = None
    retry: int | None = None
    comment: str | None = None


def parse_sse(text: str) -> list[Sse]:
    """Every block of an event stream, in order."""
    blocks: list[Sse] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        comment = None
        for line in block.split("\n"):
            if line.startswith(":"):
                comment = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        blocks.append(
            Sse(
                event=fields.get("event"),
                data=json.loads(fields["data"]) if "data" in fields else None,
                id=fields.get("id"),
                retry=int(fields["retry"]) if "retry" in fields else None,
                comment=comment,
            )
        )
    return blocks


def events_of(blocks: list[Sse]) -> list[Sse]:
    return [block for block in blocks if block.event is not None]


def png_bytes(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def mask_bytes(width: int = 64, height: int = 64) -> bytes:
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (width // 4, height // 4, width * 3 // 4, height * 3 // 4))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode("ascii")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of a few dozen bytes whose header declares ``width`` x ``height`` pixels (10 gigapixels by default)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )
