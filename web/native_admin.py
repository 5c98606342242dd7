"""The native API's moderation routes, mirroring /admin: the queue, cancelling any job of the server, credits,
tiers, bans, the blocklist, pausing, the day's stats with the engines, and a member's account.

Each goes through :attr:`bot.core.ImagineService.admin`, which decides who may moderate: a key the owner made with
``moderator`` acts as a moderator of its server; any other key gets 403 ``not_moderator``.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam

from web.job_views import account_out, admin_job_out, queue_out
from web.native_common import Member, errors, service_of
from web.schemas import (
    MAX_ID,
    AccountOut,
    AdminJobOut,
    AdminQueueOut,
    BalanceOut,
    BanOut,
    BlockIn,
    BlocklistOut,
    CreditsIn,
    EngineOut,
    MemberIn,
    MemberOut,
    QueueOut,
    ReasonIn,
    StatsOut,
    TierIn,
)

router = APIRouter(prefix="/admin", tags=["moderation"])

ADMIN_ERRORS = errors(400, 403)
"""Every moderation route may answer 403 ``not_moderator``, and 400 when the core refuses the change."""


@router.get("/queue", response_model=AdminQueueOut, summary="Every queued and running job", responses=ADMIN_ERRORS)
async def admin_queue(request: Request, actor: Member) -> AdminQueueOut:
    """The queue's summary (every server: the GPU is shared), your server's running jobs and its oldest waiting
    ones (their ``position`` is 0 here: the list is in order of arrival)."""
    listing = await service_of(request).admin.queue(actor)
    return AdminQueueOut(
        summary=queue_out(listing.summary),
        running=[admin_job_out(job) for job in listing.running],
        queued=[admin_job_out(job) for job in listing.queued],
    )


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=AdminJobOut,
    summary="Cancel any job of your server (refunded)",
    responses=errors(400, 403, 404),
)
async def admin_cancel(
    job_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], request: Request, actor: Member, body: ReasonIn | None = None
) -> AdminJobOut:
    cancelled = await service_of(request).admin.cancel(actor, job_id, body.reason if body else "")
    return admin_job_out(cancelled)


@router.post("/credits", response_model=BalanceOut, summary="Give, take or set credits", responses=ADMIN_ERRORS)
async def admin_credits(body: CreditsIn, request: Request, actor: Member) -> BalanceOut:
    balance = await service_of(request).admin.change_credits(actor, body.change, body.user_id, body.amount, body.reason)
    return BalanceOut(user_id=body.user_id, balance=balance)


@router.post("/tier", response_model=MemberOut, summary="Move a member to a tier", responses=ADMIN_ERRORS)
async def admin_tier(body: TierIn, request: Request, actor: Member) -> MemberOut:
    member = await service_of(request).admin.set_tier(actor, body.user_id, body.tier, body.reason)
    return MemberOut(
        user_id=member.user_id,
        tier=member.tier,
        balance=member.balance,
        banned=member.banned,
        default_lane=member.default_lane,
    )


@router.post("/ban", response_model=BanOut, summary="Stop a member from using the bot", responses=ADMIN_ERRORS)
async def admin_ban(body: MemberIn, request: Request, actor: Member) -> BanOut:
    await service_of(request).admin.set_banned(actor, body.user_id, True, body.reason)
    return BanOut(user_id=body.user_id, banned=True)


@router.post("/unban", response_model=BanOut, summary="Let a banned member use the bot again", responses=ADMIN_ERRORS)
async def admin_unban(body: MemberIn, request: Request, actor: Member) -> BanOut:
    await service_of(request).admin.set_banned(actor, body.user_id, False, body.reason)
    return BanOut(user_id=body.user_id, banned=False)


@router.get("/blocklist", response_model=BlocklistOut, summary="Your server's blocked words", responses=ADMIN_ERRORS)
async def admin_blocklist(request: Request, actor: Member) -> BlocklistOut:
    return BlocklistOut(words=await service_of(request).admin.blocked(actor), changed=[])


@router.post("/blocklist", response_model=BlocklistOut, summary="Block words or phrases", responses=ADMIN_ERRORS)
async def admin_block(body: BlockIn, request: Request, actor: Member) -> BlocklistOut:
    admin = service_of(request).admin
    added = await admin.block(actor, body.words, body.reason)
    return BlocklistOut(words=await admin.blocked(actor), changed=added)


@router.delete("/blocklist", response_model=BlocklistOut, summary="Unblock words or phrases", responses=ADMIN_ERRORS)
async def admin_unblock(
    request: Request,
    actor: Member,
    word: Annotated[list[str], Query(min_length=1, max_length=100, description="a word or phrase; repeat it")],
    reason: Annotated[str, Query(max_length=500, description="kept in the audit log")] = "",
) -> BlocklistOut:
    admin = service_of(request).admin
    removed = await admin.unblock(actor, word, reason)
    return BlocklistOut(words=await admin.blocked(actor), changed=removed)


@router.post(
    "/pause", response_model=QueueOut, summary="Start no more jobs (queued ones are kept)", responses=ADMIN_ERRORS
)
async def admin_pause(request: Request, actor: Member, body: ReasonIn | None = None) -> QueueOut:
    service = service_of(request)
    await service.admin.pause(actor, body.reason if body else "")
    return queue_out(await service.member.queue(actor))


@router.post("/resume", response_model=QueueOut, summary="Start jobs again", responses=ADMIN_ERRORS)
async def admin_resume(request: Request, actor: Member, body: ReasonIn | None = None) -> QueueOut:
    service = service_of(request)
    await service.admin.resume(actor, body.reason if body else "")
    return queue_out(await service.member.queue(actor))


@router.get(
    "/stats",
    response_model=StatsOut,
    summary="Jobs, members and credits of the last 24 hours; the engines",
    responses=ADMIN_ERRORS,
)
async def admin_stats(request: Request, actor: Member) -> StatsOut:
    """The day's jobs, members and credits, and each engine now (device, state, models, busy, restarts)."""
    service = service_of(request)
    report = await service.admin.stats(actor)
    engines = [
        EngineOut(
            name=engine.name,
            device=engine.device,
            state=engine.state,  # type: ignore[arg-type]
            model=engine.model,
            loaded_models=list(engine.loaded_models),
            busy=engine.busy,
            restarts=engine.restarts,
        )
        for engine in await service.admin.engines(actor)
    ]
    return StatsOut(**dataclasses.asdict(report), engines=engines)


@router.get(
    "/accounts/{user_id}",
    response_model=AccountOut,
    summary="A member's balance, tier, ban and newest ledger rows",
    responses=ADMIN_ERRORS,
)
async def admin_account(
    user_id: Annotated[int, PathParam(ge=-MAX_ID, le=MAX_ID)],
    request: Request,
    actor: Member,
    limit: Annotated[int, Query(ge=1, le=200, description="ledger rows")] = 20,
) -> AccountOut:
    return account_out(user_id, await service_of(request).admin.account(actor, user_id, limit))
