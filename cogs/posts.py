"""What the bot posts about a job: the queued line, progress, the result with its parameters, failure notices."""

from __future__ import annotations

import io
from pathlib import Path

import discord

from bot.core import COMPACT_ABOVE_BYTES, Admitted, ImagineError, Job, Kind

MAX_CONTENT = 2000
MAX_UPLOAD_BYTES = COMPACT_ABOVE_BYTES
"""Discord's default upload limit for bots, per message: the size above which the engine writes a compact copy."""


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
        Kind.CONTROL: f"ControlNet {job.params.control_mode}",
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


def failure_text(job: Job, reason: str, *, cancelled: bool) -> str:
    what = "cancelled" if cancelled else f"failed: {reason}"
    refund = " Your credits were refunded." if job.cost else ""
    return f"❌ **{shown_prompt(job)}** — {what}.{refund}"[:MAX_CONTENT]


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
    if params.negative_prompt:
        details.append(f"**No** {discord.utils.escape_markdown(params.negative_prompt)[:200]}")
    if params.init_image:
        details.append(f"**Strength** {params.strength:g}")
    if params.control_image:
        details.append(f"**ControlNet** {params.controlnet} ({params.control_mode}, --cw {params.control_weight:g})")
    embed.description = " · ".join(details)[:4096]
    embed.set_image(url=f"attachment://{filename}")
    embed.set_footer(text=f"job {job.id}" + (f" · {job.cost} credits" if job.cost else ""))
    return embed


def result_file(path: Path, name: str, limit: int = MAX_UPLOAD_BYTES) -> discord.File:
    """The result as one attachment under Discord's limit: the file the engine wrote (a grid JPEG, a sweep's PNG), or
    the compact JPEG it wrote beside a sheet that is too large (the bot never re-encodes an image)."""
    if path.stat().st_size <= limit:
        return discord.File(io.BytesIO(path.read_bytes()), filename=f"{name}{path.suffix}")
    compact = path.with_suffix(".jpg")
    if compact.is_file() and compact.stat().st_size <= limit:
        return discord.File(io.BytesIO(compact.read_bytes()), filename=f"{name}.jpg")
    raise ImagineError("the result is too large to post, and no smaller copy of it was written")
