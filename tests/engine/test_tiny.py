"""Tests for the tiny in-code Stable Diffusion models in :mod:`engine.tiny`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    AutoPipelineForText2Image,
    DiffusionPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from safetensors.torch import load_file
from transformers import CLIPTokenizer

from engine import tiny
from engine.tiny import (
    TINY_FAMILIES,
    build_tiny_sd2,
    build_tiny_sd15,
    build_tiny_sd_turbo,
    build_tiny_sdxl,
    ensure_tiny_model,
)

PIPELINE_CLASSES: dict[str, type[DiffusionPipeline]] = {
    "sd15": StableDiffusionPipeline,
    "sdxl": StableDiffusionXLPipeline,
    "sd2": StableDiffusionPipeline,
    "sd-turbo": StableDiffusionPipeline,
}
BUILDERS = {"sd15": build_tiny_sd15, "sdxl": build_tiny_sdxl, "sd2": build_tiny_sd2, "sd-turbo": build_tiny_sd_turbo}
LONG_PROMPT = " ".join(f"word{i}" for i in range(200))
SD_FAMILIES = tuple(PIPELINE_CLASSES)
"""The UNet families; the flow-matching ones (sd3, flux) are tested in test_tiny_flow.py."""


@pytest.fixture(scope="module")
def built_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build each tiny family once for the whole module."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {family: ensure_tiny_model(family, root) for family in SD_FAMILIES}


def _render(pipe: DiffusionPipeline, prompt: str = "a photo of a cat", seed: int = 0) -> np.ndarray:
    """Render a 64x64 image in 4 steps and return its pixels."""
    result = pipe(
        prompt,
        num_inference_steps=4,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="pil",
    )
    image = result.images[0]
    assert image.size == (64, 64)
    assert image.mode == "RGB"
    return np.asarray(image)


def _load(family: str, path: Path) -> DiffusionPipeline:
    pipe = PIPELINE_CLASSES[family].from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_families() -> None:
    assert TINY_FAMILIES == ("sd15", "sdxl", "sd2", "sd-turbo", "sd3", "flux")


@pytest.mark.parametrize("family", SD_FAMILIES)
def test_builds_complete_diffusers_folder(built_models: dict[str, Path], family: str) -> None:
    path = built_models[family]
    assert path.name == f"tiny-{family}"
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == PIPELINE_CLASSES[family].__name__
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (path / name).is_dir(), name
    assert list((path / "unet").glob("*.safetensors"))
    assert not list(path.rglob("*.bin"))
    if family != "sdxl":
        assert index["safety_checker"] == [None, None]
        assert index["feature_extractor"] == [None, None]
        assert index["requires_safety_checker"] is False
    else:
        assert (path / "text_encoder_2").is_dir()
        assert (path / "tokenizer_2").is_dir()
    # No staging leftovers next to the model.
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(f"tiny-{f}" for f in SD_FAMILIES)


@pytest.mark.parametrize("family", SD_FAMILIES)
def test_loads_and_renders_deterministically(built_models: dict[str, Path], family: str) -> None:
    pipe = _load(family, built_models[family])
    assert type(pipe) is PIPELINE_CLASSES[family]
    first = _render(pipe, seed=1234)
    second = _render(pipe, seed=1234)
    np.testing.assert_array_equal(first, second)
    other = _render(pipe, seed=4321)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("family", SD_FAMILIES)
def test_loads_through_auto_pipeline(built_models: dict[str, Path], family: str) -> None:
    pipe = AutoPipelineForText2Image.from_pretrained(built_models[family])
    assert type(pipe) is PIPELINE_CLASSES[family]
    pipe.set_progress_bar_config(disable=True)
    _render(pipe)


@pytest.mark.parametrize("family", SD_FAMILIES)
def test_long_prompt_is_truncated(built_models: dict[str, Path], family: str) -> None:
    path = built_models[family]
    folders = ["tokenizer", "tokenizer_2"] if family == "sdxl" else ["tokenizer"]
    for folder in folders:
        tokenizer = CLIPTokenizer.from_pretrained(path / folder)
        assert tokenizer.model_max_length == 77
        ids = tokenizer(
            LONG_PROMPT, padding="max_length", max_length=tokenizer.model_max_length, truncation=True
        ).input_ids
        assert len(ids) == 77
        assert ids[0] == tokenizer.bos_token_id
        assert ids[-1] == tokenizer.eos_token_id
        # Every byte is in the vocabulary, so nothing maps to the unknown token.
        short = tokenizer("héllo, wörld? 123").input_ids  # no "!": SD2's tokenizers pad with it (a special token)
        assert tokenizer.decode(short, skip_special_tokens=True) == "héllo , wörld ? 1 2 3"
    _render(_load(family, path), prompt=LONG_PROMPT)


def test_sdxl_text_encoders_have_different_widths(built_models: dict[str, Path]) -> None:
    path = built_models["sdxl"]
    te1 = json.loads((path / "text_encoder" / "config.json").read_text())
    te2 = json.loads((path / "text_encoder_2" / "config.json").read_text())
    unet = json.loads((path / "unet" / "config.json").read_text())
    assert te1["hidden_size"] != te2["hidden_size"]
    assert unet["cross_attention_dim"] == te1["hidden_size"] + te2["hidden_size"]
    assert unet["projection_class_embeddings_input_dim"] == (
        6 * unet["addition_time_embed_dim"] + te2["projection_dim"]
    )


@pytest.mark.parametrize(
    ("family", "scheduler", "prediction", "spacing", "upcast"),
    [
        ("sd2", "DDIMScheduler", "v_prediction", "leading", True),
        ("sd-turbo", "EulerDiscreteScheduler", "epsilon", "trailing", False),
    ],
)
def test_sd2_architecture_models_are_set_up_as_sd21_is(
    built_models: dict[str, Path], family: str, scheduler: str, prediction: str, spacing: str, upcast: bool
) -> None:
    """SD2.1 (768-v) predicts v with fp32 attention; SD-Turbo predicts noise with trailing timesteps; both have
    SD2's linear projections, per-block head counts, a GELU text encoder and a tokenizer that pads with ``!``."""
    path = built_models[family]
    unet = json.loads((path / "unet" / "config.json").read_text())
    text = json.loads((path / "text_encoder" / "config.json").read_text())
    schedule = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    assert (schedule["_class_name"], schedule["prediction_type"], schedule["timestep_spacing"]) == (
        scheduler,
        prediction,
        spacing,
    )
    assert unet["upcast_attention"] is upcast
    assert unet["use_linear_projection"] is True
    assert unet["attention_head_dim"] == [2, 4]
    assert unet["cross_attention_dim"] == text["hidden_size"] != 32  # not the tiny SD1.5's width
    assert text["hidden_act"] == "gelu"
    tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer")
    assert tokenizer.pad_token == "!"
    assert text["pad_token_id"] == tokenizer.pad_token_id


@pytest.mark.parametrize("family", SD_FAMILIES)
def test_build_is_deterministic(tmp_path: Path, family: str) -> None:
    build = BUILDERS[family]
    weights = "unet/diffusion_pytorch_model.safetensors"
    first = load_file(build(tmp_path / "a", seed=7) / weights)
    second = load_file(build(tmp_path / "b", seed=7) / weights)
    assert first.keys() == second.keys()
    for key, tensor in first.items():
        assert torch.equal(tensor, second[key]), key
    different = load_file(build(tmp_path / "c", seed=8) / weights)
    assert any(not torch.equal(tensor, different[key]) for key, tensor in first.items())


def test_build_leaves_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(99)
    expected = torch.rand(4)
    torch.manual_seed(99)
    build_tiny_sd15(tmp_path / "m")
    assert torch.equal(torch.rand(4), expected)


def test_ensure_reuses_existing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ensure_tiny_model("sd15", tmp_path)
    weights = path / "unet" / "diffusion_pytorch_model.safetensors"
    mtime = weights.stat().st_mtime_ns

    def fail(*args: object, **kwargs: object) -> Path:
        raise AssertionError("must not rebuild an existing model")

    monkeypatch.setitem(tiny._BUILDERS, "sd15", fail)
    assert ensure_tiny_model("sd15", tmp_path) == path
    assert weights.stat().st_mtime_ns == mtime


def test_ensure_rebuilds_incomplete_folder(tmp_path: Path) -> None:
    target = tmp_path / "tiny-sd15"
    (target / "unet").mkdir(parents=True)
    (target / "model_index.json").write_text("{}")
    (target / "junk.txt").write_text("left over")
    path = ensure_tiny_model("sd15", tmp_path)
    assert path == target
    assert not (target / "junk.txt").exists()
    assert (target / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-sd15"]


def test_ensure_crash_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(path: Path, *, seed: int = 0) -> Path:
        (path / "model_index.json").write_text("{}")
        raise RuntimeError("boom")

    monkeypatch.setitem(tiny._BUILDERS, "sdxl", crash)
    with pytest.raises(RuntimeError, match="boom"):
        ensure_tiny_model("sdxl", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_ensure_rejects_unknown_family(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'sd4'") as excinfo:
        ensure_tiny_model("sd4", tmp_path)
    for family in TINY_FAMILIES:
        assert family in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []
