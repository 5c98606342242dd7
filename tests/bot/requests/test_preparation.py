"""Preparation: requests at every limit are accepted and priced by their real work; past a limit they are refused
before anything is charged; buttons are sized and limited by what they render."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ImagineError, PromptError
from bot.jobs import ImageResult, Job, Kind, Lane, Origin, RenderParams, Status
from bot.requests.custom_ids import Action
from bot.requests.preparation import FOLLOW_UP_PIXEL_FACTOR, prepare_follow_up, prepare_imagine
from bot.requests.request_options import RequestOptions
from bot.scheduling.costs import job_cost
from config.settings import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "ink.safetensors").write_bytes(b"")  # a LoRA whose file is missing is refused
    return make_settings(tmp_path, loras={"ink": {"path": str(tmp_path / "ink.safetensors")}})


@pytest.mark.parametrize(
    "prompt",
    [
        "a fox --ar 1:4",
        "a fox --ar 4:1",
        "a fox --ar 64:63",
        "a fox --steps 60",
        "a fox --steps 1",
        "a fox --cfg 30",
        "a fox --cfg 0",
        "a fox --seed 4294967295",
        "a fox --seed 0",
        "a fox --repeat 4",
        "a {red, blue} fox --repeat 4",
        "{" * 5 + "fox" + "}" * 5,
        "x" * 1500,
        "a fox <lora:ink:0.8>",
        "a fox --no blur, text --tile --turbo --sampler dpmpp_2m_karras",
    ],
)
def test_requests_at_every_limit_are_accepted(settings: Settings, prompt: str) -> None:
    """The last allowed value of each flag is fine."""
    assert prepare_imagine(settings, prompt)


@pytest.mark.parametrize(
    "axes",
    [
        ("steps=1,60",),
        ("cfg=0,30",),
        ("seed=0,4294967295",),
        ("seed=" + ",".join(map(str, range(16))),),
        ("seed=" + ",".join(map(str, range(16))), "cfg=1,2,3,4"),  # 64 cells
        ("sampler=euler,ddim,unipc", "prompt=fox,cat", "steps=2,3"),
    ],
)
def test_sweeps_at_every_limit_are_accepted(settings: Settings, axes: tuple[str, ...]) -> None:
    """A sweep may use each value a flag may."""
    [prepared] = prepare_imagine(settings, "a fox", options=RequestOptions(sweeps=axes))
    assert prepared.kind is Kind.SWEEP


def test_a_steps_sweep_is_charged_for_the_steps_it_renders(settings: Settings) -> None:
    """64 cells at up to 60 steps cost what 64 single images at those steps cost, not 64 at the default."""
    seeds = ",".join(map(str, range(16)))
    swept = RequestOptions(sweeps=(f"seed={seeds}", "steps=30,40,50,60"))
    [prepared] = prepare_imagine(settings, "a fox", options=swept)
    [default] = prepare_imagine(settings, "a fox", options=RequestOptions(sweeps=(f"seed={seeds}", "cfg=3,4,5,6")))
    credits = settings.credits.model_copy(update={"unit_pixels": 64 * 64, "unit_steps": 1})
    cost = job_cost(prepared.params, kind="sweep", lane=Lane.FAST, model_multiplier=1.0, credits=credits)
    assert cost == 16 * (30 + 40 + 50 + 60)
    default_cost = job_cost(default.params, kind="sweep", lane=Lane.FAST, model_multiplier=1.0, credits=credits)
    assert default_cost == 64 * settings.registry["tiny"].steps


def test_a_sweep_prompt_longer_than_the_limit_is_refused(settings: Settings) -> None:
    """A prompt value cannot stretch a prompt past max_prompt_chars."""
    prompt = "a fox " + "y" * 1390
    with pytest.raises(PromptError, match="a sweep prompt is 1593 characters long; the limit is 1500"):
        prepare_imagine(settings, prompt, options=RequestOptions(sweeps=("prompt=fox," + "z" * 200,)))


def _parent(kind: Kind, width: int, height: int, model: str = "tiny") -> tuple[Job, list[ImageResult]]:
    params = RenderParams("a fox", "", model, width, height, 4, 5.0, 1, images=1 if kind is Kind.UPSCALE else 4)
    job = Job(9, 1, kind, Status.COMPLETED, Lane.FAST, "a fox", params, Origin(), 0.0)
    images = [ImageResult(9, index, f"/img/{index}.png", 1 + index, width, height) for index in range(params.images)]
    return job, images


def test_follow_ups_are_sized_by_what_they_render(settings: Settings) -> None:
    """U doubles the image, a pan extends it by half: the job's size, price and limits follow."""
    grid, images = _parent(Kind.IMAGINE, 64, 64)
    upscale = prepare_follow_up(settings, grid, images, Action.UPSCALE, 1)
    assert (upscale.params.width, upscale.params.height, upscale.params.images) == (128, 128, 1)
    assert upscale.params.seed == images[1].seed
    upscaled, upscaled_images = _parent(Kind.UPSCALE, 128, 128)
    pan = prepare_follow_up(settings, upscaled, upscaled_images, Action.PAN_LEFT, 0)
    assert (pan.params.width, pan.params.height) == (192, 128)
    zoom = prepare_follow_up(settings, upscaled, upscaled_images, Action.ZOOM_OUT_2, 0)
    assert (zoom.params.width, zoom.params.height) == (128, 128)


def test_a_chain_of_pans_stops_at_the_pixel_limit(settings: Settings) -> None:
    """Panning a panned image again and again cannot grow it without bound."""
    limit = settings.max_pixels * FOLLOW_UP_PIXEL_FACTOR
    wide, images = _parent(Kind.UPSCALE, 4096, 2048)  # 8.4 MP: within the limit, one more pan is not
    assert 4096 * 2048 <= limit < 6144 * 2048
    with pytest.raises(ImagineError, match="6144x2048 image, more than this server allows"):
        prepare_follow_up(settings, wide, images, Action.PAN_RIGHT, 0)
    assert prepare_follow_up(settings, wide, images, Action.VARY_STRONG, 0)


def test_members_may_not_use_models_the_owner_did_not_enable(settings: Settings) -> None:
    """Built-in hub models are off for members, also through a button on an old result; the owner's console may
    name any model on disk."""
    with pytest.raises(PromptError, match="`--model sdxl` is not a model on this server"):
        prepare_imagine(settings, "a fox --model sdxl")
    old, images = _parent(Kind.IMAGINE, 64, 64, model="sdxl")
    with pytest.raises(PromptError, match="model `sdxl` is not available on this server"):
        prepare_follow_up(settings, old, images, Action.VARY, 0)
    assert prepare_imagine(settings, "a fox --model tiny-sdxl", owner=True)


def test_a_default_model_the_owner_disabled_later_is_explained(settings: Settings) -> None:
    """A /settings model that is no longer enabled names /settings as the place to fix it; a flag still works."""
    from bot.requests.preferences import Preferences

    stale = Preferences(model="tiny-sdxl")
    with pytest.raises(PromptError, match=r"your default model `tiny-sdxl` \(from /settings\) is not available"):
        prepare_imagine(settings, "a fox", stale)
    assert prepare_imagine(settings, "a fox --model tiny", stale)[0].params.model == "tiny"
