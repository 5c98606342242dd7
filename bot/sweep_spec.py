"""Parse ``--sweep "cfg=3,5,7"`` specs into sweep axes. Pure: no I/O, no torch."""

from __future__ import annotations

from collections.abc import Sequence

SWEEP_AXES: tuple[str, ...] = ("seed", "cfg", "steps", "sampler", "prompt", "strength")
MAX_AXES = 3
MAX_CELLS = 64
MAX_VALUES = 16

_NUMERIC: dict[str, type] = {"seed": int, "cfg": float, "steps": int, "strength": float}
_RANGES: dict[str, tuple[float, float]] = {
    "seed": (0, 2**32 - 1),
    "cfg": (0.0, 30.0),
    "steps": (1, 150),
    "strength": (0.0, 1.0),
}

Axis = tuple[str, tuple[str, ...]]


def parse_sweep(spec: str) -> Axis:
    """``"cfg=3,5,7"`` -> ``("cfg", ("3", "5", "7"))``. Raises ValueError naming what to write instead.

    ``prompt=fox,cat,owl`` is a search/replace axis (A1111's Prompt S/R): the first value is searched in the
    prompt and each value in turn replaces it.
    """
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
    if len(set(values)) != len(values):
        raise ValueError(f"sweep {name} repeats a value: {', '.join(values)}")
    kind = _NUMERIC.get(name)
    if kind is not None:
        low, high = _RANGES[name]
        for value in values:
            try:
                number = kind(value)
            except ValueError:
                raise ValueError(f"sweep {name} value {value!r} is not a {kind.__name__}") from None
            if not low <= number <= high:
                raise ValueError(f"sweep {name} value {value} is outside {low:g}..{high:g}")
    return name, values


def parse_sweeps(specs: Sequence[str], *, max_cells: int = MAX_CELLS) -> tuple[Axis, ...]:
    """Up to three different axes whose combinations number at most ``max_cells``."""
    axes = tuple(parse_sweep(spec) for spec in specs)
    if len(axes) > MAX_AXES:
        raise ValueError(f"a sweep has at most {MAX_AXES} axes, got {len(axes)}")
    names = [name for name, _values in axes]
    if len(set(names)) != len(names):
        raise ValueError(f"a sweep axis appears twice: {', '.join(names)}")
    cells = 1
    for _name, values in axes:
        cells *= len(values)
    if cells > max_cells:
        raise ValueError(f"the sweep makes {cells} images; at most {max_cells}: use fewer values")
    return axes
