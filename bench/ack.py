"""How fast /imagine is acknowledged: 50 concurrent interactions through simcord, interaction to defer.

``python -m bench.ack [--interactions N]``. The last line is one JSON object with ``ack_p50_ms`` and
``ack_p99_ms``. Target: p99 ≤ 50 ms. Interactions are emitted into the gateway back to back without settling
in between, so the bot handles them concurrently, as it would a burst from a busy server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import discord
import simcord
from simcord import interactions as sim_interactions

from bot.discord_surface.discord_bot import ImagineBot
from config.settings import Settings


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def measure(count: int, data_dir: Path) -> dict[str, Any]:
    settings = Settings(_env_file=None, model="tiny", data_dir=data_dir)  # type: ignore[call-arg]
    bot = ImagineBot(settings)
    sent_at: dict[int, float] = {}
    all_acked = asyncio.Event()
    acked_at: dict[int, float] = {}
    original_defer = discord.InteractionResponse.defer

    async def timed_defer(self: discord.InteractionResponse, **kwargs: Any) -> Any:
        result = await original_defer(self, **kwargs)
        acked_at[self._parent.id] = time.perf_counter()
        if len(acked_at) >= count:
            all_acked.set()
        return result

    discord.InteractionResponse.defer = timed_defer  # type: ignore[method-assign]
    env = simcord.Env(bot, check_errors=False, settle_timeout=60)
    bot.external_wait = env.external_wait
    try:
        await env.start()
        guild = env.create_guild()
        channel = guild.create_text_channel("art")
        members = [guild.add_member(env.create_user(f"member{index}")) for index in range(count)]
        root = env.backend.find_command("imagine", guild.id, type=1)
        assert root is not None
        for member in members:
            data = {
                "id": root["id"],
                "name": "imagine",
                "type": 1,
                "options": [{"name": "prompt", "type": 3, "value": f"a red fox number {member.id} --ar 3:2"}],
            }
            _record, payload = sim_interactions.base_payload(
                env.backend, type=2, channel_id=channel.id, guild_id=guild.id, user_id=member.id, data=data
            )
            sent_at[int(payload["id"])] = time.perf_counter()
            env.backend.emit("INTERACTION_CREATE", payload)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_acked.wait(), 60)
    finally:
        discord.InteractionResponse.defer = original_defer  # type: ignore[method-assign]
        await env.shutdown()
        # simcord detaches the bot without calling close(): stop its background work and the engine here.
        if bot._service is not None:
            await bot._service.close()
    latencies = [(acked_at[key] - sent_at[key]) * 1000 for key in sent_at if key in acked_at]
    return {
        "interactions": count,
        "acknowledged": len(latencies),
        "ack_p50_ms": round(statistics.median(latencies), 3) if latencies else None,
        "ack_p99_ms": round(_percentile(latencies, 0.99), 3) if latencies else None,
        "ack_max_ms": round(max(latencies), 3) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interactions", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(measure(args.interactions, Path(folder)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
