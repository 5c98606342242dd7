"""Turbo sampling on the engine: trailing timesteps start from pure noise in one step, the tiny SD-Turbo renders a
grid in one step without guidance, and the metadata names the sampler and its schedule as A1111 does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from config.model_registry import BUILTIN_MODELS
from engine.metadata import format_parameters, parameters_for
from engine.pipelines import ModelCache
from engine.protocol import EngineConfig, ModelEntry, RenderTask
from engine.render import Hooks, render_task
from engine.samplers import make_scheduler, sampler_label, schedule_label
from engine.tiny import ensure_tiny_model

TURBO = BUILTIN_MODELS["tiny-turbo"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("turbo")


@pytest.fixture(scope="module")
def leading_config(root: Path) -> dict[str, object]:
    """The scheduler config of a model sampled with leading timesteps (the tiny SD1.5's, as SD1.5's own)."""
    folder = ensure_tiny_model("sd15", root / "models")
    return json.loads((folder / "scheduler" / "scheduler_config.json").read_text())


@pytest.mark.parametrize(
    ("sampler", "steps", "timesteps"),
    [
        ("euler_a_trailing", 1, [999]),
        ("euler_trailing", 1, [999]),
        ("euler_a_trailing", 4, [999, 749, 499, 249]),
        ("euler_a", 1, [1]),  # leading: one step starts nearly at the end, which a turbo model cannot use
        ("euler_a", 4, [751, 501, 251, 1]),
        ("lcm", 4, [999, 759, 499, 259]),
    ],
)
def test_trailing_samplers_start_from_pure_noise(
    leading_config: dict[str, object], sampler: str, steps: int, timesteps: list[int]
) -> None:
    """Whatever the model's own spacing, the trailing samplers begin at timestep 999 (what turbo models need)."""
    scheduler = make_scheduler(sampler, leading_config)
    scheduler.set_timesteps(steps)
    assert [round(float(t)) for t in scheduler.timesteps] == timesteps


@pytest.mark.parametrize(
    ("sampler", "label", "schedule"),
    [
        ("euler_a_trailing", "Euler a", "SGM Uniform"),
        ("euler_trailing", "Euler", "SGM Uniform"),
        ("euler_a", "Euler a", ""),
        ("lcm", "LCM", ""),
    ],
)
def test_a1111_labels(sampler: str, label: str, schedule: str) -> None:
    """A1111 names the sampler and, apart, its schedule type (SGM Uniform is its name for trailing timesteps)."""
    assert (sampler_label(sampler), schedule_label(sampler)) == (label, schedule)


def _task(root: Path, **changes: object) -> RenderTask:
    fields: dict[str, object] = {
        "job_id": 1,
        "prompt": "a red fox",
        "negative_prompt": "",
        "width": 64,
        "height": 64,
        "steps": TURBO.steps,
        "cfg": TURBO.cfg,
        "seeds": (1, 2, 3, 4),
        "sampler": TURBO.default_sampler,
        "output_dir": str(root / "out"),
        "model": "tiny-turbo",
    }
    fields.update(changes)
    return RenderTask(**fields)  # type: ignore[arg-type]


def test_the_parameters_text_names_the_trailing_euler_a(root: Path) -> None:
    """``Sampler: Euler a`` with ``Schedule type: SGM Uniform``, 1 step, CFG 0."""
    text = format_parameters(parameters_for(_task(root), "tiny-turbo", 64, 64))
    assert "Steps: 1, Sampler: Euler a, CFG scale: 0, Seed: 1, Size: 64x64, Model: tiny-turbo" in text
    assert text.endswith(", Schedule type: SGM Uniform")


@pytest.fixture(scope="module")
def cache(root: Path) -> ModelCache:
    entry = ModelEntry("tiny-turbo", TURBO.source, TURBO.family)
    return ModelCache(EngineConfig("tiny-turbo", TURBO.source, TURBO.family, str(root), models=(entry,)))


def test_the_tiny_turbo_renders_four_images_in_one_step_without_guidance(cache: ModelCache, root: Path) -> None:
    """One denoising step for the grid, one UNet pass per image (no unconditional half at CFG 0), four images that
    differ by seed."""
    steps: list[tuple[int, int]] = []
    calls: list[int] = []
    unet = cache.get("tiny-turbo").pipeline.unet
    handle = unet.register_forward_hook(lambda _module, args, _output: calls.append(args[0].shape[0]))
    try:
        rendered = render_task(
            cache, _task(root), (), Hooks(lambda _job, step, total, _p: steps.append((step, total)), lambda _j: False)
        )
    finally:
        handle.remove()
    assert steps == [(1, 1)]
    assert calls == [4]
    assert [image.size for image in rendered.images] == [(64, 64)] * 4
    pixels = [np.asarray(image).astype(int) for image in rendered.images]
    assert all(np.abs(pixels[0] - other).max() > 0 for other in pixels[1:])
    assert [(info.steps, info.cfg, info.sampler) for info in rendered.infos] == [(1, 0.0, "euler_a_trailing")] * 4
