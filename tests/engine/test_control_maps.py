"""The control maps as pure functions on small pictures: canny, lineart, scribble, depth, raw, and how a control image
is fitted to the job's size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.control_maps import (
    canny_map,
    control_map,
    depth_to_map,
    fit_control,
    lineart_map,
    scribble_map,
)


def _square(size: int = 64) -> Image.Image:
    """A white square on black, its edges at 16 and 47."""
    image = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill="white")
    return image


def _line(size: int = 64) -> Image.Image:
    """A dark vertical pen line (x 32-33) on white paper."""
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).line((32, 4, 32, 59), fill=(20, 20, 20), width=2)
    return image


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def _one_channel(image: Image.Image) -> np.ndarray:
    """The map's first channel, after checking its three channels are equal (a grey map in RGB)."""
    pixels = _pixels(image)
    assert image.mode == "RGB"
    assert (pixels[:, :, 0] == pixels[:, :, 1]).all() and (pixels[:, :, 1] == pixels[:, :, 2]).all()
    return pixels[:, :, 0]


@pytest.mark.parametrize("preprocess", [canny_map, lineart_map, scribble_map])
def test_a_flat_picture_has_no_lines(preprocess: object) -> None:
    """Nothing to follow in a flat picture: the map is all black, the picture's size."""
    flat = Image.new("RGB", (40, 24), (120, 130, 140))
    result = preprocess(flat)  # type: ignore[operator]
    assert result.size == (40, 24)
    assert _one_channel(result).max() == 0


def test_canny_draws_the_square_outline_in_white() -> None:
    """White edges where the square meets the background; its inside and the far background stay black."""
    edges = _one_channel(canny_map(_square()))
    assert set(np.unique(edges)) == {0, 255}
    assert edges[15:18, 20:44].max() == 255  # the top edge
    assert edges[20:44, 46:49].max() == 255  # the right edge
    assert edges[24:40, 24:40].max() == 0  # inside
    assert edges[:8, :8].max() == 0  # far outside


def test_lineart_makes_a_dark_pen_line_a_bright_line() -> None:
    """Ink darker than its surroundings becomes white on black; blank paper stays black."""
    lines = _one_channel(lineart_map(_line()))
    assert lines[10:54, 32:34].min() > 200
    assert lines[:, :26].max() == 0 and lines[:, 40:].max() == 0


def test_lineart_ignores_light_strokes_that_are_not_ink() -> None:
    """A bright mark on a dark ground is not ink (nothing is darker than its surroundings there but its rim)."""
    lines = _one_channel(lineart_map(_square()))
    assert lines[24:40, 24:40].max() == 0  # the inside of the white square is paper, not ink


def test_scribble_is_bold_black_and_white_strokes() -> None:
    """Pure black and white, strokes wider than Canny's one-pixel edges along the same outline."""
    scribble = _one_channel(scribble_map(_square()))
    edges = _one_channel(canny_map(_square()))
    assert set(np.unique(scribble)) == {0, 255}
    assert (scribble > 0).sum() > 2 * (edges > 0).sum()
    assert scribble[28:36, 28:36].max() == 0  # the middle of the square is empty


@pytest.mark.parametrize("preprocess", [canny_map, lineart_map, scribble_map])
def test_preprocessors_are_deterministic(preprocess: object) -> None:
    """The same picture gives the same map, every time."""
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8))
    assert (_pixels(preprocess(noise)) == _pixels(preprocess(noise))).all()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("depth", "near", "far"),
    [
        (np.array([[0.0, 1.0], [2.0, 3.0]]), (1, 1), (0, 0)),  # larger is nearer
        (np.array([[5.0, -5.0], [0.0, 0.0]]), (0, 0), (0, 1)),
    ],
)
def test_depth_maps_near_white_and_far_black(depth: np.ndarray, near: tuple[int, int], far: tuple[int, int]) -> None:
    """Relative depth stretched to 0-255: the nearest value white, the farthest black."""
    pixels = _one_channel(depth_to_map(depth, (2, 2)))
    assert pixels[near] == 255 and pixels[far] == 0


def test_depth_map_is_resized_and_a_flat_depth_is_black() -> None:
    assert depth_to_map(np.zeros((3, 3)), (16, 8)).size == (16, 8)
    assert _one_channel(depth_to_map(np.full((3, 3), 7.0), (4, 4))).max() == 0


def test_fit_control_crops_to_the_jobs_aspect_and_resizes() -> None:
    """A 2:1 picture for a 1:1 job keeps its middle: the red left and blue right bands are cropped away."""
    picture = Image.new("RGB", (128, 64), "green")
    ImageDraw.Draw(picture).rectangle((0, 0, 15, 63), fill="red")
    ImageDraw.Draw(picture).rectangle((112, 0, 127, 63), fill="blue")
    fitted = fit_control(picture, (32, 32))
    assert fitted.size == (32, 32)
    colours = {tuple(colour) for colour in _pixels(fitted).reshape(-1, 3)}
    assert colours == {(0, 128, 0)}


def test_control_map_raw_is_the_fitted_picture_and_modes_give_the_jobs_size() -> None:
    """Raw passes the picture on (fitted); every mode's map is the job's size."""
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8))
    raw = control_map(picture, "raw", (40, 24))
    assert (_pixels(raw) == _pixels(fit_control(picture, (40, 24)))).all()
    brightness = lambda image: np.asarray(image.convert("L"), dtype=float)  # noqa: E731  a depth estimator
    for mode in ("canny", "lineart", "scribble", "depth"):
        assert control_map(picture, mode, (40, 24), brightness).size == (40, 24)


@pytest.mark.parametrize(
    ("mode", "depth", "message"),
    [
        ("pose", None, "control_mode='pose' is not one of"),
        ("depth", None, r"set \[depth\] source"),
    ],
)
def test_control_map_refuses_an_unknown_mode_and_depth_without_an_estimator(
    mode: str, depth: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        control_map(_square(), mode, (32, 32), None)
