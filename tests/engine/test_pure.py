"""Pure pieces of the engine: prompt syntax, canvases, offload choice, previews, sweep expansion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from engine.canvas import fit_mask, pan_canvas, upscaled_size, zoom_out_canvas
from engine.memory import choose_offload
from engine.prompt_syntax import a1111_to_compel, has_weighting, parse_loras
from engine.protocol import RenderTask
from engine.sweep import expand_sweep


@pytest.mark.parametrize(
    ("a1111", "compel"),
    [
        ("a red fox", "a red fox"),
        ("a (red:1.3) fox", "a (red)1.3 fox"),
        ("a (red) fox", "a (red)1.1 fox"),
        ("a ((red)) fox", "a ((red)1.1)1.1 fox"),
        ("a [red] fox", "a (red)0.909 fox"),
        ("(red fox:0.5), snow", "(red fox)0.5, snow"),
        (r"a \(literal\) fox", r"a \(literal\) fox"),
        ("unbalanced ( here", r"unbalanced \( here"),
        ("stray ) here", r"stray \) here"),
    ],
)
def test_a1111_to_compel(a1111: str, compel: str) -> None:
    """A1111 emphasis becomes compel's ``(text)weight``."""
    assert a1111_to_compel(a1111) == compel


@given(st.text(alphabet="ab ()[]:.1\\", max_size=30))
def test_a1111_to_compel_never_raises(prompt: str) -> None:
    assert isinstance(a1111_to_compel(prompt), str)


def test_has_weighting() -> None:
    assert has_weighting("a (red) fox")
    assert not has_weighting(r"a \(red\) fox")


@pytest.mark.parametrize(
    ("prompt", "clean", "loras"),
    [
        ("a fox", "a fox", ()),
        ("a fox <lora:grain:0.8>", "a fox", (("grain", 0.8),)),
        ("<lora:a:1> a fox <lora:b>", "a fox", (("a", 1.0), ("b", 1.0))),
        ("a fox <lora:neg:-0.5>, snow", "a fox , snow", (("neg", -0.5),)),
    ],
)
def test_parse_loras(prompt: str, clean: str, loras: tuple) -> None:
    assert parse_loras(prompt) == (clean, loras)


def test_parse_loras_rejects_a_weight_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match="LoRA weight 'lots'"):
        parse_loras("a fox <lora:grain:lots>")


def test_fit_mask_resizes_a_mask_of_the_same_shape() -> None:
    assert fit_mask(Image.new("1", (32, 16), 1), (64, 32)).size == (64, 32)


def test_fit_mask_refuses_another_shape() -> None:
    with pytest.raises(ValueError, match="the mask is 32x32 but the image is 64x32"):
        fit_mask(Image.new("L", (32, 32)), (64, 32))


def test_zoom_out_canvas_keeps_the_size_and_masks_the_border() -> None:
    canvas, mask = zoom_out_canvas(Image.new("RGB", (64, 48), "red"), 2.0)
    assert canvas.size == mask.size == (64, 48)
    assert mask.getpixel((0, 0)) == 255
    assert mask.getpixel((32, 24)) == 0
    assert canvas.getpixel((32, 24)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("direction", "size", "kept"),
    [
        ("left", (96, 64), (80, 32)),
        ("right", (96, 64), (10, 32)),
        ("up", (64, 96), (32, 80)),
        ("down", (64, 96), (32, 10)),
    ],
)
def test_pan_canvas_extends_towards_the_direction(direction: str, size: tuple, kept: tuple) -> None:
    canvas, mask = pan_canvas(Image.new("RGB", (64, 64), "red"), direction, 16)
    assert canvas.size == mask.size == size
    assert mask.getpixel(kept) == 0
    assert canvas.getpixel(kept) == (255, 0, 0)


def test_upscaled_size() -> None:
    assert upscaled_size((512, 768), 2.0, 8) == (1024, 1536)
    with pytest.raises(ValueError, match="upscale_factor=8"):
        upscaled_size((64, 64), 8.0, 8)


@pytest.mark.parametrize(
    ("requested", "free", "weights", "chosen"),
    [
        ("auto", None, 10, "none"),
        ("auto", 30, 10, "none"),
        ("auto", 15, 10, "model"),
        ("auto", 5, 10, "sequential"),
        ("model", None, 10, "model"),
    ],
)
def test_choose_offload(requested: str, free: int | None, weights: int, chosen: str) -> None:
    assert choose_offload(requested, free, weights) == chosen


def test_expand_sweep_rejects_a_search_term_missing_from_the_prompt() -> None:
    task = RenderTask(1, "a fox", "", 64, 64, 4, 5.0, (1,), "euler_a", "/tmp/x", sweep=(("prompt", ("cat", "dog")),))
    with pytest.raises(ValueError, match="'cat' \\(the first value\\) does not occur"):
        expand_sweep(task, "txt2img")


@pytest.mark.parametrize(
    ("pipeline_class", "configured", "family"),
    [
        ("StableDiffusionXLPipeline", "sd15", "sdxl"),
        ("StableDiffusionPipeline", "sd2", "sd2"),
        ("StableDiffusionPipeline", "sdxl", "sd15"),
        ("StableDiffusion3Pipeline", "sd15", "sd3"),
        ("FluxPipeline", "sd15", "flux"),
        ("KandinskyV22Pipeline", "sd15", "KandinskyV22Pipeline"),
    ],
)
def test_detect_family(pipeline_class: str, configured: str, family: str) -> None:
    from engine.pipelines import detect_family

    assert detect_family(pipeline_class, configured) == family
