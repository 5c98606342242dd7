"""ControlNet requests: a control image makes a control job with its mode, weight and ControlNet; the family, the
mode, --cw, a missing ControlNet or depth estimator are refused before anything is charged; buttons keep or drop
the control image."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.errors import PromptError
from bot.jobs import ImageResult, Job, Kind, Lane, Origin, RenderParams, Status
from bot.requests.control import choose_controlnet, follow_up_control, offered_controlnets
from bot.requests.custom_ids import Action
from bot.requests.preparation import attach_images, prepare_follow_up, prepare_imagine
from bot.requests.request_options import ImageInput, RequestOptions
from bot.scheduling.costs import job_cost
from config.settings import Settings
from tests.conftest import make_settings

CONTROL = ImageInput(Path("/uploads/control.png"), 64, 64)
IMAGE = ImageInput(Path("/uploads/photo.png"), 64, 64)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, enabled_models=["tiny", "tiny-sdxl"])


def _one(settings: Settings, prompt: str, options: RequestOptions | None = None, **kwargs: object) -> RenderParams:
    [prepared] = prepare_imagine(settings, prompt, None, options, **kwargs)  # type: ignore[arg-type]
    return prepared.params


@pytest.mark.parametrize(
    ("prompt", "mode", "expected"),
    [
        ("a fox", None, ("canny", 1.0, "tiny-controlnet")),
        ("a fox --cw 0", "raw", ("raw", 0.0, "tiny-controlnet")),
        ("a fox --cw 2", "scribble", ("scribble", 2.0, "tiny-controlnet")),
        ("a fox --cw .35", "LineArt", ("lineart", 0.35, "tiny-controlnet")),
        ("a fox --model tiny-sdxl", "canny", ("canny", 1.0, "tiny-controlnet-sdxl")),
        ("a fox --model tiny-sdxl --controlnet tiny-controlnet-sdxl", None, ("canny", 1.0, "tiny-controlnet-sdxl")),
    ],
)
def test_a_control_image_makes_a_control_job(
    settings: Settings, prompt: str, mode: str | None, expected: tuple[str, float, str]
) -> None:
    """Mode (canny by default), --cw (1 by default) and the ControlNet of the model's family."""
    [prepared] = prepare_imagine(settings, prompt, None, RequestOptions(control=CONTROL, control_mode=mode))
    params = prepared.params
    assert prepared.kind is Kind.CONTROL
    assert (params.control_mode, params.control_weight, params.controlnet) == expected
    assert params.control_image == str(CONTROL.path)
    assert "--cw" not in params.prompt


@pytest.mark.parametrize(
    ("prompt", "options", "flag", "fragment"),
    [
        (
            "a fox --cw 2.5",
            RequestOptions(control=CONTROL),
            "cw",
            "`--cw 2.5` is out of range: use --cw X with X from 0",
        ),
        ("a fox --cw -1", RequestOptions(control=CONTROL), "cw", "`--cw -1` is not valid"),
        ("a fox --cw lots", RequestOptions(control=CONTROL), "cw", "`--cw lots` is not valid"),
        ("a fox --cw 1", None, "cw", "--cw needs a control image"),
        ("a fox --controlnet tiny-controlnet", None, "controlnet", "--controlnet needs a control image"),
        ("a fox", RequestOptions(control_mode="canny"), "control_mode", "a control mode needs a control image"),
        (
            "a fox",
            RequestOptions(control=CONTROL, control_mode="pose"),
            "control_mode",
            "control mode `pose` is not one of: canny, depth, lineart, scribble, raw",
        ),
        (
            "a fox --model tiny-sdxl --controlnet tiny-controlnet",
            RequestOptions(control=CONTROL),
            "controlnet",
            "ControlNet `tiny-controlnet` is for sd15 models, but model `tiny-sdxl` is sdxl; use --model with a sd15",
        ),
        (
            "a fox --controlnet nope",
            RequestOptions(control=CONTROL),
            "controlnet",
            "ControlNet `nope` is not available; known ControlNets: tiny-controlnet, tiny-controlnet-sdxl",
        ),
        (
            "a fox",
            RequestOptions(control=CONTROL, control_mode="depth"),
            "control_mode",
            "control mode depth needs a depth estimator, and none is configured on this server; the owner can set "
            '[depth] source = "Intel/dpt-hybrid-midas"',
        ),
        (
            "a fox",
            RequestOptions(control=CONTROL, image=IMAGE, mask=IMAGE),
            "mask",
            "a control image works with a prompt or an image, not with a mask",
        ),
        ("a fox", RequestOptions(control=CONTROL, sweeps=("cfg=3,5",)), "sweep", "a sweep cannot take a control image"),
    ],
)
def test_bad_control_requests_are_refused_naming_what_to_change(
    settings: Settings, prompt: str, options: RequestOptions | None, flag: str, fragment: str
) -> None:
    with pytest.raises(PromptError) as refused:
        prepare_imagine(settings, prompt, None, options)
    assert fragment in str(refused.value)
    assert refused.value.flag == flag


def test_only_controlnets_of_another_family_serving_the_mode_is_a_family_error(tmp_path: Path) -> None:
    """The owner's only depth ControlNet is for SDXL: an SD1.5 job is told so, and what to change."""
    settings = make_settings(
        tmp_path,
        controlnet={"xl-depth": {"source": "tiny:controlnet-sdxl", "family": "sdxl", "modes": ["depth"]}},
        depth={"source": "tiny:depth"},
    )
    assert choose_controlnet(settings, "sdxl", "depth") == "xl-depth"
    with pytest.raises(PromptError) as refused:
        choose_controlnet(settings, "sd15", "depth")
    assert str(refused.value).startswith(
        "no ControlNet for sd15 models serves control mode depth here (`xl-depth` is for sdxl models); use --model "
        'with a sdxl model, or the owner can add [controlnet.NAME] with family = "sd15" and modes = ["depth"]'
    )


def test_the_tiny_controlnets_serve_only_tiny_models(tmp_path: Path) -> None:
    """A real model never picks a random-weight ControlNet: with none of its own, the owner is told what to add."""
    settings = make_settings(tmp_path, model="sd15")
    assert offered_controlnets(settings, "sd15") == {}
    assert set(offered_controlnets(settings, "tiny")) == {"tiny-controlnet", "tiny-controlnet-sdxl"}
    with pytest.raises(PromptError, match=r'the owner can add \[controlnet.NAME\] with family = "sd15" and modes'):
        prepare_imagine(settings, "a fox", None, RequestOptions(control=CONTROL), owner=True)


def test_depth_with_an_estimator_and_a_missing_controlnet_folder(tmp_path: Path) -> None:
    """Depth works once [depth] is set; an owner's ControlNet folder that is gone is refused (the owner sees the
    path, a member only which setting to fix)."""
    settings = make_settings(
        tmp_path,
        controlnet={"gone": {"source": str(tmp_path / "gone"), "family": "sd15", "modes": ["canny"]}},
        depth={"source": "tiny:depth"},
    )
    assert (
        _one(settings, "a fox", RequestOptions(control=CONTROL, control_mode="depth")).controlnet == "tiny-controlnet"
    )
    with pytest.raises(PromptError) as member:
        _one(settings, "a fox", RequestOptions(control=CONTROL))
    assert "ControlNet `gone` is not available on this server (its files are missing)" in str(member.value)
    assert str(tmp_path) not in str(member.value)
    with pytest.raises(PromptError, match=r"ControlNet `gone` cannot be used: .*gone is not a folder"):
        _one(settings, "a fox", RequestOptions(control=CONTROL), owner=True)


def test_img2img_with_a_control_image_is_a_control_job_from_that_image(settings: Settings) -> None:
    params = _one(settings, "a fox", RequestOptions(control=CONTROL, image=IMAGE, strength=0.4))
    assert (params.init_image, params.strength, params.control_image) == (str(IMAGE.path), 0.4, str(CONTROL.path))


def test_an_announced_control_image_gets_its_path_when_attached(settings: Settings) -> None:
    """A surface announces the attachment (no file yet), then attaches the checked one."""
    prepared = prepare_imagine(settings, "a fox", None, RequestOptions(control=ImageInput.announced()))
    assert prepared[0].params.control_image == ""
    [attached] = attach_images(prepared, None, None, CONTROL)
    assert attached.params.control_image == str(CONTROL.path)


def test_a_control_job_costs_its_own_multiplier(settings: Settings) -> None:
    """The same render costs 1.5 times as much with a control image (config/policy.py's ``control``)."""
    plain = prepare_imagine(settings, "a fox --ar 2:1")[0]
    controlled = prepare_imagine(settings, "a fox --ar 2:1", None, RequestOptions(control=CONTROL))[0]
    credits = settings.credits.model_copy(update={"unit_pixels": 64 * 64, "unit_steps": 1})

    def price(kind: Kind, params: RenderParams) -> int:
        return job_cost(params, kind=kind, lane=Lane.FAST, model_multiplier=1.0, credits=credits)

    assert price(controlled.kind, controlled.params) == pytest.approx(1.5 * price(plain.kind, plain.params), abs=1)
    assert price(controlled.kind, controlled.params) > price(plain.kind, plain.params)


def _control_parent(settings: Settings) -> tuple[Job, list[ImageResult]]:
    params = _one(settings, "a fox --cw 0.7", RequestOptions(control=CONTROL, control_mode="lineart"))
    job = Job(9, 1, Kind.CONTROL, Status.COMPLETED, Lane.FAST, "a fox --cw 0.7", params, Origin(), 0.0)
    images = [ImageResult(9, index, f"/img/{index}.png", 1 + index, 64, 64) for index in range(params.images)]
    return job, images


@pytest.mark.parametrize(
    ("action", "kind", "keeps", "init_image"),
    [
        (Action.REROLL, Kind.CONTROL, True, ""),
        (Action.VARY, Kind.CONTROL, True, "/img/2.png"),
        (Action.UPSCALE, Kind.UPSCALE, False, "/img/2.png"),
    ],
)
def test_buttons_keep_the_control_image_except_upscale(
    settings: Settings, action: Action, kind: Kind, keeps: bool, init_image: str
) -> None:
    """🔄 and V stay control jobs with the same image, mode and weight (V from the chosen image); U drops it."""
    parent, images = _control_parent(settings)
    follow = prepare_follow_up(settings, parent, images, action, 2)
    assert follow.kind is kind
    assert follow.params.init_image == init_image
    control = (follow.params.control_image, follow.params.control_mode, follow.params.control_weight)
    assert control == ((str(CONTROL.path), "lineart", 0.7) if keeps else ("", "", 1.0))


def test_a_button_on_a_control_job_whose_controlnet_went_away_is_refused(settings: Settings, tmp_path: Path) -> None:
    """The ControlNet is checked against today's registry before a button's job is charged."""
    parent, images = _control_parent(settings)
    parent = replace(parent, params=replace(parent.params, controlnet="retired"))
    with pytest.raises(PromptError, match="ControlNet `retired` is not available"):
        prepare_follow_up(settings, parent, images, Action.REROLL, 0)


def test_follow_ups_of_plain_jobs_are_unchanged(settings: Settings) -> None:
    params = _one(settings, "a fox")
    assert follow_up_control(Kind.VARIATION, params, params, settings) == (Kind.VARIATION, params)
