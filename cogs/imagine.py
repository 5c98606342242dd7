"""/imagine: acknowledge at once, show the queued job, and post the grid with its buttons when it is done."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import ImagineError
from bot.events import EventKind, JobEvent
from bot.jobs import Job, Origin
from bot.service import Admitted
from cogs.results import result_view
from engine.samplers import SAMPLERS

if TYPE_CHECKING:
    from bot.discord_bot import ImagineBot

log = logging.getLogger(__name__)

# An interaction token lives 15 minutes; past this age results go to the channel as a normal message.
TOKEN_LIFETIME_S = 14 * 60
PROGRESS_EDIT_INTERVAL_S = 2.0
MAX_CONTENT = 2000


@dataclass
class LiveRequest:
    """An /imagine whose interaction token can still post and edit."""

    interaction: discord.Interaction[Any]
    created: float = field(default_factory=time.monotonic)
    messages: dict[int, discord.WebhookMessage] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    last_edit: dict[int, float] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def token_alive(self) -> bool:
        return time.monotonic() - self.created < TOKEN_LIFETIME_S


def shown_prompt(job: Job, limit: int = 900) -> str:
    """The prompt as members see it in posts: markdown and mentions escaped, cut to ``limit`` characters."""
    text = discord.utils.escape_mentions(discord.utils.escape_markdown(job.prompt))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def queued_text(job: Job, position: int, eta_s: float | None = None, admitted: Admitted | None = None) -> str:
    text = f"⏳ **{shown_prompt(job)}** — queued, position {position} in the {job.lane.value} lane"
    if eta_s is not None:
        text += f", ETA ~{format_duration(eta_s)}"
    if admitted is not None:
        count = len(admitted.jobs)
        jobs = f" for {count} jobs" if count > 1 else ""
        text += f" · cost {admitted.cost} credits{jobs} (balance {admitted.balance})"
    return text


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def running_text(job: Job, step: int, total: int) -> str:
    percent = int(100 * step / total) if total else 0
    return f"🎨 **{shown_prompt(job)}** — rendering, {percent}%"


def result_text(job: Job, mention: str) -> str:
    params = job.params
    text = (
        f"**{shown_prompt(job)}** - {mention} ({job.lane.value}, seed {params.seed}, "
        f"{params.width}x{params.height}, {params.steps} steps)"
    )
    return text[:MAX_CONTENT]


def with_option_flags(prompt: str, **options: str | None) -> str:
    """Slash-command options appended as the flags they stand for (the parser then checks them)."""
    flags = " ".join(f"--{name} {value}" for name, value in options.items() if value)
    return f"{prompt} {flags}" if flags else prompt


def choices_matching(names: list[str], current: str, limit: int = 25) -> list[app_commands.Choice[str]]:
    """Autocomplete: names containing what was typed, those starting with it first, at most 25."""
    typed = current.strip().lower()
    matching = [name for name in names if typed in name.lower()]
    matching.sort(key=lambda name: (not name.lower().startswith(typed), name))
    return [app_commands.Choice(name=name, value=name) for name in matching[:limit]]


class ImagineCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        self.live: dict[int, LiveRequest] = {}

    @app_commands.command(name="imagine", description="Create four images from a prompt")
    @app_commands.describe(
        prompt="What to draw, then flags: --ar 3:2 --seed 7 --no text --steps 30 --cfg 7",
        model="Model to use (same as --model)",
        sampler="Sampler to use (same as --sampler)",
    )
    async def imagine(
        self, interaction: discord.Interaction[Any], prompt: str, model: str | None = None, sampler: str | None = None
    ) -> None:
        prompt = with_option_flags(prompt, model=model, sampler=sampler)
        service = self.bot.service
        try:
            await service.moderation.check_channel(interaction.guild_id, interaction.channel_id)
            preferences = await service.preferences.get(interaction.user.id)
            prepared = service.prepare_imagine(prompt, preferences)
            for item in prepared:
                await service.moderation.check_prompt(interaction.guild_id, item.params.prompt)
        except ImagineError as error:
            await interaction.response.send_message(f"⚠️ {error}", ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        live = self.live[interaction.id] = LiveRequest(interaction)
        origin = Origin(
            source="discord",
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            interaction_id=interaction.id,
        )
        async with live.lock:
            try:
                admitted = await service.enqueue_many(interaction.user.id, prepared, origin=origin)
            except ImagineError as error:
                self.live.pop(interaction.id, None)
                await _answer_privately_after_defer(interaction, f"⚠️ {error}")
                return
            for submitted in admitted.jobs:
                live.pending.add(submitted.job.id)
                live.messages[submitted.job.id] = await interaction.followup.send(
                    queued_text(submitted.job, submitted.position, submitted.eta_s, admitted), wait=True
                )

    @imagine.autocomplete("model")
    async def _complete_model(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return choices_matching(sorted(self.bot.settings.registry), current)

    @imagine.autocomplete("sampler")
    async def _complete_sampler(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return choices_matching(list(SAMPLERS), current)

    @commands.Cog.listener()
    async def on_job_event(self, event: JobEvent) -> None:
        job = event.job
        live = self.live.get(job.origin.interaction_id or 0)
        if event.kind is EventKind.PROGRESS:
            await self._show_progress(live, event)
        elif event.kind is EventKind.COMPLETED:
            await self._post_result(live, job)
        elif event.kind is EventKind.FAILED:
            await self._post_failure(live, job, event.message)

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
        async with live.lock:
            try:
                await message.edit(content=running_text(event.job, event.step, event.total))
            except discord.HTTPException as error:
                log.debug("could not edit progress of job %s: %s", event.job.id, error)

    async def _post_result(self, live: LiveRequest | None, job: Job) -> None:
        if job.grid_path is None:
            log.error("job %s completed without a grid", job.id)
            return
        images = len(job.params.seeds)
        mention = f"<@{job.user_id}>"
        mentions = discord.AllowedMentions(users=[discord.Object(job.user_id)], everyone=False, roles=False)
        file = discord.File(Path(job.grid_path), filename=f"imagine_{job.id}.png")
        content = result_text(job, mention)
        view = result_view(job.id, images)
        if live is not None and live.token_alive:
            async with live.lock:
                await live.interaction.followup.send(content, file=file, view=view, allowed_mentions=mentions)
                message = live.messages.get(job.id)
                if message is not None:
                    await _delete_quietly(message)
                self._finished(live, job.id)
            return
        channel = await self._origin_channel(job.origin)
        if channel is None:
            log.warning("job %s finished but its channel %s is gone", job.id, job.origin.channel_id)
            return
        await channel.send(content, file=file, view=view, allowed_mentions=mentions)
        if live is not None:
            self._finished(live, job.id)

    async def _post_failure(self, live: LiveRequest | None, job: Job, message_text: str) -> None:
        text = f"❌ **{shown_prompt(job)}** — failed: {message_text}"[:MAX_CONTENT]
        message = live.messages.get(job.id) if live is not None else None
        if live is not None and live.token_alive and message is not None:
            async with live.lock:
                await message.edit(content=text)
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


async def _answer_privately_after_defer(interaction: discord.Interaction[Any], text: str) -> None:
    """After a public defer, an error should not be public: drop the "thinking" message, answer ephemerally."""
    try:
        await interaction.delete_original_response()
    except discord.HTTPException as error:
        log.debug("could not delete the deferred response: %s", error)
    await interaction.followup.send(text[:MAX_CONTENT], ephemeral=True)


async def _delete_quietly(message: discord.WebhookMessage) -> None:
    try:
        await message.delete()
    except discord.HTTPException as error:
        log.debug("could not delete message %s: %s", message.id, error)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(ImagineCog(bot))
