"""Presenting jobs in Discord: the queued message, live progress with a preview, the result post, failures.

Every command and button that queues work goes through :meth:`Presenter.submit`. While the interaction token
lives (15 minutes) results are followups; later ones (relax jobs) are normal channel messages that mention the
member. Progress edits are throttled to one every 2 s per message.
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

import discord
from discord.ext import commands

from bot.actors import Actor
from bot.errors import ImagineError
from bot.events import EventKind, JobEvent
from bot.jobs import Job, Kind, Origin
from bot.preparation import Prepared
from bot.service import Admitted
from bot.uploads import StagedUpload
from cogs.results import result_view

if TYPE_CHECKING:
    from bot.discord_bot import ImagineBot
    from bot.uploads import StagedUpload

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 14 * 60
"""An interaction token lives 15 minutes; past this age results go to the channel as a normal message."""
PROGRESS_EDIT_INTERVAL_S = 2.0
MAX_CONTENT = 2000
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""Discord's default upload limit for bots, per message."""


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


def actor_of(interaction: discord.Interaction[Any]) -> Actor:
    """The member behind an interaction, in its server and channel (no server: a direct message)."""
    return Actor.discord(
        interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        interaction_id=interaction.id,
    )


def shown_prompt(job: Job, limit: int = 900) -> str:
    """The prompt as members see it in posts: markdown and mentions escaped, cut to ``limit`` characters."""
    text = discord.utils.escape_mentions(discord.utils.escape_markdown(job.prompt))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def kind_label(job: Job) -> str:
    labels = {
        Kind.UPSCALE: f"Upscale of image {(job.parent_index or 0) + 1}",
        Kind.VARIATION: f"Variation of image {(job.parent_index or 0) + 1}",
        Kind.ZOOM: f"Zoom out {job.params.zoom:g}x",
        Kind.PAN: f"Pan {job.params.pan}",
        Kind.REROLL: "Reroll",
        Kind.IMG2IMG: "From your image",
        Kind.INPAINT: "Edit",
        Kind.SWEEP: "Sweep",
    }
    return labels.get(job.kind, "")


def queued_text(job: Job, position: int, eta_s: float | None = None, admitted: Admitted | None = None) -> str:
    label = kind_label(job)
    text = f"⏳ **{shown_prompt(job)}**{f' ({label})' if label else ''} — queued, position {position} in the "
    text += f"{job.lane.value} lane"
    if eta_s is not None:
        text += f", ETA ~{format_duration(eta_s)}"
    if admitted is not None:
        count = len(admitted.jobs)
        jobs = f" for {count} jobs" if count > 1 else ""
        text += f" · cost {admitted.cost} credits{jobs} (balance {admitted.balance})"
    return text[:MAX_CONTENT]


def running_text(job: Job, step: int, total: int) -> str:
    percent = int(100 * step / total) if total else 0
    return f"🎨 **{shown_prompt(job)}** — rendering, {percent}%"


def result_text(job: Job, mention: str) -> str:
    label = kind_label(job)
    text = f"**{shown_prompt(job)}**{f' - {label}' if label else ''} - {mention} ({job.lane.value})"
    return text[:MAX_CONTENT]


def result_embed(job: Job, filename: str) -> discord.Embed:
    """The parameters, compact: what someone needs to redo or tweak the image."""
    params = job.params
    embed = discord.Embed(colour=discord.Colour.blurple())
    details = [
        f"**Seed** {params.seed}",
        f"**Size** {params.width}×{params.height}",
        f"**Steps** {params.steps}",
        f"**CFG** {params.cfg:g}",
        f"**Sampler** {params.sampler}",
        f"**Model** {params.model}",
    ]
    if params.negative:
        details.append(f"**No** {discord.utils.escape_markdown(params.negative)[:200]}")
    if params.init_image:
        details.append(f"**Strength** {params.strength:g}")
    embed.description = " · ".join(details)[:4096]
    embed.set_image(url=f"attachment://{filename}")
    embed.set_footer(text=f"job {job.id}" + (f" · {job.cost} credits" if job.cost else ""))
    return embed


def result_file(path: Path, name: str, limit: int = MAX_UPLOAD_BYTES) -> discord.File:
    """The result as one attachment under Discord's limit: re-encoded as JPEG when the PNG is too large."""
    data = path.read_bytes()
    if len(data) <= limit:
        return discord.File(io.BytesIO(data), filename=f"{name}.png")
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    for quality in (92, 85, 75, 60):
        buffer = io.BytesIO()
        rgb.save(buffer, format="JPEG", quality=quality, optimize=True)
        if buffer.tell() <= limit:
            return discord.File(io.BytesIO(buffer.getvalue()), filename=f"{name}.jpg")
        rgb = rgb.resize((rgb.width * 3 // 4, rgb.height * 3 // 4))
    raise ImagineError("the result is too large to post even as a JPEG")


class Presenter(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        self.live: dict[int, LiveRequest] = {}

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
                admitted = await self.bot.service.enqueue_many(actor_of(interaction), prepared, uploads=uploads)
            except ImagineError as error:
                self.live.pop(interaction.id, None)
                await interaction.followup.send(f"⚠️ {error}"[:MAX_CONTENT], ephemeral=True)
                return
            for submitted in admitted.jobs:
                live.pending.add(submitted.job.id)
                live.messages[submitted.job.id] = await interaction.followup.send(
                    queued_text(submitted.job, submitted.position, submitted.eta_s, admitted), wait=True, ephemeral=True
                )

    @commands.Cog.listener()
    async def on_job_event(self, event: JobEvent) -> None:
        job = event.job
        live = self.live.get(job.origin.interaction_id or 0)
        if event.kind is EventKind.PROGRESS:
            await self._show_progress(live, event)
        elif event.kind is EventKind.COMPLETED:
            await self._post_result(live, job)
        elif event.kind in (EventKind.FAILED, EventKind.CANCELLED):
            await self._post_failure(live, job, event.message, cancelled=event.kind is EventKind.CANCELLED)

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
        attachments = [discord.File(io.BytesIO(event.preview_png), "preview.png")] if event.preview_png else []
        async with live.lock:
            try:
                if attachments:
                    await message.edit(content=content, attachments=attachments)
                else:
                    await message.edit(content=content)
            except discord.HTTPException as error:
                log.debug("could not edit progress of job %s: %s", event.job.id, error)

    async def _post_result(self, live: LiveRequest | None, job: Job) -> None:
        if job.grid_path is None:
            log.error("job %s completed without a grid", job.id)
            return
        mention = f"<@{job.user_id}>"
        mentions = discord.AllowedMentions(users=[discord.Object(job.user_id)], everyone=False, roles=False)
        file = await asyncio.to_thread(result_file, Path(job.grid_path), f"imagine_{job.id}")
        content = result_text(job, mention)
        view = result_view(job)
        extra: dict[str, Any] = {"embed": result_embed(job, file.filename or "image.png")}
        if view is not None:
            extra["view"] = view
        if live is not None and live.token_alive:
            async with live.lock:
                await live.interaction.followup.send(
                    content, file=file, allowed_mentions=mentions, ephemeral=False, **extra
                )
                message = live.messages.get(job.id)
                if message is not None:
                    await _delete_quietly(message)
                self._finished(live, job.id)
            return
        channel = await self._origin_channel(job.origin)
        if channel is None:
            log.warning("job %s finished but its channel %s is gone", job.id, job.origin.channel_id)
            return
        await channel.send(content, file=file, allowed_mentions=mentions, **extra)
        if live is not None:
            self._finished(live, job.id)

    async def _post_failure(self, live: LiveRequest | None, job: Job, reason: str, *, cancelled: bool) -> None:
        what = "cancelled" if cancelled else f"failed: {reason}"
        refund = " Your credits were refunded." if job.cost else ""
        text = f"❌ **{shown_prompt(job)}** — {what}.{refund}"[:MAX_CONTENT]
        message = live.messages.get(job.id) if live is not None else None
        if live is not None and live.token_alive and message is not None:
            async with live.lock:
                await message.edit(content=text, attachments=[])
                self._finished(live, job.id)
            return
        channel = await self._origin_channel(job.origin)
        if channel is not None:
            await channel.send(
                f"<@{job.user_id}> {text}"[:MAX_CONTENT],
                allowed_mentions=discord.AllowedMentions(users=[discord.Object(job.user_id)]),
            )
        if live is not None:
            self._finished(live, job.id)

    async def _origin_channel(self, origin: Origin) -> discord.abc.Messageable | None:
        if origin.channel_id is None:
            return None
        channel = self.bot.get_channel(origin.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(origin.channel_id)
            except discord.HTTPException:
                return None
        return channel if isinstance(channel, discord.abc.Messageable) else None


async def _delete_quietly(message: discord.WebhookMessage) -> None:
    try:
        await message.delete()
    except discord.HTTPException as error:
        log.debug("could not delete message %s: %s", message.id, error)


def presenter_of(bot: commands.Bot) -> Presenter:
    cog = bot.get_cog("Presenter")
    if not isinstance(cog, Presenter):
        raise RuntimeError("the presenter cog is not loaded")
    return cog


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(Presenter(bot))
