"""What sizes the tiny models truly need, found by rendering through the real pipelines.

The tiny VAE has a scale factor of 2 and the tiny UNet downsamples once, so the networks alone would take any
multiple of 4 pixels; diffusers' Stable Diffusion pipelines refuse anything but multiples of 8. So 8 is the true
multiple, the same as for SD1.5 and SDXL, and ``BUILTIN_MODELS`` must say so.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from bot.requests.sizing import size_for_aspect
from config.model_registry import BUILTIN_MODELS
from engine.tiny import ensure_tiny_model

PIPELINES = {"tiny": StableDiffusionPipeline, "tiny-sdxl": StableDiffusionXLPipeline}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_tiny_models_render_every_multiple_of_8_and_nothing_finer(name: str, models_dir: Path) -> None:
    """A size that is a multiple of 8 but not of 16 renders at exactly that size; a multiple of 4 is refused."""
    spec = BUILTIN_MODELS[name]
    folder = ensure_tiny_model(spec.source.removeprefix("tiny:"), models_dir)
    pipeline = PIPELINES[name].from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    downsamplings = len(pipeline.unet.config.block_out_channels) - 1
    assert pipeline.vae_scale_factor * 2**downsamplings == 4  # what the networks alone would need
    width, height = size_for_aspect((3, 2), spec.base_size, spec.size_multiple)
    assert (width, height) == (72, 48) and width % 16  # the new --ar 3:2 size: not a multiple of 16
    for size in ((width, height), (40, 24)):
        image = pipeline("a fox", width=size[0], height=size[1], num_inference_steps=1, output_type="pil").images[0]
        assert image.size == size
    with pytest.raises(ValueError, match="divisible by 8"):
        pipeline("a fox", width=68, height=44, num_inference_steps=1)
    assert spec.size_multiple == math.lcm(8, pipeline.vae_scale_factor * 2**downsamplings)
