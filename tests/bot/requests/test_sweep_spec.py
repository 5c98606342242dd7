"""Parsing ``--sweep`` specs under the server's limits, and what a sweep renders (cells, steps, prompts)."""

from __future__ import annotations

import pytest

from bot.requests.sweep_spec import SweepLimits, cell_steps, parse_sweep, parse_sweeps, rendered_prompts, sweep_cells
from bot.running.engine_host import restart_delay

LIMITS = SweepLimits(max_steps=60, max_cfg=30.0, samplers=("euler", "euler_a", "ddim"))


@pytest.mark.parametrize(
    ("spec", "axis"),
    [
        ("cfg=3,5,7", ("cfg", ("3", "5", "7"))),
        (" Steps = 10, 20 ", ("steps", ("10", "20"))),
        ("sampler=Euler,ddim", ("sampler", ("euler", "ddim"))),
        ("prompt=fox,cat", ("prompt", ("fox", "cat"))),
        ("seed=1,2", ("seed", ("1", "2"))),
        ("strength=0.3,0.6", ("strength", ("0.3", "0.6"))),
        ("steps=060,1", ("steps", ("60", "1"))),  # canonical numbers, at the limit
        ("cfg=7.50,0,30", ("cfg", ("7.5", "0", "30"))),
        ("seed=0,4294967295", ("seed", ("0", "4294967295"))),
        ("strength=1", ("strength", ("1",))),
    ],
)
def test_parse_sweep(spec: str, axis: tuple[str, tuple[str, ...]]) -> None:
    """Values within the limits come back canonical."""
    assert parse_sweep(spec, LIMITS) == axis


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("cfg", "not of the form AXIS=V1,V2"),
        ("size=1,2", "axis 'size' is not one of"),
        ("cfg=", "has no values"),
        ("cfg=3,x", "value 'x' is not a number"),
        ("cfg=nan", "not a number"),
        ("cfg=inf", "not a number"),
        ("cfg=30.5", "use numbers from 0 to 30"),
        ("cfg=-1", "use numbers from 0 to 30"),
        ("steps=0,10", "use a whole number from 1 to 60"),
        ("steps=61", "use a whole number from 1 to 60"),
        ("steps=150", "use a whole number from 1 to 60"),
        ("steps=2.5", "use a whole number from 1 to 60"),
        ("steps=1" + "0" * 30, "use a whole number from 1 to 60"),
        ("seed=-1", "from 0 to 4294967295"),
        ("seed=4294967296", "from 0 to 4294967295"),
        ("strength=0", "above 0 and at most 1"),
        ("strength=1.01", "above 0 and at most 1"),
        ("sampler=warp", "sweep sampler 'warp' is not a sampler here"),
        ("cfg=3,3.0", "repeats a value"),
        ("steps=10,010", "repeats a value"),
        ("prompt=fox," + "x" * 201, "at most 200 characters"),
        ("seed=" + ",".join(map(str, range(17))), "at most 16"),
    ],
)
def test_parse_sweep_errors(spec: str, fragment: str) -> None:
    """Every swept value obeys the limit of its flag; the message says what to write."""
    with pytest.raises(ValueError, match=fragment):
        parse_sweep(spec, LIMITS)


def test_parse_sweeps_limits() -> None:
    """At most three different axes and ``max_cells`` images."""
    assert len(parse_sweeps(["cfg=3,5", "steps=2,4", "seed=1,2"], LIMITS)) == 3
    with pytest.raises(ValueError, match="at most 3 axes"):
        parse_sweeps(["cfg=3", "steps=2", "seed=1", "strength=0.5"], LIMITS)
    with pytest.raises(ValueError, match="appears twice"):
        parse_sweeps(["cfg=3", "cfg=4"], LIMITS)
    with pytest.raises(ValueError, match="makes 100 images"):
        parse_sweeps(["cfg=" + ",".join(map(str, range(10))), "seed=" + ",".join(map(str, range(10)))], LIMITS)
    assert len(parse_sweeps(["seed=" + ",".join(map(str, range(8))), "cfg=" + ",".join(map(str, range(8)))])) == 2


def test_cells_steps_and_prompts_follow_the_engine() -> None:
    """Cells in product order (the last axis changes fastest); each cell's steps; the prompts a sweep renders."""
    axes = parse_sweeps(["steps=10,20", "prompt=fox,cat"], LIMITS)
    assert sweep_cells(axes) == [
        {"steps": "10", "prompt": "fox"},
        {"steps": "10", "prompt": "cat"},
        {"steps": "20", "prompt": "fox"},
        {"steps": "20", "prompt": "cat"},
    ]
    assert cell_steps(axes, 25) == [10, 10, 20, 20]
    assert cell_steps(parse_sweeps(["cfg=3,5"], LIMITS), 25) == [25, 25]
    assert rendered_prompts("a red fox", axes) == ["a red fox", "a red cat"]
    assert rendered_prompts("a red fox", ()) == ["a red fox"]
    with pytest.raises(ValueError, match="'owl' \\(the first value\\) does not occur in the prompt"):
        rendered_prompts("a red fox", parse_sweeps(["prompt=owl,cat"], LIMITS))


def test_restart_delay_doubles_up_to_a_cap() -> None:
    assert [restart_delay(n) for n in range(5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert restart_delay(50) == 30.0
