"""Image size rules: from an aspect ratio and a model's base size to a width and height it can render.

The rule, in order of importance:

1. width and height are multiples of the model's ``size_multiple`` (8 for every built-in model: diffusers'
   Stable Diffusion pipelines refuse anything else);
2. width:height is within :data:`MAX_RATIO_ERROR` (1%) of the asked ratio, measured both ways;
3. of all such sizes, the one whose pixel count is closest to ``base_size²`` (closest by factor, so 10% too many
   and 10% too few pixels weigh the same); ties go to the larger size.

How close 3. gets depends on the grid ``base_size / size_multiple``. With 64 or more steps (SD1.5: 512/8, SDXL:
1024/8) every ratio from 1:4 to 4:1 with sides up to 64 lands within ±3% of ``base_size²``. On a coarse grid
(the 64-pixel tiny test models: 64/8) a near-square ratio such as 64:63 has no size within 1% close to 64×64:
the ratio wins and the image grows (to 320×312), because a member sees the shape, not the pixel count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

MAX_RATIO_ERROR = Fraction(1, 100)
"""How far width:height may be from the asked ratio (relative, both ways)."""


def size_for_aspect(aspect: tuple[int, int], base_size: int, multiple: int) -> tuple[int, int]:
    """Width and height with the given ratio (within 1%), each a multiple of ``multiple``, about ``base_size²`` pixels.

    >>> size_for_aspect((1, 1), 512, 8)
    (512, 512)
    >>> size_for_aspect((3, 2), 512, 8)
    (624, 416)
    >>> size_for_aspect((16, 9), 1024, 8)
    (1368, 768)
    """
    ratio_w, ratio_h = aspect
    if ratio_w <= 0 or ratio_h <= 0:
        raise ValueError(f"aspect must be two positive numbers, got {aspect!r}")
    if base_size <= 0 or multiple <= 0:
        raise ValueError(f"base_size and multiple must be positive, got {base_size}, {multiple}")
    divisor = math.gcd(ratio_w, ratio_h)
    ratio_w, ratio_h = ratio_w // divisor, ratio_h // divisor
    # Areas are counted in grid cells (multiple × multiple); the target is base² / multiple², kept as a fraction
    # so every comparison below is exact (integer cross products, no floats, no Fraction objects in the loop).
    target_num, target_den = base_size * base_size, multiple * multiple
    best: _Candidate | None = None
    for steps_h in _heights_to_try(ratio_w, ratio_h, Fraction(target_num, target_den)):
        for steps_w in _widths_to_try(ratio_w, ratio_h, steps_h):
            cross_a, cross_b = steps_w * ratio_h, steps_h * ratio_w
            off, smaller = abs(cross_a - cross_b), min(cross_a, cross_b)
            if steps_w < 1 or off * MAX_RATIO_ERROR.denominator > smaller * MAX_RATIO_ERROR.numerator:
                continue
            scaled = steps_w * steps_h * target_den
            candidate = _Candidate(max(scaled, target_num), min(scaled, target_num), off, smaller, steps_w, steps_h)
            if best is None or candidate.beats(best):
                best = candidate
    assert best is not None, "the exact ratio is always on the grid"
    return best.steps_w * multiple, best.steps_h * multiple


@dataclass(frozen=True)
class _Candidate:
    """A size in grid steps with its area error (``area_hi / area_lo`` ≥ 1) and ratio error (``off / smaller``)."""

    area_hi: int
    area_lo: int
    off: int
    smaller: int
    steps_w: int
    steps_h: int

    def beats(self, other: _Candidate) -> bool:
        """Closer in area; then closer in ratio; then larger; then narrower (any fixed order keeps it stable)."""
        mine, theirs = self.area_hi * other.area_lo, other.area_hi * self.area_lo
        if mine != theirs:
            return mine < theirs
        mine, theirs = self.off * other.smaller, other.off * self.smaller
        if mine != theirs:
            return mine < theirs
        if self.steps_w * self.steps_h != other.steps_w * other.steps_h:
            return self.steps_w * self.steps_h > other.steps_w * other.steps_h
        return self.steps_w < other.steps_w


def _widths_to_try(ratio_w: int, ratio_h: int, steps_h: int) -> range:
    """Widths (in grid steps) that may be within 1% of the ratio at this height (checked exactly by the caller)."""
    exact = ratio_w * steps_h / ratio_h
    return range(max(1, math.floor(exact * 0.98)), math.ceil(exact * 1.02) + 1)


def _heights_to_try(ratio_w: int, ratio_h: int, target: Fraction) -> range:
    """Heights (in grid steps) that can hold the best size: between the exact-ratio sizes just below and just above
    the target area, with 2% slack for the ratio tolerance.

    The exact multiples ``k·ratio_w × k·ratio_h`` are always candidates. A size within 1% of the ratio that is
    shorter than the one below the target has fewer pixels than it, and one taller than the one above has more,
    so neither can be closer to the target.
    """
    cells = ratio_w * ratio_h
    below = math.isqrt(target.numerator // (target.denominator * cells))  # the largest k with k²·cells <= target
    while (below + 1) ** 2 * cells <= target:
        below += 1
    above = below if below * below * cells == target else below + 1
    lowest = max(1, math.floor(below * ratio_h / 1.02) - 1)
    return range(lowest, math.ceil(above * ratio_h * 1.02) + 2)
