"""Sizes from aspect ratios."""

from __future__ import annotations

import pytest

from bot.sizing import size_for_aspect


@pytest.mark.parametrize(
    ("aspect", "base", "multiple", "expected"),
    [
        ((1, 1), 512, 64, (512, 512)),
        ((3, 2), 512, 64, (640, 448)),
        ((2, 3), 512, 64, (448, 640)),
        ((16, 9), 1024, 64, (1344, 768)),
        ((4, 1), 512, 64, (1024, 256)),
        ((1, 1), 64, 16, (64, 64)),
        ((3, 2), 64, 16, (80, 48)),
        ((1, 4), 64, 16, (32, 128)),
    ],
)
def test_size_for_aspect(aspect: tuple[int, int], base: int, multiple: int, expected: tuple[int, int]) -> None:
    """Sizes keep about base² pixels, the ratio, and the model's multiple."""
    assert size_for_aspect(aspect, base, multiple) == expected


def test_bad_input_is_refused() -> None:
    """Zero or negative numbers are a programming error, not a silent 0-pixel image."""
    with pytest.raises(ValueError, match="aspect"):
        size_for_aspect((0, 1), 512, 64)
    with pytest.raises(ValueError, match="base_size"):
        size_for_aspect((1, 1), 0, 64)
