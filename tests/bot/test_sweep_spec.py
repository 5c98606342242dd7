"""Parsing ``--sweep`` specs."""

from __future__ import annotations

import pytest

from bot.engine_supervisor import restart_delay
from bot.sweep_spec import parse_sweep, parse_sweeps


@pytest.mark.parametrize(
    ("spec", "axis"),
    [
        ("cfg=3,5,7", ("cfg", ("3", "5", "7"))),
        (" Steps = 10, 20 ", ("steps", ("10", "20"))),
        ("sampler=euler,ddim", ("sampler", ("euler", "ddim"))),
        ("prompt=fox,cat", ("prompt", ("fox", "cat"))),
        ("seed=1,2", ("seed", ("1", "2"))),
        ("strength=0.3,0.6", ("strength", ("0.3", "0.6"))),
    ],
)
def test_parse_sweep(spec: str, axis: tuple) -> None:
    assert parse_sweep(spec) == axis


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("cfg", "not of the form AXIS=V1,V2"),
        ("size=1,2", "axis 'size' is not one of"),
        ("cfg=", "has no values"),
        ("cfg=3,x", "value 'x' is not a float"),
        ("steps=0,10", "outside 1..150"),
        ("cfg=3,3", "repeats a value"),
    ],
)
def test_parse_sweep_errors(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_sweep(spec)


def test_parse_sweeps_limits() -> None:
    assert len(parse_sweeps(["cfg=3,5", "steps=2,4", "seed=1,2"])) == 3
    with pytest.raises(ValueError, match="at most 3 axes"):
        parse_sweeps(["cfg=3", "steps=2", "seed=1", "strength=0.5"])
    with pytest.raises(ValueError, match="appears twice"):
        parse_sweeps(["cfg=3", "cfg=4"])
    with pytest.raises(ValueError, match="makes 100 images"):
        parse_sweeps(["cfg=" + ",".join(map(str, range(10))), "seed=" + ",".join(map(str, range(10)))])


def test_restart_delay_doubles_up_to_a_cap() -> None:
    assert [restart_delay(n) for n in range(5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert restart_delay(50) == 30.0
