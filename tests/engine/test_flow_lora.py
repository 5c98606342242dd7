"""LoRAs on SD3.5 and FLUX.1 through the engine's render path, in this process: a tiny random LoRA built with peft
on each tiny transformer's attention projections, loaded by name from the registry for one job and unloaded after
it; a LoRA of another family is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from config.model_registry import BUILTIN_MODELS
from engine.pipelines import ModelCache
from engine.protocol import EngineConfig, LoraEntry, ModelEntry, RenderTask
from engine.render import Hooks, render_task
from engine.tiny import ensure_tiny_model
from tests.builders.tiny_flow_lora import build_tiny_flow_lora
from tests.flow_models import FLOW_ENTRIES, FLOW_FAMILIES, flow_engine_config


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flow-lora")


@pytest.fixture(scope="module")
def loras(root: Path) -> tuple[LoraEntry, ...]:
    """A LoRA per family, named after it (``sd3-grain``, ``flux-grain``), each saying its family."""
    entries = []
    for family in FLOW_FAMILIES.values():
        model_dir = ensure_tiny_model(family, root / "models")
        path = build_tiny_flow_lora(model_dir, family, root / "loras" / family)
        entries.append(LoraEntry(f"{family}-grain", str(path), family))
    return tuple(entries)


@pytest.fixture(scope="module")
def cache(root: Path) -> ModelCache:
    config = flow_engine_config(root)
    return ModelCache(config)


def _hooks() -> Hooks:
    return Hooks(lambda *_args: None, lambda _job_id: False)


def _render(cache: ModelCache, root: Path, model: str, prompt: str, loras: tuple[LoraEntry, ...]) -> np.ndarray:
    spec = BUILTIN_MODELS[model.removesuffix("-fused")]
    task = RenderTask(1, prompt, "", 64, 64, 2, spec.cfg, (7,), spec.default_sampler, str(root / "out"))
    rendered = render_task(cache, dataclasses.replace(task, model=model), loras, _hooks())
    image: Image.Image = rendered.images[0]
    return np.asarray(image, dtype=np.float32)


@pytest.mark.parametrize("model", FLOW_FAMILIES)
def test_a_lora_changes_the_image_and_is_unloaded_after_the_job(
    cache: ModelCache, root: Path, loras: tuple[LoraEntry, ...], model: str
) -> None:
    """`<lora:NAME:0.8>` changes the image, weights differ from each other, and the next plain job is as before."""
    name = f"{FLOW_FAMILIES[model]}-grain"
    plain = _render(cache, root, model, "a red fox", loras)
    strong = _render(cache, root, model, f"a red fox <lora:{name}:0.8>", loras)
    weak = _render(cache, root, model, f"a red fox <lora:{name}:0.2>", loras)
    after = _render(cache, root, model, "a red fox", loras)
    assert np.abs(strong - plain).max() > 8
    assert np.abs(strong - weak).max() > 0
    assert np.array_equal(after, plain)
    assert not cache.get(model).pipeline.get_list_adapters()  # nothing stays loaded


@pytest.mark.parametrize("model", FLOW_FAMILIES)
def test_a_lora_at_weight_zero_renders_as_without_it(
    cache: ModelCache, root: Path, loras: tuple[LoraEntry, ...], model: str
) -> None:
    """Weight 0 is the image without the LoRA (within rounding)."""
    name = f"{FLOW_FAMILIES[model]}-grain"
    plain = _render(cache, root, model, "a red fox", loras)
    zero = _render(cache, root, model, f"a red fox <lora:{name}:0>", loras)
    assert np.abs(zero - plain).max() <= 1


@pytest.mark.parametrize(("model", "other"), [("tiny-sd3", "flux"), ("tiny-flux", "sd3")])
def test_a_lora_of_another_family_is_refused(
    cache: ModelCache, root: Path, loras: tuple[LoraEntry, ...], model: str, other: str
) -> None:
    """A LoRA made for the other family is a ValueError naming both families (it would load only partly)."""
    with pytest.raises(ValueError, match=f"LoRA {other}-grain is for {other} models, not {FLOW_FAMILIES[model]}"):
        _render(cache, root, model, f"a red fox <lora:{other}-grain:1>", loras)


@pytest.mark.parametrize("model", FLOW_FAMILIES)
def test_a_registry_fuse_lora_renders_as_the_lora_at_full_weight(
    root: Path, loras: tuple[LoraEntry, ...], model: str
) -> None:
    """A flow model entry's ``fuse_lora`` is merged into the transformer at load: its images are the per-job LoRA's
    at weight 1 (within float rounding), and no LoRA layers stay."""
    family = FLOW_FAMILIES[model]
    [lora] = [entry for entry in loras if entry.family == family]
    spec = BUILTIN_MODELS[model]
    fused_entry = ModelEntry(f"{model}-fused", spec.source, family, fuse_lora=lora.path, base_size=spec.base_size)
    config = EngineConfig(
        model, spec.source, family, str(root), models=(*FLOW_ENTRIES, fused_entry), max_loaded_models=2
    )
    cache = ModelCache(config)
    per_job = _render(cache, root, model, f"a red fox <lora:{lora.name}:1>", loras)
    fused = _render(cache, root, fused_entry.name, "a red fox", loras)
    assert np.abs(fused - per_job).max() <= 2
    transformer = cache.get(fused_entry.name).pipeline.transformer
    assert not [name for name, _module in transformer.named_modules() if "lora" in name]
