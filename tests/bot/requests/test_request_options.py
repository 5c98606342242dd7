"""Job params for shell options and for follow-ups of a finished image (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import PromptError
from bot.jobs import Kind, RenderParams
from bot.requests.request_options import (
    ImageInput,
    RequestOptions,
    apply_options,
    follow_up_params,
    follow_up_size,
    kind_for,
)
from bot.requests.sweep_spec import SweepLimits

IMAGE = ImageInput(Path("a.png"), 96, 64)
PARENT = RenderParams(prompt="a fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=7)


@pytest.mark.parametrize(
    ("options", "kind"),
    [
        (RequestOptions(), Kind.IMAGINE),
        (RequestOptions(image=IMAGE), Kind.IMG2IMG),
        (RequestOptions(image=IMAGE, mask=ImageInput(Path("m.png"), 64, 64)), Kind.INPAINT),
        (RequestOptions(sweeps=("cfg=3,5",)), Kind.SWEEP),
    ],
)
def test_kind_for(options: RequestOptions, kind: Kind) -> None:
    assert kind_for(options) is kind


def test_apply_options_sweep_renders_one_image_per_cell(tmp_path: Path) -> None:
    params = apply_options(PARENT, RequestOptions(sweeps=("cfg=3,5", "steps=2,4")))
    assert params.sweep == (("cfg", ("3", "5")), ("steps", ("2", "4")))
    assert params.images == 1
    assert RenderParams.from_json(params.to_json()) == params


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        (Kind.REROLL, {"seed": 99, "init_image": ""}),
        (Kind.VARIATION, {"strength": 0.65, "init_image": "/img/0.png"}),
        (Kind.UPSCALE, {"strength": 0.3, "images": 1}),
        (Kind.ZOOM, {"zoom": 1.5, "strength": 1.0}),
        (Kind.PAN, {"pan": "left"}),
    ],
)
def test_follow_up_params(kind: Kind, changes: dict) -> None:
    params = follow_up_params(PARENT, kind, "/img/0.png", 99, zoom=1.5, pan="left")
    for name, value in changes.items():
        assert getattr(params, name) == value


def test_follow_up_rejects_other_kinds() -> None:
    with pytest.raises(ValueError, match="not a follow-up"):
        follow_up_params(PARENT, Kind.IMAGINE, "/img/0.png", 1)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (RequestOptions(mask=ImageInput(Path("m.png"), 64, 64)), "a mask needs an image"),
        (RequestOptions(strength=0.5), "strength needs an image"),
        (RequestOptions(image=IMAGE, strength=0.0), "above 0 and at most 1"),
        (
            RequestOptions(image=IMAGE, mask=ImageInput(Path("m.png"), 64, 64)),
            "the mask is 64x64 but the image is 96x64",
        ),
        (RequestOptions(sweeps=("strength=0.3,0.6",)), "a strength sweep needs an image"),
        (RequestOptions(sweeps=("prompt=owl,cat",)), "'owl' (the first value) does not occur in the prompt"),
        (RequestOptions(sweeps=("sampler=euler,warp",)), "sweep sampler 'warp'"),
    ],
)
def test_apply_options_refuses_before_anything_is_charged(options: RequestOptions, fragment: str) -> None:
    """Each check that once ran in the engine (after the charge) now runs while the request is prepared."""
    with pytest.raises(PromptError) as caught:
        apply_options(PARENT, options, SweepLimits(samplers=("euler", "euler_a")))
    assert fragment in str(caught.value)


def test_an_announced_image_is_checked_later_and_a_mask_of_the_same_shape_is_fine() -> None:
    """Before the download only what needs no pixels is checked; a mask twice the size of its image is resized."""
    announced = RequestOptions(image=ImageInput.announced(), mask=ImageInput.announced())
    assert apply_options(PARENT, announced).init_image == ""
    same_shape = RequestOptions(image=IMAGE, mask=ImageInput(Path("m.png"), 192, 128))
    assert apply_options(PARENT, same_shape).mask_image == "m.png"


@pytest.mark.parametrize(
    ("kind", "size", "expected"),
    [
        (Kind.UPSCALE, (512, 512), (1024, 1024)),
        (Kind.PAN, (512, 512), (768, 512)),
        (Kind.VARIATION, (640, 448), (640, 448)),
        (Kind.ZOOM, (640, 448), (640, 448)),
    ],
)
def test_follow_up_size(kind: Kind, size: tuple[int, int], expected: tuple[int, int]) -> None:
    """A follow-up is sized (and so priced) by what it renders: upscales are 2x, pans 1.5x one way."""
    assert follow_up_size(kind, size, 8, zoom=2.0, pan="left") == expected
    params = follow_up_params(PARENT, kind, "/img/0.png", 1, zoom=2.0, pan="left", size=expected)
    assert (params.width, params.height) == expected
