"""The lists and settings A1111 clients read at start-up: options (the member's model, which ``POST /options``
switches), checkpoints, samplers, schedulers, LoRAs, command-line flags, and honest empty lists for what this
server does not have (VAEs, upscalers, styles, face restorers, hypernetworks, embeddings)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from bot.core import Actor
from web.a1111_common import ActorDep, refusal
from web.a1111_mapping import resolve_checkpoint, sd_model_item
from web.a1111_requests import A1111RequestError
from web.a1111_samplers import sampler_items, scheduler_items
from web.native_common import service_of, settings_of


class Options(BaseModel):
    """A1111's options that clients read; the model is the member's (their /settings, else the server's)."""

    model_config = ConfigDict(extra="allow")

    sd_model_checkpoint: str
    sd_checkpoint_hash: str | None = None
    sd_vae: str = "Automatic"
    CLIP_stop_at_last_layers: int = 1
    samples_format: str = "png"
    show_progress_every_n_steps: int = 0
    live_previews_enable: bool = False
    live_previews_image_format: str = "jpeg"


class SdModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float | None = None
    need_inner_model: bool | None = None


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str | None = Field(default=None, description="not shown (a path on the server)")
    metadata: dict[str, Any] = Field(default_factory=dict)


class Embeddings(BaseModel):
    loaded: dict[str, Any] = Field(default_factory=dict)
    skipped: dict[str, Any] = Field(default_factory=dict)


class CmdFlags(BaseModel):
    model_config = ConfigDict(extra="allow")

    api: bool = True
    listen: bool
    port: int


class NamedItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


router = APIRouter()


async def _options(request: Request, actor: Actor) -> Options:
    settings = settings_of(request)
    preferences = await service_of(request).member.preferences(actor)
    return Options(
        sd_model_checkpoint=preferences.model or settings.model,
        show_progress_every_n_steps=settings.preview_every,
        live_previews_enable=settings.preview_every > 0,
    )


@router.get("/options", response_model=Options)
async def get_options(request: Request, actor: ActorDep) -> Options:
    """The options A1111 clients read; ``sd_model_checkpoint`` is the model the member's jobs use."""
    return await _options(request, actor)


@router.post("/options", response_model=Options)
async def set_options(request: Request, actor: ActorDep, body: dict[str, Any]) -> Options:
    """``sd_model_checkpoint`` sets the member's model (their /settings); other options are accepted and ignored
    (they are the owner's to set). Answers the options as they are now."""
    title = body.get("sd_model_checkpoint")
    if title is not None:
        service = service_of(request)
        try:
            name = resolve_checkpoint(str(title), service.member.models(actor))
        except A1111RequestError as error:
            raise refusal(error) from None
        await service.member.update_preferences(actor, model=name)
    return await _options(request, actor)


@router.get("/sd-models", response_model=list[SdModelItem])
async def sd_models(request: Request, actor: ActorDep) -> list[SdModelItem]:
    """The models the member may use, as A1111 lists checkpoints (title = our model name)."""
    return [SdModelItem(**sd_model_item(name)) for name in service_of(request).member.models(actor)]


@router.get("/samplers", response_model=list[SamplerItem])
async def samplers(request: Request) -> list[SamplerItem]:
    """The engine's samplers by their A1111 names; ``aliases`` holds our names (``--sampler``)."""
    return [SamplerItem(**item) for item in sampler_items(service_of(request).member.samplers())]


@router.get("/schedulers", response_model=list[SchedulerItem])
async def schedulers() -> list[SchedulerItem]:
    """The schedule types a ``scheduler`` field may name."""
    return [SchedulerItem(**item) for item in scheduler_items()]


@router.get("/loras", response_model=list[LoraItem])
async def loras(request: Request) -> list[LoraItem]:
    """The LoRAs prompts may use as ``<lora:NAME:weight>``."""
    return [LoraItem(name=name, alias=name) for name in sorted(settings_of(request).loras)]


@router.get("/sd-vae", response_model=list[NamedItem])
async def sd_vae() -> list[NamedItem]:
    """None to choose: each model uses its own VAE."""
    return []


@router.get("/upscalers", response_model=list[NamedItem])
async def upscalers() -> list[NamedItem]:
    """None to choose: upscaling is a follow-up of a finished image (the native API's ``upscale`` action)."""
    return []


@router.get("/latent-upscale-modes", response_model=list[NamedItem])
async def latent_upscale_modes() -> list[NamedItem]:
    """None: there is no hires fix here (``enable_hr`` is accepted and ignored)."""
    return []


@router.get("/prompt-styles", response_model=list[NamedItem])
async def prompt_styles() -> list[NamedItem]:
    """No styles here (a ``styles`` field is accepted and ignored)."""
    return []


@router.get("/face-restorers", response_model=list[NamedItem])
async def face_restorers() -> list[NamedItem]:
    """No face restoration here (``restore_faces`` is accepted and ignored)."""
    return []


@router.get("/hypernetworks", response_model=list[NamedItem])
async def hypernetworks() -> list[NamedItem]:
    """No hypernetworks here."""
    return []


@router.get("/embeddings", response_model=Embeddings)
async def embeddings() -> Embeddings:
    """No textual-inversion embeddings here."""
    return Embeddings()


@router.get("/cmd-flags", response_model=CmdFlags)
async def cmd_flags(request: Request) -> CmdFlags:
    """The few of A1111's command-line flags that describe this server (clients probe this route)."""
    web = settings_of(request).web
    return CmdFlags(listen=not web.local_only, port=web.port)
