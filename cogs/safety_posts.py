"""How a result the image safety check flagged is posted in Discord: behind a spoiler, with the reason.

The grid goes up as a spoiler attachment (``SPOILER_`` file name), and the embed does not show it: Discord shows an
embed's image unblurred. A withheld result is never posted; its failure notice says why (see
:mod:`bot.image_safety`).
"""

from __future__ import annotations

from typing import Any

import discord

from bot.core import Job, Kind
from cogs.posts import MAX_CONTENT


def flag_notice(job: Job) -> str:
    """The line under a flagged result: which images, why, and that they are behind a spoiler."""
    count = 0 if job.kind is Kind.SWEEP else job.params.images  # a sweep's sheet holds many images of one each
    safety = job.safety
    return f"⚠️ Flagged by the image safety check: {safety.images_named(count)} ({safety.reason}). Shown as a spoiler."


def hide_flagged(job: Job, content: str, extra: dict[str, Any]) -> str:
    """Put a flagged result's file behind a spoiler and take its image out of the embed (``extra`` is the post's
    keyword arguments, changed in place); the content with the notice."""
    file = extra.get("file")
    if isinstance(file, discord.File):
        file.spoiler = True
    embed = extra.get("embed")
    if isinstance(embed, discord.Embed):
        embed.set_image(url=None)
    notice = flag_notice(job)
    return f"{content[: MAX_CONTENT - len(notice) - 1]}\n{notice}"
