"""Sizes from aspect ratios: the model's multiple, the asked ratio within 1%, about base² pixels."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.requests.prompt import MAX_ASPECT_RATIO, MAX_ASPECT_SIDE
from bot.requests.sizing import size_for_aspect
from config.model_registry import BUILTIN_MODELS

ASPECTS = sorted(
    {
        (w // math.gcd(w, h), h // math.gcd(w, h))
        for w in range(1, MAX_ASPECT_SIDE + 1)
        for h in range(1, MAX_ASPECT_SIDE + 1)
        if 1 / MAX_ASPECT_RATIO <= w / h <= MAX_ASPECT_RATIO
    }
)
"""Every ratio --ar accepts (bot/requests/prompt.py reduces W:H by their gcd)."""

FINE_GRID_PIXEL_BAND = 0.03
"""With 64 or more grid steps per side (SD1.5: 512/8, SDXL: 1024/8) the pixels stay within ±3% of base²."""


def _ratio_off(size: tuple[int, int], aspect: tuple[int, int]) -> float:
    """Relative ratio error measured both ways, in floats (independent of the module's integer arithmetic)."""
    got, asked = size[0] / size[1], aspect[0] / aspect[1]
    return max(abs(got / asked - 1), abs(asked / got - 1))


@pytest.mark.parametrize(
    ("aspect", "base", "multiple", "expected"),
    [
        ((1, 1), 512, 8, (512, 512)),
        ((3, 2), 512, 8, (624, 416)),
        ((2, 3), 512, 8, (416, 624)),
        ((16, 9), 1024, 8, (1368, 768)),
        ((4, 1), 512, 8, (1024, 256)),
        ((1, 1), 64, 8, (64, 64)),
        ((3, 2), 64, 8, (72, 48)),
        ((4, 1), 64, 8, (128, 32)),
        ((1, 4), 64, 8, (32, 128)),
        ((64, 63), 512, 8, (520, 512)),
        ((64, 63), 64, 8, (320, 312)),
        ((6, 4), 512, 8, (624, 416)),
        ((3, 2), 512, 64, (576, 384)),
    ],
)
def test_size_for_aspect(aspect: tuple[int, int], base: int, multiple: int, expected: tuple[int, int]) -> None:
    """Known sizes: exact 3:2 on SD1.5 (was 640x448, 10:7) and on tiny (was 80x48, 5:3); a coarse grid keeps the
    ratio by growing (64:63 on the 64-pixel tiny model) or shrinking (3:2 on a 64-pixel multiple); a non-reduced
    ratio is reduced."""
    assert size_for_aspect(aspect, base, multiple) == expected


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_every_aspect_on_every_builtin_model(name: str) -> None:
    """All 1891 ratios from 1:4 to 4:1: multiples of 8 (16 for SD3/FLUX.1), ratio within 1%, mirrored for H:W,
    pixels near base²."""
    spec = BUILTIN_MODELS[name]
    assert spec.size_multiple == (16 if spec.family in ("sd3", "flux") and not spec.source.startswith("tiny:") else 8)
    fine = spec.base_size // spec.size_multiple >= 64
    for aspect in ASPECTS:
        width, height = size_for_aspect(aspect, spec.base_size, spec.size_multiple)
        step = spec.size_multiple
        assert width % step == 0 and height % step == 0 and width > 0 and height > 0
        assert _ratio_off((width, height), aspect) <= 0.01 + 1e-12, (aspect, width, height)
        assert size_for_aspect((aspect[1], aspect[0]), spec.base_size, spec.size_multiple) == (height, width)
        pixels = width * height / spec.base_size**2
        if fine:
            assert abs(pixels - 1) <= FINE_GRID_PIXEL_BAND, (aspect, width, height)
        else:  # the 64-pixel tiny models: never past the exact-ratio size of at most 512x512
            assert 0.5 <= pixels <= 512 * 512 / spec.base_size**2, (aspect, width, height)


@given(
    width=st.integers(1, MAX_ASPECT_SIDE),
    height=st.integers(1, MAX_ASPECT_SIDE),
    name=st.sampled_from(sorted(BUILTIN_MODELS)),
)
def test_no_size_within_one_percent_is_closer_to_base(width: int, height: int, name: str) -> None:
    """Against a brute-force search of every grid size up to 4096 px: none within 1% has pixels closer to base²."""
    if not 1 / MAX_ASPECT_RATIO <= width / height <= MAX_ASPECT_RATIO:
        return
    spec = BUILTIN_MODELS[name]
    step, area = spec.size_multiple, spec.base_size**2
    chosen = size_for_aspect((width, height), spec.base_size, step)
    distance = abs(math.log(chosen[0] * chosen[1] / area))
    for candidate_h in range(step, 4096 + 1, step):
        for candidate_w in {
            step * math.floor(width * candidate_h / height / step),
            step * math.ceil(width * candidate_h / height / step),
        }:
            if candidate_w <= 0 or _ratio_off((candidate_w, candidate_h), (width, height)) > 0.01 - 1e-9:
                continue
            assert abs(math.log(candidate_w * candidate_h / area)) >= distance - 1e-12, (candidate_w, candidate_h)


def test_bad_input_is_refused() -> None:
    """Zero or negative numbers are a programming error, not a silent 0-pixel image."""
    with pytest.raises(ValueError, match="aspect"):
        size_for_aspect((0, 1), 512, 8)
    with pytest.raises(ValueError, match="base_size"):
        size_for_aspect((1, 1), 0, 8)
