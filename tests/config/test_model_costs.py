"""A model's cost_multiplier defaults from its family's GPU time relative to SD1.5; an explicit one wins."""

from __future__ import annotations

import pytest

from config.model_costs import RELATIVE_IMAGE_SECONDS, default_cost_multiplier, family_cost_multiplier
from config.model_registry import BUILTIN_MODELS, ModelSpec


@pytest.mark.parametrize(
    ("family", "multiplier"), [("sd15", 1.0), ("sd2", 1.0), ("sdxl", 1.0), ("sd3", 1.2), ("flux", 5.1), ("new", 1.0)]
)
def test_family_cost_multiplier(family: str, multiplier: float) -> None:
    """GPU seconds per 512²x20-step unit of work relative to SD1.5, per family."""
    assert family_cost_multiplier(family) == multiplier


def test_relative_image_seconds_are_the_measured_ones_where_measured() -> None:
    """SD1.5 is the unit and SDXL's figure is the H100 measurement (3.51 s / 0.85 s for 4 images)."""
    assert RELATIVE_IMAGE_SECONDS["sd15"].relative_seconds == 1.0
    assert RELATIVE_IMAGE_SECONDS["sdxl"].relative_seconds == pytest.approx(3.51 / 0.85, abs=0.01)
    assert [family for family, entry in RELATIVE_IMAGE_SECONDS.items() if entry.measured] == ["sd15", "sdxl"]


@pytest.mark.parametrize(
    ("name", "multiplier"),
    [("sd15", 1.0), ("sdxl", 1.0), ("sd35-medium", 1.2), ("flux-dev", 5.1), ("flux-schnell", 5.1), ("tiny-flux", 1.0)],
)
def test_builtin_models_cost_their_family(name: str, multiplier: float) -> None:
    """The built-in entries take their family's default; tiny test models cost 1.0."""
    assert BUILTIN_MODELS[name].cost_multiplier == multiplier


@pytest.mark.parametrize(
    ("fields", "multiplier"),
    [
        ({"source": "org/flux", "family": "flux"}, 5.1),
        ({"source": "org/flux", "family": "flux", "cost_multiplier": 2.0}, 2.0),
        ({"source": "org/sd3", "family": "sd3", "cost_multiplier": 1.0}, 1.0),
        ({"source": "tiny:flux", "family": "flux"}, 1.0),
    ],
)
def test_an_explicit_cost_multiplier_wins(fields: dict[str, object], multiplier: float) -> None:
    """An entry's own cost_multiplier is kept; without one it gets the family's."""
    assert ModelSpec(**fields).cost_multiplier == multiplier  # type: ignore[arg-type]


def test_default_cost_multiplier_of_a_tiny_source() -> None:
    """A tiny test model of any family costs 1.0."""
    assert default_cost_multiplier("flux", "tiny:flux") == 1.0
    assert default_cost_multiplier("flux", "/models/flux") == 5.1
