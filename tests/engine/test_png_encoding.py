"""The fast PNG encoder: every decoder reads back the exact pixels and text, and the same pixels give the same
bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.png_encoding import average_filtered, encode_png

MODES = {"L": 1, "RGB": 3, "RGBA": 4}


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from(sorted(MODES)),
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    text=st.text(max_size=40),
)
def test_pillow_reads_back_the_exact_pixels_and_text(mode: str, width: int, height: int, seed: int, text: str) -> None:
    """Any size, mode and text (Latin-1 or not): the decoded image and its text chunk are what went in."""
    shape = (height, width) if mode == "L" else (height, width, MODES[mode])
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(Image.fromarray(pixels, mode), {"parameters": text.replace("\0", "")})
    with Image.open(io.BytesIO(data)) as decoded:
        decoded.load()
        assert decoded.format == "PNG" and decoded.mode == mode
        assert np.array_equal(np.asarray(decoded), pixels)
        assert decoded.info.get("parameters", "") == text.replace("\0", "")


def test_other_modes_are_written_as_rgb() -> None:
    """A palette image is stored as the RGB it shows."""
    image = Image.new("P", (4, 3), 7)
    image.putpalette([10, 20, 30] * 256)
    with Image.open(io.BytesIO(encode_png(image))) as decoded:
        assert decoded.mode == "RGB" and decoded.getpixel((2, 1)) == (10, 20, 30)


def test_same_pixels_same_bytes() -> None:
    image = Image.effect_noise((64, 48), 40).convert("RGB")
    assert encode_png(image, {"parameters": "a"}) == encode_png(image.copy(), {"parameters": "a"})


@pytest.mark.parametrize(
    ("rows", "channels", "expected"),
    [
        ([[10, 20]], 1, [[3, 10, 15]]),  # left only: 20 - 10 // 2
        ([[10], [30]], 1, [[3, 10], [3, 25]]),  # above only: 30 - 10 // 2
        ([[200, 100], [50, 255]], 1, [[3, 200, 0], [3, 206, 180]]),  # wraps modulo 256
        ([[1, 2, 3, 4]], 2, [[3, 1, 2, 3, 3]]),  # the left neighbour is a pixel (channels bytes) back
    ],
)
def test_average_filter(rows: list[list[int]], channels: int, expected: list[list[int]]) -> None:
    """x − floor((left + above) / 2) mod 256 per byte, each scanline led by filter type 3."""
    filtered = average_filtered(np.array(rows, dtype=np.uint8), channels)
    assert filtered.tolist() == expected
