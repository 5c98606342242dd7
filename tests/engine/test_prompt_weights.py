"""The pure rules of multi-prompts, --chaos and --stop (engine.prompt_weights), and the per-image CFG scale that
carries --chaos into one pipeline call."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from engine.prompt_weights import (
    MAX_CHAOS_CFG,
    ImageConditioning,
    blend,
    chaos_cfg,
    chaos_draws,
    chaos_weights,
    image_cfgs,
    image_conditionings,
    stopped_steps,
)
from engine.protocol import RenderTask
from engine.weighted_conditioning import PerImageGuidance, image_guidance


@pytest.mark.parametrize(
    ("steps", "stop", "expected"),
    [
        (20, 100, 20),
        (20, 50, 10),
        (25, 50, 13),  # rounded up
        (4, 10, 1),  # never 0
        (1, 10, 1),
        (60, 99, 60),
        (30, 10, 3),
        (7, 33, 3),
    ],
)
def test_stopped_steps(steps: int, stop: int, expected: int) -> None:
    """--stop runs (and charges) its percentage of the steps, rounded up, at least one."""
    assert stopped_steps(steps, stop) == expected


@pytest.mark.parametrize("stop", [0, -5, 101])
def test_stop_outside_its_range_is_an_error(stop: int) -> None:
    """A stop the parser never lets through is a ValueError naming it."""
    with pytest.raises(ValueError, match=f"stop={stop}"):
        stopped_steps(20, stop)


def test_chaos_draws_are_fixed_for_a_seed() -> None:
    """The documented rule: Python's Random(seed).random() - 0.5, the same on every machine."""
    assert chaos_draws(7, 3) == pytest.approx([-0.17616723516683763, -0.3491508260754981, 0.15093447303985374])
    assert chaos_draws(7, 3) == chaos_draws(7, 3)
    assert chaos_draws(7, 1) != chaos_draws(8, 1)


@pytest.mark.parametrize(
    ("cfg", "chaos", "seed", "expected"),
    [
        (7.0, 0, 7, 7.0),  # no chaos: the job's own
        (1.0, 100, 7, 1.0),  # no guidance: it stays off
        (0.0, 100, 7, 0.0),
        (7.0, 50, 7, 6.47),  # 1 + 6 * (1 + 0.5 * -0.176...)
        (7.0, 100, 7, 5.94),  # 1 + 6 * (1 - 0.176...)
        (30.0, 100, 0, MAX_CHAOS_CFG),  # never above the highest --cfg
    ],
)
def test_chaos_cfg_table(cfg: float, chaos: int, seed: int, expected: float) -> None:
    """Each image's CFG scale follows the documented formula, rounded to two decimals."""
    if (cfg, seed) == (30.0, 0):
        assert chaos_draws(0, 1)[0] > 0  # a seed that pushes upwards
    assert chaos_cfg(cfg, chaos, seed) == expected


@given(
    st.floats(min_value=1.01, max_value=30.0),
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_chaos_cfg_moves_at_most_half_and_keeps_guidance_on(cfg: float, chaos: int, seed: int) -> None:
    """cfg' - 1 lies within (1 ± chaos/200) of cfg - 1 (rounding aside), above 1 and at most 30."""
    jittered = chaos_cfg(cfg, chaos, seed)
    assert 1.0 < jittered <= MAX_CHAOS_CFG or math.isclose(jittered, 1.0, abs_tol=0.01)
    spread = (cfg - 1) * chaos / 200
    assert cfg - spread - 0.006 <= jittered <= min(MAX_CHAOS_CFG, cfg + spread + 0.006)
    assert chaos_cfg(cfg, chaos, seed) == jittered


@given(
    st.lists(st.floats(min_value=-100, max_value=100, allow_nan=False), min_size=1, max_size=8),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_chaos_weights_keep_their_signs(weights: list[float], chaos: int, seed: int) -> None:
    """Each weight moves by at most half of itself and keeps its sign; --chaos 0 leaves them as typed."""
    jittered = chaos_weights(weights, chaos, seed)
    for weight, moved in zip(weights, jittered, strict=True):
        assert abs(moved - weight) <= abs(weight) * chaos / 200 + 1e-9
        assert (weight > 0) == (moved > 0) and (weight < 0) == (moved < 0)
    assert chaos_weights(weights, 0, seed) == tuple(weights)


BLENDS = [
    (  # --no x is x::-0.5: the negative side is exactly x
        [("a cat", 1.0), ("blur", -0.5)],
        "",
        ImageConditioning((("a cat", 1.0),), (("blur", 1.0),)),
    ),
    (  # weights are relative
        [("a cat", 1.0), ("a dog", 3.0)],
        "",
        ImageConditioning((("a cat", 0.25), ("a dog", 0.75)), (("", 1.0),)),
    ),
    (
        [("a cat", 10.0), ("a dog", 30.0)],
        "",
        ImageConditioning((("a cat", 0.25), ("a dog", 0.75)), (("", 1.0),)),
    ),
    (  # half as strong as --no
        [("a cat", 1.0), ("blur", -0.25)],
        "",
        ImageConditioning((("a cat", 1.0),), (("", 0.5), ("blur", 0.5))),
    ),
    (  # --no counts as -0.5 against the positive total (2 here: half as strong as on a plain prompt)
        [("a cat", 1.0), ("a dog", 1.0)],
        "blur",
        ImageConditioning((("a cat", 0.5), ("a dog", 0.5)), (("", 0.5), ("blur", 0.5))),
    ),
    (  # two negatives, weighted among themselves; strength 0.9 / 0.5 = 1.8 extrapolates past them
        [("a cat", 1.0), ("blur", -0.6), ("text", -0.3)],
        "",
        ImageConditioning((("a cat", 1.0),), (("", 1.0 - 1.8), ("blur", 1.2), ("text", 0.6))),
    ),
    (  # a weight of 0 is left out; equal texts add up; LoRA tags are not text
        [("a cat <lora:ink:0.5>", 1.0), ("a  cat", 1.0), ("a dog", 0.0)],
        "",
        ImageConditioning((("a cat", 1.0),), (("", 1.0),)),
    ),
]


@pytest.mark.parametrize(("parts", "negative", "expected"), BLENDS)
def test_blend_table(parts: list[tuple[str, float]], negative: str, expected: ImageConditioning) -> None:
    """Each multi-prompt becomes the documented combination of embeddings on each side."""
    result = blend(parts, negative)
    assert [text for text, _c in result.positive] == [text for text, _c in expected.positive]
    assert [text for text, _c in result.negative] == [text for text, _c in expected.negative]
    assert [c for _t, c in result.positive] == pytest.approx([c for _t, c in expected.positive])
    assert [c for _t, c in result.negative] == pytest.approx([c for _t, c in expected.negative])


def test_blend_caps_the_negative_strength() -> None:
    """Jittered weights may push the negatives past the positives: the strength stops at 2."""
    result = blend([("a cat", 1.0), ("blur", -5.0)])
    assert result.negative == (("", -1.0), ("blur", 2.0))


def test_blend_without_a_positive_part_is_an_error() -> None:
    """The parser never sends one; the engine refuses it plainly."""
    with pytest.raises(ValueError, match="positive weight"):
        blend([("blur", -0.5)])


def _task(**changes: object) -> RenderTask:
    task = RenderTask(1, "a cat", "", 64, 64, 4, 7.0, (7, 8), "euler_a", "/tmp/out")
    return RenderTask(**{**task.__dict__, **changes})  # type: ignore[arg-type]


def test_image_conditionings_per_image_and_none_for_plain_prompts() -> None:
    """A plain task has none (the plain path renders it); a multi-prompt gets one per image, jittered by chaos."""
    assert image_conditionings([_task()]) is None
    parts = (("a cat", 1.0), ("a dog", 1.0))
    steady = image_conditionings([_task(weighted_prompts=parts)])
    assert steady is not None and steady[0] == steady[1]
    chaotic = image_conditionings([_task(weighted_prompts=parts, chaos=100)])
    assert chaotic is not None and chaotic[0] != chaotic[1]
    assert chaotic == image_conditionings([_task(weighted_prompts=parts, chaos=100)])


def test_image_cfgs_and_the_guidance_of_a_call() -> None:
    """Without chaos the call's guidance is the job's float; with it one scale per image, the float the largest."""
    assert image_guidance([_task()]) == 7.0 and type(image_guidance([_task()])) is float
    task = _task(chaos=100)
    guidance = image_guidance([task])
    assert isinstance(guidance, PerImageGuidance)
    assert guidance.scales == tuple(image_cfgs([task])) == (chaos_cfg(7.0, 100, 7), chaos_cfg(7.0, 100, 8))
    assert float(guidance) == max(guidance.scales) and guidance > 1


def test_per_image_guidance_scales_each_row() -> None:
    """Multiplying a batch scales row i by image i's CFG; a batch of another size is a clear error."""
    guidance = PerImageGuidance([2.0, 3.0])
    batch = torch.ones(2, 4, 8, 8)
    scaled = guidance * batch
    assert torch.equal(scaled[0], torch.full((4, 8, 8), 2.0)) and torch.equal(scaled[1], torch.full((4, 8, 8), 3.0))
    assert guidance * 2 == 6.0
    with pytest.raises(ValueError, match="one row per image"):
        _ = guidance * torch.ones(3, 4)
