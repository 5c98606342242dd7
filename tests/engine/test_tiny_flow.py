"""The tiny SD3.5 and FLUX.1 models of :mod:`engine.tiny_flow`: built offline, saved as diffusers folders, loaded back
through ``AutoPipelineForText2Image`` and rendering deterministically at 64×64 on the CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoPipelineForText2Image, FluxPipeline, StableDiffusion3Pipeline
from safetensors.torch import load_file
from transformers import T5Tokenizer

from engine.tiny import ensure_tiny_model
from engine.tiny_flow import FLUX_VAE, SD3_VAE, build_tiny_flux, build_tiny_sd3

PIPELINES = {"sd3": StableDiffusion3Pipeline, "flux": FluxPipeline}
T5_FOLDERS = {"sd3": "tokenizer_3", "flux": "tokenizer_2"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each tiny flow model built once, through ensure_tiny_model as ``tiny:sd3`` / ``tiny:flux`` are."""
    root = tmp_path_factory.mktemp("tiny-flow")
    return {family: ensure_tiny_model(family, root) for family in PIPELINES}


@pytest.fixture(scope="module")
def pipes(folders: dict[str, Path]) -> dict[str, object]:
    loaded = {}
    for family, folder in folders.items():
        pipe = AutoPipelineForText2Image.from_pretrained(folder)
        pipe.set_progress_bar_config(disable=True)
        loaded[family] = pipe
    return loaded


def _render(pipe: object, seed: int, prompt: str = "a red fox", images: int = 1) -> np.ndarray:
    result = pipe(  # type: ignore[operator]
        [prompt] * images,
        num_inference_steps=4,
        guidance_scale=3.5,
        width=64,
        height=64,
        generator=[torch.Generator("cpu").manual_seed(seed + i) for i in range(images)],
        output_type="np",
    )
    return result.images


@pytest.mark.parametrize("family", PIPELINES)
def test_the_folder_is_a_complete_diffusers_pipeline_with_a_16_channel_vae(
    folders: dict[str, Path], family: str
) -> None:
    """model_index names the family's pipeline; the VAE has 16 latent channels and the real model's scale and
    shift, no quantization convolutions; the scheduler is flow-matching Euler; weights are safetensors only."""
    folder = folders[family]
    index = json.loads((folder / "model_index.json").read_text())
    vae = json.loads((folder / "vae" / "config.json").read_text())
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert index["_class_name"] == PIPELINES[family].__name__
    assert (vae["latent_channels"], vae["use_quant_conv"], vae["use_post_quant_conv"]) == (16, False, False)
    expected = SD3_VAE if family == "sd3" else FLUX_VAE
    assert (vae["scaling_factor"], vae["shift_factor"]) == (expected["scaling_factor"], expected["shift_factor"])
    assert scheduler["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    assert scheduler["use_dynamic_shifting"] is (family == "flux")
    assert not list(folder.rglob("*.bin"))


def test_the_sd3_transformer_is_sd35_mediums_architecture(folders: dict[str, Path]) -> None:
    """Two CLIP encoders of different widths whose pooled outputs together condition the MMDiT, a T5 at least as
    wide as both CLIPs together (the pipeline pads them to it), SD3.5-medium's dual attention and RMS q/k norm."""
    folder = folders["sd3"]
    transformer = json.loads((folder / "transformer" / "config.json").read_text())
    clip_l = json.loads((folder / "text_encoder" / "config.json").read_text())
    clip_g = json.loads((folder / "text_encoder_2" / "config.json").read_text())
    t5 = json.loads((folder / "text_encoder_3" / "config.json").read_text())
    assert clip_l["hidden_size"] != clip_g["hidden_size"]
    assert transformer["pooled_projection_dim"] == clip_l["projection_dim"] + clip_g["projection_dim"]
    assert transformer["joint_attention_dim"] == t5["d_model"] >= clip_l["hidden_size"] + clip_g["hidden_size"]
    assert (transformer["in_channels"], transformer["patch_size"]) == (16, 2)
    assert (transformer["dual_attention_layers"], transformer["qk_norm"]) == ([0], "rms_norm")


def test_the_flux_transformer_takes_packed_latents_and_guidance(folders: dict[str, Path]) -> None:
    """FLUX.1-dev's shape: 2×2-packed 16-channel latents (64 inputs), a guidance embedding, rotary axes adding up
    to the head width, the CLIP's pooled output and the T5's width as its two conditionings."""
    folder = folders["flux"]
    transformer = json.loads((folder / "transformer" / "config.json").read_text())
    clip = json.loads((folder / "text_encoder" / "config.json").read_text())
    t5 = json.loads((folder / "text_encoder_2" / "config.json").read_text())
    assert (transformer["in_channels"], transformer["guidance_embeds"]) == (64, True)
    assert sum(transformer["axes_dims_rope"]) == transformer["attention_head_dim"]
    assert transformer["pooled_projection_dim"] == clip["hidden_size"]
    assert transformer["joint_attention_dim"] == t5["d_model"]


@pytest.mark.parametrize("family", PIPELINES)
def test_the_t5_tokenizer_is_built_offline_and_ends_each_prompt(folders: dict[str, Path], family: str) -> None:
    """The saved T5 tokenizer loads back, pads with id 0, ends with </s> (id 1), truncates at max_length and
    decodes ASCII text back."""
    tokenizer = T5Tokenizer.from_pretrained(folders[family] / T5_FOLDERS[family])
    ids = tokenizer("A red fox, 35mm!").input_ids
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, ids[-1]) == (0, 1, 1)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "A red fox, 35mm!"
    long = tokenizer("word " * 400, padding="max_length", max_length=256, truncation=True).input_ids
    assert len(long) == 256 and long[-1] == 1


@pytest.mark.parametrize("family", PIPELINES)
def test_it_loads_through_the_auto_pipeline_and_renders_deterministically(
    pipes: dict[str, object], family: str
) -> None:
    """The Auto pipeline picks the family's pipeline; one seed gives the same pixels, another seed others."""
    pipe = pipes[family]
    assert type(pipe) is PIPELINES[family]
    first = _render(pipe, 1234)
    assert first.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(first, _render(pipe, 1234))
    assert not np.array_equal(first, _render(pipe, 4321))


@pytest.mark.parametrize("family", PIPELINES)
def test_four_images_in_four_steps_take_well_under_a_second_per_step(pipes: dict[str, object], family: str) -> None:
    """What a tiny /imagine job renders (4 images, 64×64, 4 steps) costs under a second of CPU per step."""
    pipe = pipes[family]
    started = time.process_time()
    images = _render(pipe, 7, images=4)
    assert images.shape == (4, 64, 64, 3)
    assert (time.process_time() - started) / 4 < 1.0


@pytest.mark.parametrize(("family", "build"), [("sd3", build_tiny_sd3), ("flux", build_tiny_flux)])
def test_the_build_is_deterministic_per_seed(tmp_path: Path, family: str, build: object) -> None:
    """The same seed gives the same transformer weights, another seed others."""
    weights = "transformer/diffusion_pytorch_model.safetensors"
    first = load_file(build(tmp_path / "a", seed=3) / weights)  # type: ignore[operator]
    second = load_file(build(tmp_path / "b", seed=3) / weights)  # type: ignore[operator]
    assert first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)
    other = load_file(build(tmp_path / "c", seed=4) / weights)  # type: ignore[operator]
    assert any(not torch.equal(first[key], other[key]) for key in first)
