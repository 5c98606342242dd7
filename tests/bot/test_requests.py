"""Job params for shell options and for follow-ups of a finished image (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.jobs import Kind, RenderParams
from bot.requests import TaskOptions, apply_options, follow_up_params, kind_for

PARENT = RenderParams(prompt="a fox", negative="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=7)


@pytest.mark.parametrize(
    ("options", "kind"),
    [
        (TaskOptions(), Kind.IMAGINE),
        (TaskOptions(image=Path("a.png")), Kind.IMG2IMG),
        (TaskOptions(image=Path("a.png"), mask=Path("m.png")), Kind.INPAINT),
        (TaskOptions(sweeps=("cfg=3,5",)), Kind.SWEEP),
    ],
)
def test_kind_for(options: TaskOptions, kind: Kind) -> None:
    assert kind_for(options) is kind


def test_apply_options_sweep_renders_one_image_per_cell(tmp_path: Path) -> None:
    params = apply_options(PARENT, TaskOptions(sweeps=("cfg=3,5", "steps=2,4")))
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
