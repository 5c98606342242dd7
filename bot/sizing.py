"""Image size rules: from an aspect ratio and a model's base size to a width and height it can render."""

from __future__ import annotations

import math


def size_for_aspect(aspect: tuple[int, int], base_size: int, multiple: int) -> tuple[int, int]:
    """Width and height with about ``base_size²`` pixels, the given ratio, each a multiple of ``multiple``.

    >>> size_for_aspect((1, 1), 512, 64)
    (512, 512)
    >>> size_for_aspect((3, 2), 512, 64)
    (640, 448)
    """
    ratio_w, ratio_h = aspect
    if ratio_w <= 0 or ratio_h <= 0:
        raise ValueError(f"aspect must be two positive numbers, got {aspect!r}")
    if base_size <= 0 or multiple <= 0:
        raise ValueError(f"base_size and multiple must be positive, got {base_size}, {multiple}")
    area = float(base_size * base_size)
    width = math.sqrt(area * ratio_w / ratio_h)
    height = area / width
    return _round_to(width, multiple), _round_to(height, multiple)


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)
