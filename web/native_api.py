"""The native REST API (``/api/v1``): the whole of imaginebot over HTTP, as the key's member.

Jobs (:mod:`web.native_jobs`), the account and the web UI's sign-in (:mod:`web.native_account`) and moderation
(:mod:`web.native_admin`). Every route goes through :class:`bot.core.ImagineService` with the web actor of the
request's key, so the same credits, lanes, limits, bans and blocklist apply as in Discord, and every refusal is
``{"error": {"code", "message"}}`` with the text Discord shows.
"""

from __future__ import annotations

from fastapi import APIRouter

from web import native_account, native_admin, native_blend, native_describe, native_jobs

router = APIRouter()
router.include_router(native_jobs.router)
router.include_router(native_account.router)
router.include_router(native_admin.router)
router.include_router(native_blend.router)
router.include_router(native_describe.router)
