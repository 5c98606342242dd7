"""Sweeps: parse ``--sweep "cfg=3,5,7"`` specs into axes under this server's limits, and the rules that say what a
sweep will render (its cells, their steps and their prompts). Pure: no I/O, no torch.

The engine (``engine/sweep.py``) turns the same axes into single-image tasks; the rules here mirror it so that a
sweep is priced by the work it really does and every prompt it will render is checked before anything is charged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

SWEEP_AXES: tuple[str, ...] = ("seed", "cfg", "steps", "sampler", "prompt", "strength")
MAX_AXES = 3
MAX_CELLS = 64
MAX_VALUES = 16
MAX_PROMPT_VALUE_CHARS = 200
MAX_SEED = 2**32 - 1

Axis = tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class SweepLimits:
    """What a sweep may ask for: the same limits as the flags (``--steps``, ``--cfg``, ``--sampler``)."""

    max_steps: int = 60
    max_cfg: float = 30.0
    samplers: Collection[str] | None = None
    """Known sampler names; None accepts any well-formed name (the engine checks)."""
    max_cells: int = MAX_CELLS


def parse_sweep(spec: str, limits: SweepLimits | None = None) -> Axis:
    """``"cfg=3,5,7"`` -> ``("cfg", ("3", "5", "7"))``. Raises ValueError naming what to write instead.

    Numbers come back in a canonical form (``07`` -> ``7``) so that repeats are found. ``prompt=fox,cat,owl`` is a
    search/replace axis (A1111's Prompt S/R): the first value is searched in the prompt and each value in turn
    replaces it.
    """
    limits = limits or SweepLimits()
    name, sep, rest = spec.partition("=")
    name = name.strip().lower()
    if not sep or not name:
        raise ValueError(f"sweep {spec!r} is not of the form AXIS=V1,V2 (e.g. cfg=3,5,7)")
    if name not in SWEEP_AXES:
        raise ValueError(f"sweep axis {name!r} is not one of: {', '.join(SWEEP_AXES)}")
    values = tuple(value.strip() for value in rest.split(",") if value.strip())
    if not values:
        raise ValueError(f"sweep {spec!r} has no values; write e.g. {name}=1,2,3")
    if len(values) > MAX_VALUES:
        raise ValueError(f"sweep {name} has {len(values)} values; at most {MAX_VALUES}")
    values = tuple(_check_value(name, value, limits) for value in values)
    if len(set(values)) != len(values):
        raise ValueError(f"sweep {name} repeats a value: {', '.join(values)}")
    return name, values


def _check_value(name: str, value: str, limits: SweepLimits) -> str:
    """One value of an axis, checked against the limit its flag has, in canonical form."""
    if name == "seed":
        return str(_whole(name, value, 0, MAX_SEED, f"a whole number from 0 to {MAX_SEED}"))
    if name == "steps":
        return str(_whole(name, value, 1, limits.max_steps, f"a whole number from 1 to {limits.max_steps}"))
    if name == "cfg":
        number = _number(name, value)
        if not 0.0 <= number <= limits.max_cfg:
            raise ValueError(f"sweep cfg value {value} is out of range: use numbers from 0 to {limits.max_cfg:g}")
        return f"{number:g}"
    if name == "strength":
        number = _number(name, value)
        if not 0.0 < number <= 1.0:
            raise ValueError(f"sweep strength value {value} is out of range: use numbers above 0 and at most 1")
        return f"{number:g}"
    if name == "sampler":
        sampler = value.lower()
        if limits.samplers is not None and sampler not in limits.samplers:
            known = ", ".join(limits.samplers)
            raise ValueError(f"sweep sampler {value!r} is not a sampler here; use some of: {known}")
        return sampler
    if len(value) > MAX_PROMPT_VALUE_CHARS:
        raise ValueError(f"sweep prompt values are at most {MAX_PROMPT_VALUE_CHARS} characters each")
    return value


def _whole(name: str, value: str, low: int, high: int, form: str) -> int:
    if not value.lstrip("+").isdigit() or len(value) > 12:
        raise ValueError(f"sweep {name} value {value!r} is not valid: use {form}")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"sweep {name} value {value} is out of range: use {form}")
    return number


def _number(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"sweep {name} value {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"sweep {name} value {value!r} is not a number")
    return number


def parse_sweeps(specs: Sequence[str], limits: SweepLimits | None = None) -> tuple[Axis, ...]:
    """Up to three different axes whose combinations number at most ``limits.max_cells``."""
    limits = limits or SweepLimits()
    axes = tuple(parse_sweep(spec, limits) for spec in specs)
    if len(axes) > MAX_AXES:
        raise ValueError(f"a sweep has at most {MAX_AXES} axes, got {len(axes)}")
    names = [name for name, _values in axes]
    if len(set(names)) != len(names):
        raise ValueError(f"a sweep axis appears twice: {', '.join(names)}")
    cells = math.prod(len(values) for _name, values in axes)
    if cells > limits.max_cells:
        raise ValueError(f"the sweep makes {cells} images; at most {limits.max_cells}: use fewer values")
    return axes


def sweep_cells(axes: Sequence[Axis]) -> list[dict[str, str]]:
    """Every combination of the axes as name -> value, in the engine's order (the last axis changes fastest)."""
    names = [name for name, _values in axes]
    return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*(v for _n, v in axes))]


def cell_steps(axes: Sequence[Axis], base_steps: int) -> list[int]:
    """The denoising steps of each cell: the swept value, or the job's own."""
    return [int(cell.get("steps", base_steps)) for cell in sweep_cells(axes)]


def rendered_prompts(prompt: str, axes: Sequence[Axis]) -> list[str]:
    """Every distinct prompt the sweep renders (the prompt itself when no ``prompt`` axis replaces a part of it).

    Raises ValueError when the search term (the first ``prompt`` value) does not occur in the prompt.
    """
    for name, values in axes:
        if name == "prompt":
            search = values[0]
            if search not in prompt:
                raise ValueError(
                    f"sweep prompt: {search!r} (the first value) does not occur in the prompt; the first value is "
                    "the part of the prompt the others replace"
                )
            return list(dict.fromkeys(prompt.replace(search, value) for value in values))
    return [prompt]
