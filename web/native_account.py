"""The native API's account routes: who you are (/info), your defaults (/settings), the models and samplers you may
choose, how busy the queue is (/queue), and the web UI's sign-in cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from bot.core import Actor, ImagineService
from web.auth import COOKIE, unauthorized
from web.job_views import model_out, places_out, preferences_out, queue_out
from web.native_common import Member, errors, service_of, settings_of
from web.schemas import MeOut, ModelsOut, PreferencesIn, PreferencesOut, QueueOut, SamplersOut, SessionIn

router = APIRouter(tags=["account"])

COOKIE_MAX_AGE_S = 30 * 24 * 3600
"""How long a browser keeps the sign-in (the key stays valid until revoked, whatever the cookie's age)."""


async def me_out(service: ImagineService, actor: Actor) -> MeOut:
    overview = await service.member.overview(actor)
    return MeOut(
        user_id=actor.user_id,
        balance=overview.balance,
        tier=overview.tier,
        banned=overview.banned,
        preferences=preferences_out(overview.preferences),
        jobs=places_out(overview),
        moderator=service.admin.may_moderate(actor),
    )


@router.get("/me", response_model=MeOut, summary="Your balance, tier, defaults and unfinished jobs", responses=errors())
async def get_me(request: Request, actor: Member) -> MeOut:
    return await me_out(service_of(request), actor)


@router.patch(
    "/me/preferences",
    response_model=PreferencesOut,
    summary="Change your defaults (as /settings)",
    responses=errors(400),
)
async def update_preferences(body: PreferencesIn, request: Request, actor: Member) -> PreferencesOut:
    """Only the fields sent change; null sets one back to the server's default. Each value obeys its flag's rule."""
    changes = body.model_dump(exclude_unset=True)
    preferences = await service_of(request).member.update_preferences(actor, **changes)
    return preferences_out(preferences)


@router.get("/models", response_model=ModelsOut, summary="The models you may choose", responses=errors())
async def list_models(request: Request, actor: Member) -> ModelsOut:
    """Their names, and each one's defaults and limits: its steps, its guidance (a CFG scale, FLUX.1-dev's distilled
    guidance, or none), whether ``--no`` works, and the samplers it takes."""
    member = service_of(request).member
    choices = sorted(member.model_choices(actor), key=lambda choice: choice.name)
    default = settings_of(request).model
    preferred = (await member.preferences(actor)).model
    names = [choice.name for choice in choices]
    return ModelsOut(
        models=names,
        default=default,
        yours=preferred if preferred in names else default,
        details=[model_out(choice) for choice in choices],
    )


@router.get("/samplers", response_model=SamplersOut, summary="The samplers --sampler takes", responses=errors())
async def list_samplers(request: Request, actor: Member) -> SamplersOut:
    return SamplersOut(samplers=list(service_of(request).member.samplers()))


@router.get("/queue", response_model=QueueOut, summary="How busy the queue is (as /queue)", responses=errors())
async def get_queue(request: Request, actor: Member) -> QueueOut:
    return queue_out(await service_of(request).member.queue(actor))


@router.post(
    "/session",
    response_model=MeOut,
    tags=["web UI"],
    summary="Sign the web UI in: the key becomes an HttpOnly cookie",
    responses=errors(),
)
async def sign_in(body: SessionIn, request: Request, response: Response) -> MeOut:
    """Sets the ``imaginebot_key`` cookie (HttpOnly, SameSite=Strict, Secure over https). With it, a request
    other than GET must also send the header ``X-Imaginebot-Request: 1``."""
    service = service_of(request)
    identity = await service.keys.authenticate(body.key.strip())
    if identity is None:
        raise unauthorized("this API key is not valid (it may have been revoked); make a new one with /apikey")
    response.set_cookie(
        COOKIE,
        body.key.strip(),
        max_age=COOKIE_MAX_AGE_S,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return await me_out(service, identity.actor())


@router.delete(
    "/session",
    status_code=204,
    response_class=Response,
    tags=["web UI"],
    summary="Sign the web UI out (clears the cookie)",
)
async def sign_out(request: Request) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict")
    return response
