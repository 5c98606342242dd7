"""Durable delivery through simcord: a finished job's grid or notice reaches the member exactly once.

Discord refuses the follow-up (expired token, unknown webhook, server errors), the channel fails too, the channel
is gone, or no bot ran when the job ended: the post still arrives once, as a channel message that mentions the
member, and the job records it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
import pytest
import simcord

from bot.application.service import ImagineService
from bot.discord_surface.discord_bot import ImagineBot
from bot.events import EventKind, JobEvent
from bot.running.engine_supervisor import EngineSupervisor
from cogs.presenter import DELIVERY_RETRY_INTERVAL_S
from config.settings import Settings
from tests.conftest import posts, release, scene, wait_until

FOLLOW_UP = "/webhooks/*"
CHANNEL_MESSAGES = "/channels/*/messages"


def refuse_from_completion(env: simcord.Env, method: str, path: str, status: int, code: int) -> None:
    """From the instant the worker reports a job complete, Discord refuses matching calls (for good).

    The same fault ``env.inject_error(..., times=None)`` records, armed by a listener on the core's event bus
    so that the queued follow-up before it is accepted and only what comes after is refused. (inject_error
    itself may not be called from the bot's own work.)
    """
    fault = {"method": method, "path": path, "status": status, "code": code, "message": "refused", "times": None}

    def arm(event: JobEvent) -> None:
        if event.kind is EventKind.COMPLETED and fault not in env.backend.faults:
            env.backend.faults.append(fault)

    env.bot.service.events.subscribe(arm)


def requests_to(env: simcord.Env, method: str, prefix: str) -> int:
    return sum(1 for r in env.http_requests if r.method == method and r.path.startswith(prefix))


async def delivery_of(env: simcord.Env, job_id: int) -> tuple[Any, ...]:
    row = await env.bot.service.store.fetch_one(
        "SELECT delivery, delivery_attempts, delivery_error, delivered_at FROM jobs WHERE id = ?", (job_id,)
    )
    return tuple(row)


async def only_job(env: simcord.Env) -> int:
    [row] = await env.bot.service.store.fetch_all("SELECT id FROM jobs")
    return int(row[0])


def footer_job(message: discord.Message) -> str:
    [embed] = message.embeds
    return embed.footer.text or ""


async def fresh_bot(env: simcord.Env, settings: Settings, engine: EngineSupervisor) -> ImagineBot:
    """Attach a new bot on the same database and engine (a restart)."""
    bot = ImagineBot(settings, engine=engine)
    bot.external_wait = env.external_wait
    await env.restart_bot(bot)
    return bot


@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "code"),
    [(401, 50027), (404, 10015), (503, 0)],
    ids=["invalid-webhook-token", "unknown-webhook", "server-error"],
)
async def test_a_refused_follow_up_posts_the_grid_to_the_channel_once(
    discord_env: simcord.Env, status: int, code: int
) -> None:
    """The result follow-up is refused: the grid arrives as one channel message mentioning the member."""
    _guild, channel, ann = scene(discord_env, "ann")
    refuse_from_completion(discord_env, "*", FOLLOW_UP, status, code)

    await ann.slash(channel, "imagine", prompt="a kettle --seed 2")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid in the channel")

    job_id = await only_job(discord_env)
    [post] = posts(channel)
    assert post.webhook_id is None  # a channel message, not the refused follow-up
    assert ann.mention in post.content
    assert footer_job(post).startswith(f"job {job_id}")
    assert requests_to(discord_env, "POST", "/webhooks/") == 2  # the queued message, then the refused result
    delivery, attempts, error, delivered_at = await delivery_of(discord_env, job_id)
    assert (delivery, attempts, error) == ("delivered", 0, None)
    assert delivered_at is not None

    await discord_env.advance_time(DELIVERY_RETRY_INTERVAL_S + 1)  # the retry sweep has nothing left to post
    assert len(posts(channel)) == 1


@pytest.mark.slow
async def test_a_failing_channel_keeps_the_post_pending_until_the_retry(discord_env: simcord.Env) -> None:
    """Follow-up and channel both fail (5xx): the job stays pending, and the next sweep posts it once."""
    _guild, channel, bea = scene(discord_env, "bea")
    refuse_from_completion(discord_env, "*", FOLLOW_UP, 502, 0)
    discord_env.inject_error("POST", CHANNEL_MESSAGES, status=503, times=1)

    await bea.slash(channel, "imagine", prompt="a comb --seed 3")
    job_id = await only_job(discord_env)
    await wait_until(discord_env, lambda: requests_to(discord_env, "POST", "/channels/") == 1, what="the attempt")
    await discord_env.settle()
    delivery, attempts, error, _ = await delivery_of(discord_env, job_id)
    assert (delivery, attempts) == ("pending", 1)
    assert "503" in error
    assert posts(channel) == []

    await discord_env.advance_time(DELIVERY_RETRY_INTERVAL_S + 1)

    [post] = posts(channel)
    assert bea.mention in post.content
    assert footer_job(post).startswith(f"job {job_id}")
    assert (await delivery_of(discord_env, job_id))[:2] == ("delivered", 1)
    await discord_env.advance_time(DELIVERY_RETRY_INTERVAL_S + 1)
    assert len(posts(channel)) == 1


@pytest.mark.slow
async def test_a_gone_channel_is_given_up_with_a_log_line(
    discord_env: simcord.Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown Channel: recorded as given up with the reason, logged, and never tried again."""
    _guild, channel, cid = scene(discord_env, "cid")
    refuse_from_completion(discord_env, "*", FOLLOW_UP, 401, 50027)
    discord_env.inject_error("POST", CHANNEL_MESSAGES, status=404, code=10003, message="Unknown Channel", times=None)

    with caplog.at_level(logging.ERROR, logger="bot.running.delivery"):
        await cid.slash(channel, "imagine", prompt="a lamp --seed 4")
        job_id = await only_job(discord_env)
        await wait_until(discord_env, lambda: requests_to(discord_env, "POST", "/channels/") == 1, what="the attempt")
        await wait_until(discord_env, lambda: "gave up posting job" in caplog.text, what="the log line")

    delivery, attempts, error, delivered_at = await delivery_of(discord_env, job_id)
    assert (delivery, attempts, delivered_at) == ("abandoned", 1, None)
    assert "gone or forbidden" in error and "10003" in error
    await discord_env.advance_time(DELIVERY_RETRY_INTERVAL_S + 1)
    assert requests_to(discord_env, "POST", "/channels/") == 1


@pytest.mark.slow
async def test_a_result_that_finished_while_no_bot_ran_is_posted_at_start_up(
    discord_env: simcord.Env, settings: Settings, engine: EngineSupervisor
) -> None:
    """The bot dies before the job ends; the core finishes it alone; the next bot posts it once."""
    _guild, channel, dot = scene(discord_env, "dot")
    await dot.slash(channel, "imagine", prompt="a kite --seed 5")
    job_id = await only_job(discord_env)
    await release(discord_env.bot)  # the bot is gone: no presenter hears the job end

    core = await ImagineService.open(settings, engine=engine)
    try:  # an open store's threads would keep the test process from exiting after a failure here
        await core.worker.run_until_idle()
        assert (await core.scheduler.get(job_id)).status == "completed"
    finally:
        await core.close()
    assert posts(channel) == []

    await fresh_bot(discord_env, settings, engine)
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the start-up post")

    [post] = posts(channel)
    assert post.webhook_id is None
    assert dot.mention in post.content
    assert footer_job(post).startswith(f"job {job_id}")
    assert (await delivery_of(discord_env, job_id))[0] == "delivered"
    await discord_env.advance_time(DELIVERY_RETRY_INTERVAL_S + 1)
    assert len(posts(channel)) == 1


@pytest.mark.slow
async def test_notices_of_jobs_that_ended_while_no_bot_ran_are_posted_at_start_up(
    discord_env: simcord.Env, settings: Settings, engine: EngineSupervisor
) -> None:
    """A cancel and a failure while the bot was down reach the member once each, in the channel."""
    _guild, channel, eve = scene(discord_env, "eve")
    await eve.slash(channel, "imagine", prompt="a drum --repeat 2 --seed 6")
    rows = await discord_env.bot.service.store.fetch_all("SELECT id FROM jobs ORDER BY id")
    cancelled_id, failed_id = (row[0] for row in rows)
    await release(discord_env.bot)

    core = await ImagineService.open(settings, engine=engine)
    try:
        await core.cancel(cancelled_id, "console")
        await core.scheduler.fail(failed_id, "the engine ran out of memory")
    finally:
        await core.close()

    await fresh_bot(discord_env, settings, engine)
    notices = lambda: [m for m in channel.history() if "❌" in m.content]  # noqa: E731
    await wait_until(discord_env, lambda: len(notices()) == 2, what="both notices")

    texts = sorted(message.content for message in notices())
    assert all(eve.mention in text and "Your credits were refunded." in text for text in texts)
    assert any("— cancelled." in text for text in texts)
    assert any("— failed: the engine ran out of memory." in text for text in texts)
    for job_id in (cancelled_id, failed_id):
        assert (await delivery_of(discord_env, job_id))[0] == "delivered"
    await discord_env.advance_time(DELIVERY_RETRY_INTERVAL_S + 1)
    assert len(notices()) == 2


@pytest.mark.slow
async def test_a_refused_cancel_notice_falls_back_to_the_channel(discord_env: simcord.Env) -> None:
    """The queued message cannot be edited (token refused): the cancel notice goes to the channel, once."""
    _guild, channel, fay = scene(discord_env, "fay")
    await fay.slash(channel, "imagine", prompt="a bell --repeat 2 --steps 20 --seed 7")  # renders for about 2 s
    rows = await discord_env.bot.service.store.fetch_all("SELECT id, status FROM jobs ORDER BY id")
    waiting = rows[1][0]
    assert rows[1][1] in ("queued", "running")  # one job at a time per member: the second waits (maybe in the engine)
    discord_env.inject_error("PATCH", FOLLOW_UP, status=401, code=50027, message="Invalid Webhook Token", times=None)

    cancelled = await fay.slash(channel, "cancel", job=waiting)
    assert cancelled.response is not None and "cancelled" in cancelled.response.content
    await wait_until(discord_env, lambda: any("❌" in m.content for m in channel.history()), what="the notice")

    [notice] = [message for message in channel.history() if "❌" in message.content]
    assert notice.webhook_id is None
    assert fay.mention in notice.content and "— cancelled." in notice.content
    assert (await delivery_of(discord_env, waiting))[0] == "delivered"
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the first job's grid")


@pytest.mark.slow
async def test_a_live_event_and_the_sweep_never_post_one_job_twice(discord_env: simcord.Env) -> None:
    """Deliveries of one pending job started at the same moment make one post; a delivered job is left alone."""
    _guild, channel, gus = scene(discord_env, "gus")
    refuse_from_completion(discord_env, "*", FOLLOW_UP, 500, 0)
    discord_env.inject_error("POST", CHANNEL_MESSAGES, status=500, times=1)
    await gus.slash(channel, "imagine", prompt="a fern --seed 8")
    job_id = await only_job(discord_env)
    await wait_until(discord_env, lambda: requests_to(discord_env, "POST", "/channels/") == 1, what="the attempt")
    await discord_env.settle()
    assert (await delivery_of(discord_env, job_id))[0] == "pending"

    presenter: Any = discord_env.bot.get_cog("Presenter")  # the loaded extension's own class
    job = await discord_env.bot.service.scheduler.get(job_id)
    await asyncio.gather(presenter.deliver(job, None), presenter.deliver(job, None), presenter.deliver_pending())
    await presenter.deliver(job, None)
    await discord_env.settle()

    assert len(posts(channel)) == 1
    assert requests_to(discord_env, "POST", "/channels/") == 2  # the failed attempt and the one post
