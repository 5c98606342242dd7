"""SD3.5 and FLUX.1 in the model registry: the built-in entries, the defaults an owner's ``family = "sd3"`` or
``"flux"`` entry gets (the flow sampler, sizes in multiples of 16), and what such an entry may not set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.requests.sizing import size_for_aspect
from config.model_registry import BUILTIN_MODELS, ModelSpec
from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("name", "source", "family", "steps", "cfg", "max_cfg", "base_size", "multiple"),
    [
        ("sd35-medium", "stabilityai/stable-diffusion-3.5-medium", "sd3", 28, 4.5, None, 1024, 16),
        ("flux-schnell", "black-forest-labs/FLUX.1-schnell", "flux", 4, 0.0, 0.0, 1024, 16),
        ("flux-dev", "black-forest-labs/FLUX.1-dev", "flux", 28, 3.5, 10.0, 1024, 16),
        ("tiny-sd3", "tiny:sd3", "sd3", 4, 4.5, None, 64, 8),
        ("tiny-flux", "tiny:flux", "flux", 4, 3.5, 10.0, 64, 8),
    ],
)
def test_built_in_flow_models(
    name: str, source: str, family: str, steps: int, cfg: float, max_cfg: float | None, base_size: int, multiple: int
) -> None:
    """Each built-in SD3.5/FLUX.1 entry: its hub id or tiny source, family, steps, guidance and size; the flow
    Euler sampler only; sizes in multiples of 16 (8 on the tiny models, whose VAE factor is 2)."""
    spec = BUILTIN_MODELS[name]
    assert (spec.source, spec.family, spec.steps, spec.cfg, spec.max_cfg, spec.base_size) == (
        source,
        family,
        steps,
        cfg,
        max_cfg,
        base_size,
    )
    assert (spec.samplers, spec.default_sampler, spec.size_multiple) == (["euler"], "euler", multiple)


def test_flux_schnell_takes_at_most_four_steps() -> None:
    """FLUX.1-schnell is timestep-distilled: 1 to 4 steps, as its model card says."""
    assert BUILTIN_MODELS["flux-schnell"].step_limit(150) == 4


def test_an_owners_flow_entry_gets_the_familys_sampler_and_size_multiple(tmp_path: Path) -> None:
    """``[models.NAME] family = "flux"`` with a source alone: the flow Euler sampler, multiples of 16."""
    settings = make_settings(tmp_path, models={"mine": {"source": "someone/flux-finetune", "family": "flux"}})
    spec = settings.registry["mine"]
    assert (spec.samplers, spec.default_sampler, spec.size_multiple) == (["euler"], "euler", 16)
    assert spec.allows_sampler("euler") and not spec.allows_sampler("euler_a")


@pytest.mark.parametrize(
    ("aspect", "size"),
    [((1, 1), (1024, 1024)), ((3, 2), (1248, 832)), ((16, 9), (1360, 768)), ((2, 3), (832, 1248))],
)
def test_a_flow_models_sizes_are_multiples_of_16(aspect: tuple[int, int], size: tuple[int, int]) -> None:
    """What the VAE factor 8 and the 2×2 patches of the full-size models need, at every aspect ratio."""
    spec = BUILTIN_MODELS["flux-dev"]
    width, height = size_for_aspect(aspect, spec.base_size, spec.size_multiple)
    assert (width, height) == size
    assert width % 16 == 0 and height % 16 == 0


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        (
            {"family": "flux", "sampler": "euler_a"},
            "sampler 'euler_a' does not work with flux models; use some of: euler",
        ),
        ({"family": "sd3", "samplers": ["euler", "dpmpp_2m"]}, "sampler 'dpmpp_2m' does not work with sd3 models"),
        ({"family": "sd3", "size_multiple": 8}, "size_multiple 8 does not suit sd3 models; use a multiple of 16"),
        ({"family": "sd3", "ip_adapter": "tiny-ip-adapter"}, "ip_adapter does not work on sd3 models yet"),
    ],
)
def test_what_a_flow_entry_may_not_set_is_refused(fields: dict[str, object], fragment: str) -> None:
    """A sampler that is not flow-matching, sizes the transformer cannot take, a fused LoRA: configuration errors
    saying what to change."""
    with pytest.raises(ValidationError) as caught:
        ModelSpec(source="someone/model", **fields)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_a_flow_entry_may_set_a_larger_size_multiple() -> None:
    """Multiples of 32 are multiples of 16 too; a tiny test model may use 8."""
    assert ModelSpec(source="someone/model", family="sd3", size_multiple=32).size_multiple == 32
    assert ModelSpec(source="tiny:flux", family="flux", size_multiple=8).size_multiple == 8


def test_the_unet_families_keep_every_sampler() -> None:
    """An SD1.5 entry without samplers still allows every sampler, euler_a first."""
    spec = ModelSpec(source="tiny:sd15")
    assert (spec.samplers, spec.default_sampler, spec.size_multiple) == ([], "euler_a", 8)
    assert spec.allows_sampler("dpmpp_2m_karras")
