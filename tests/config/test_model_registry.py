"""Model registry entries: per-model sampler, step and CFG limits, the LoRA a model fuses, and the built-in turbo and
LCM-LoRA models."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.model_registry import BUILTIN_MODELS, ModelSpec

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "bot.example.toml"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"steps": 6, "max_steps": 4}, "steps 6 is above max_steps 4"),
        ({"cfg": 7.0, "max_cfg": 1.0}, "cfg 7 is above max_cfg 1"),
        ({"sampler": "euler_b"}, "sampler 'euler_b' is not a sampler; use one of: euler_a"),
        ({"samplers": ["lcm", "heun"]}, "samplers names 'heun'"),
        ({"samplers": ["lcm"]}, "the default sampler 'euler_a' is not in samplers (lcm); set sampler"),
        ({"sampler": "ddim", "samplers": ["lcm"]}, "the default sampler 'ddim' is not in samplers"),
        ({"max_steps": 0}, "greater than or equal to 1"),
        ({"fuse_lora_scale": 0}, "greater than 0"),
    ],
)
def test_an_entry_whose_defaults_break_its_own_limits_is_refused(fields: dict[str, object], fragment: str) -> None:
    """A default above the model's limit, or a sampler nobody knows, is a configuration error naming both."""
    with pytest.raises(ValidationError) as caught:
        ModelSpec(source="tiny:sd15", **fields)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "steps", "cfg", "sampler"),
    [
        ({}, (60, 2), (30.0, 0.5), "euler_a"),
        ({"steps": 1, "max_steps": 4, "cfg": 0.0, "max_cfg": 1.0}, (4, 2), (1.0, 0.5), "euler_a"),
        ({"steps": 4, "max_steps": 8, "sampler": "lcm"}, (8, 2), (30.0, 0.5), "lcm"),
    ],
)
def test_limits_are_the_models_within_the_servers(
    fields: dict[str, object], steps: tuple[int, int], cfg: tuple[float, float], sampler: str
) -> None:
    """step_limit and cfg_limit take the lower of the model's and the server's; the default sampler is euler_a."""
    spec = ModelSpec(source="tiny:sd15", **fields)  # type: ignore[arg-type]
    assert (spec.step_limit(60), spec.step_limit(2)) == steps
    assert (spec.cfg_limit(30.0), spec.cfg_limit(0.5)) == cfg
    assert spec.default_sampler == sampler


@pytest.mark.parametrize(
    ("name", "source", "family", "base_size", "fuse_lora"),
    [
        ("sd-turbo", "stabilityai/sd-turbo", "sd2", 512, ""),
        ("sdxl-turbo", "stabilityai/sdxl-turbo", "sdxl", 512, ""),
        ("tiny-turbo", "tiny:sd-turbo", "sd2", 64, ""),
    ],
)
def test_built_in_turbo_models(name: str, source: str, family: str, base_size: int, fuse_lora: str) -> None:
    """Turbo models: 1 step (at most 4), CFG 0 (at most 1), Euler a with trailing timesteps, Euler trailing too."""
    spec = BUILTIN_MODELS[name]
    assert (spec.source, spec.family, spec.base_size, spec.fuse_lora) == (source, family, base_size, fuse_lora)
    assert (spec.steps, spec.max_steps, spec.cfg, spec.max_cfg) == (1, 4, 0.0, 1.0)
    assert (spec.default_sampler, spec.samplers) == ("euler_a_trailing", ["euler_a_trailing", "euler_trailing"])


@pytest.mark.parametrize(
    ("name", "base", "lora", "base_size"),
    [
        ("sd15-lcm", "sd15", "latent-consistency/lcm-lora-sdv1-5", 512),
        ("sdxl-lcm", "sdxl", "latent-consistency/lcm-lora-sdxl", 1024),
    ],
)
def test_built_in_lcm_lora_models(name: str, base: str, lora: str, base_size: int) -> None:
    """LCM-LoRA models: the base model's weights with the LCM-LoRA fused in, LCM only, 4 steps (8 at most), CFG 1
    (2 at most)."""
    spec = BUILTIN_MODELS[name]
    assert (spec.source, spec.family) == (BUILTIN_MODELS[base].source, BUILTIN_MODELS[base].family)
    assert (spec.fuse_lora, spec.fuse_lora_scale, spec.base_size) == (lora, 1.0, base_size)
    assert (spec.steps, spec.max_steps, spec.cfg, spec.max_cfg) == (4, 8, 1.0, 2.0)
    assert (spec.default_sampler, spec.samplers) == ("lcm", ["lcm"])


def test_the_examples_commented_turbo_and_lcm_models_are_valid_entries() -> None:
    """The [models.*] examples of config/bot.example.toml, uncommented, are entries the registry accepts."""
    lines, inside = [], False
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        header = re.fullmatch(r"# \[models\.[\w-]+\]", line) is not None
        inside = header or (inside and (line == "#" or re.match(r"# \w+ = ", line) is not None))
        if inside:
            lines.append(line.removeprefix("#").removeprefix(" "))
    examples = tomllib.loads("\n".join(lines))["models"]
    assert {"turbo-dreamshaper", "dreamshaper-lcm"} <= set(examples)
    for name, fields in examples.items():
        spec = ModelSpec(**fields)
        assert spec.source, name
    assert ModelSpec(**examples["dreamshaper-lcm"]).fuse_lora == "latent-consistency/lcm-lora-sdv1-5"
    assert ModelSpec(**examples["turbo-dreamshaper"]).default_sampler == "euler_a_trailing"
