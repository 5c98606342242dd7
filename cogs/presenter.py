"""Presenting jobs in Discord: the queued message, live progress with a preview, the result post, failures.

Every command and button that queues work goes through :meth:`Presenter.submit`. While the interaction token
lives (15 minutes) results are followups; later ones (relax jobs) are normal channel messages that mention the
member. Progress edits are throttled to one every 2 s per message.

Delivery is durable (:mod:`bot.running.delivery`): a result or a failure/cancel notice counts as delivered only once
Discord accepted its post, which is then recorded at once. A refused follow-up (an expired or unknown token, a
server error) falls back to a channel message that mentions the member; a channel post that fails stays pending
and is retried every :data:`DELIVERY_RETRY_INTERVAL_S`, or is given up when the channel is gone or forbidden. At
start-up, once the gateway is ready, every pending post is made (results that finished while the bot was down go
to their channel). One delivery per job runs at a time in this process, so a live event and the retry sweep
never post the same job twice.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord.ext import commands, tasks

from bot.core import (
    Delivery,
    EventKind,
    ImagineError,
    Job,
    JobEvent,
    Kind,
    Origin,
    PostFailure,
    Prepared,
    StagedUpload,
    Status,
    needs_delivery,
)
from bot.discord_surface.discord_setup import describe_post_refusal
from cogs.actors import actor_of
from cogs.describe import describe_result
from cogs.posts import (
    MAX_CONTENT,
    failure_text,
    queued_text,
    result_embed,
    result_file,
    result_text,
    running_text,
)
from cogs.results import result_view
from cogs.safety_posts import hide_flagged

if TYPE_CHECKING:
    from bot.discord_surface.discord_bot import ImagineBot

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 14 * 60
"""An interaction token lives 15 minutes; past this age results go to the channel as a normal message."""
PROGRESS_EDIT_INTERVAL_S = 2.0
DELIVERY_RETRY_INTERVAL_S = 60.0
"""How often posts that Discord did not accept are tried again."""
LIVE_GRACE_S = 120.0
"""The retry sweep leaves a just-finished job this long to the live event that is about to post it."""
PENDING_BATCH = 100
"""Pending posts handled per sweep (the rest wait for the next one)."""
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, aiohttp.ClientError, asyncio.TimeoutError)
"""What a request raises when no HTTP answer came back (discord.py already retried)."""


@dataclass
class LiveRequest:
    """A request whose interaction token can still post and edit."""

    interaction: discord.Interaction[Any]
    created: datetime.datetime = field(default_factory=discord.utils.utcnow)
    messages: dict[int, discord.WebhookMessage] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    last_edit: dict[int, float] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def token_alive(self) -> bool:
        return (discord.utils.utcnow() - self.created).total_seconds() < TOKEN_LIFETIME_S


class Presenter(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        self.live: dict[int, LiveRequest] = {}
        self.delivering: set[int] = set()
        """Jobs whose post is in flight in this process (one delivery per job at a time)."""

    async def submit(
        self,
        interaction: discord.Interaction[Any],
        prepared: Sequence[Prepared],
        *,
        uploads: Sequence[StagedUpload] = (),
    ) -> None:
        """Defer (if not yet), charge and queue the jobs, and show one queued message per job.

        The queued messages are ephemeral (they show the member's cost and balance, and a refusal stays private);
        the result is posted publicly. ``uploads`` are the request's staged images (stored once admitted).
        """
        if not interaction.response.is_done():
            await interaction.response.defer(thinking=True, ephemeral=True)
        live = self.live[interaction.id] = LiveRequest(interaction)
        async with live.lock:
            try:
                admitted = await self.bot.service.submit(actor_of(interaction), prepared, uploads=uploads)
            except ImagineError as error:
                self.live.pop(interaction.id, None)
                await interaction.followup.send(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
                return
            for submitted in admitted.jobs:
                live.pending.add(submitted.job.id)
                live.messages[submitted.job.id] = await interaction.followup.send(
                    queued_text(submitted.job, submitted.position, submitted.eta_s, admitted), wait=True, ephemeral=True
                )

    async def cog_load(self) -> None:
        self.deliver_pending.change_interval(seconds=DELIVERY_RETRY_INTERVAL_S)
        self.deliver_pending.start()

    async def cog_unload(self) -> None:
        self.deliver_pending.cancel()

    @commands.Cog.listener()
    async def on_job_event(self, event: JobEvent) -> None:
        job = event.job
        live = self.live.get(job.origin.interaction_id or 0)
        if event.kind is EventKind.PROGRESS:
            await self._show_progress(live, event)
        elif event.kind in (EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED):
            await self.deliver(job, live, reason=event.message)

    def _finished(self, live: LiveRequest, job_id: int) -> None:
        live.pending.discard(job_id)
        live.messages.pop(job_id, None)
        if not live.pending:
            self.live.pop(live.interaction.id, None)

    async def _show_progress(self, live: LiveRequest | None, event: JobEvent) -> None:
        message = live.messages.get(event.job.id) if live is not None else None
        if live is None or message is None or not live.token_alive:
            return
        now = time.monotonic()
        if now - live.last_edit.get(event.job.id, 0.0) < PROGRESS_EDIT_INTERVAL_S:
            return
        live.last_edit[event.job.id] = now
        content = running_text(event.job, event.step, event.total)
        attachments = [discord.File(io.BytesIO(event.preview), "preview.jpg")] if event.preview else []
        async with live.lock:
            try:
                if attachments:
                    await message.edit(content=content, attachments=attachments)
                else:
                    await message.edit(content=content)
            except discord.HTTPException as error:
                log.debug("could not edit progress of job %s: %s", event.job.id, error)

    # --- durable delivery ------------------------------------------------------------------------------------

    @tasks.loop(seconds=DELIVERY_RETRY_INTERVAL_S)
    async def deliver_pending(self) -> None:
        """Post every ended job whose post Discord has not accepted yet (the first run is the start-up one)."""
        try:
            jobs = await self.bot.deliveries.pending(limit=PENDING_BATCH)
        except Exception:
            log.exception("could not list pending posts; trying again in %.0f s", DELIVERY_RETRY_INTERVAL_S)
            return
        now = time.time()
        for job in jobs:
            if job.id in self.delivering or self._live_post_expected(job, now):
                continue
            await self.deliver(job, None, reason=job.error or "")

    @deliver_pending.before_loop
    async def _wait_for_gateway(self) -> None:
        await self.bot.wait_until_ready()

    def _live_post_expected(self, job: Job, now: float) -> bool:
        """True while the live event of a job this process is presenting is on its way (it just finished)."""
        live = self.live.get(job.origin.interaction_id or 0)
        recent = job.finished_at is not None and now - job.finished_at < LIVE_GRACE_S
        return live is not None and job.id in live.pending and recent

    async def deliver(self, job: Job, live: LiveRequest | None, *, reason: str = "") -> None:
        """Post an ended job's result or failure/cancel notice, once, and record it as soon as Discord accepts it.

        A job whose delivery already runs in this process, or that is no longer pending, is left alone.
        """
        if not needs_delivery(job.origin) or job.id in self.delivering:
            return
        self.delivering.add(job.id)
        try:
            state = await self.bot.deliveries.state(job.id)
            if state is None or state.delivery is not Delivery.PENDING:
                return
            if job.status is Status.COMPLETED:
                await self._post_result(live, job)
            else:
                await self._post_failure(live, job, reason or job.error or "", cancelled=job.status is Status.CANCELLED)
        except Exception as error:  # a bug or a broken file: counted, so it is retried a bounded number of times
            log.exception("could not post job %s", job.id)
            await self._record_failure(job, PostFailure(None, 0, f"{type(error).__name__}: {error}"))
        finally:
            self.delivering.discard(job.id)
            live = live or self.live.get(job.origin.interaction_id or 0)
            if live is not None and job.id in live.pending:
                self._finished(live, job.id)

    async def _delivered(self, job: Job) -> None:
        """Record the accepted post (right after Discord accepted it)."""
        if not await self.bot.deliveries.mark_delivered(job.id):
            log.warning("job %s was posted but its delivery was already recorded", job.id)

    async def _record_failure(self, job: Job, failure: PostFailure) -> None:
        try:
            await self.bot.deliveries.record_failure(job.id, failure)
        except Exception:
            log.exception("could not record the failed post of job %s; the retry sweep tries again", job.id)

    async def _post_to_channel(self, job: Job, content: str, extra: dict[str, Any]) -> None:
        """A normal message in the job's channel; on failure the job stays pending or is given up."""
        if job.origin.channel_id is None:
            await self.bot.deliveries.abandon(job.id, "the job has no channel to post to")
            return
        channel: discord.abc.Messageable | None = None
        try:
            channel = await self._origin_channel(job.origin)
            if channel is None:
                await self.bot.deliveries.abandon(job.id, f"channel {job.origin.channel_id} cannot take messages")
                return
            # The nonce lets Discord drop a repeat of this post (enforce_nonce) if one is ever sent.
            await channel.send(content, nonce=f"ib-job-{job.id}", **extra)
        except discord.HTTPException as error:  # a permission refusal names the channel and what the bot lacks
            text = describe_post_refusal(error, channel, job.origin.channel_id)
            await self._record_failure(job, PostFailure(error.status, error.code, text))
            return
        except NETWORK_ERRORS as error:
            await self._record_failure(job, PostFailure(None, 0, f"{type(error).__name__}: {error}"))
            return
        await self._delivered(job)

    # --- what is posted --------------------------------------------------------------------------------------

    async def _result_post(self, job: Job) -> tuple[str, dict[str, Any]]:
        """The grid post's content and its file, embed, mentions and buttons (fresh for every attempt)."""
        if job.grid_path is None:
            raise ImagineError(f"job {job.id} completed without a grid")
        file = await asyncio.to_thread(result_file, Path(job.grid_path), f"imagine_{job.id}")
        extra: dict[str, Any] = {
            "file": file,
            "embed": result_embed(job, file.filename or "image.png"),
            "allowed_mentions": discord.AllowedMentions(
                users=[discord.Object(job.user_id)], everyone=False, roles=False
            ),
        }
        if job.kind is Kind.DESCRIBE:  # its suggestions and their buttons (cogs/describe.py)
            return await describe_result(self.bot, job, extra)
        view = result_view(job)
        if view is not None:
            extra["view"] = view
        if job.safety.flagged:  # behind a spoiler, with the reason
            return hide_flagged(job, result_text(job, f"<@{job.user_id}>"), extra), extra
        return result_text(job, f"<@{job.user_id}>"), extra

    async def _post_result(self, live: LiveRequest | None, job: Job) -> None:
        try:
            content, extra = await self._result_post(job)
        except (FileNotFoundError, ImagineError) as error:  # no grid on disk, or too large to post: for good
            await self.bot.deliveries.abandon(job.id, f"the result cannot be posted: {error}")
            return
        if live is not None and live.token_alive:
            async with live.lock:
                try:
                    await live.interaction.followup.send(content, ephemeral=False, **extra)
                except (discord.HTTPException, *NETWORK_ERRORS) as error:
                    log.warning("the follow-up of job %s was refused (%s); posting to the channel", job.id, error)
                else:
                    await self._delivered(job)
                    message = live.messages.get(job.id)
                    if message is not None:
                        await _delete_quietly(message)
                    return
            content, extra = await self._result_post(job)  # the refused attempt used up the file
        await self._post_to_channel(job, content, extra)

    async def _post_failure(self, live: LiveRequest | None, job: Job, reason: str, *, cancelled: bool) -> None:
        text = failure_text(job, reason, cancelled=cancelled)
        message = live.messages.get(job.id) if live is not None else None
        if live is not None and live.token_alive and message is not None:
            async with live.lock:
                try:
                    await message.edit(content=text, attachments=[])
                except (discord.HTTPException, *NETWORK_ERRORS) as error:
                    log.warning("the notice of job %s was refused (%s); posting to the channel", job.id, error)
                else:
                    await self._delivered(job)
                    return
        mentions = discord.AllowedMentions(users=[discord.Object(job.user_id)], everyone=False, roles=False)
        await self._post_to_channel(job, f"<@{job.user_id}> {text}"[:MAX_CONTENT], {"allowed_mentions": mentions})

    async def _origin_channel(self, origin: Origin) -> discord.abc.Messageable | None:
        """The job's channel (fetched when not cached); raises discord.HTTPException when Discord refuses."""
        if origin.channel_id is None:
            return None
        channel = self.bot.get_channel(origin.channel_id)
        if channel is None:
            channel = await self.bot.fetch_channel(origin.channel_id)
        return channel if isinstance(channel, discord.abc.Messageable) else None


async def _delete_quietly(message: discord.WebhookMessage) -> None:
    try:
        await message.delete()
    except discord.HTTPException as error:
        log.debug("could not delete message %s: %s", message.id, error)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(Presenter(bot))
