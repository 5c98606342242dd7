"""The SD3/FLUX.1 parts of the engine as pure pieces: the family of a pipeline class, the flow sampler, FLUX.1's
packed latents unpacked for previews, the 16-channel projections, and what a single file lacks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import FluxPipeline
from safetensors.torch import save_file

from engine.flow_families import denoiser, make_flow_scheduler, pipeline_family, pixel_factor, spatial_latents
from engine.pipelines import detect_family
from engine.preview import LATENT_RGB, preview_pixels
from engine.single_file import missing_parts
from engine.tiny_flow import FLUX_SCHEDULER as FLUX_DEV_SCHEDULER

FLUX_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", **FLUX_DEV_SCHEDULER}


@pytest.mark.parametrize(
    ("pipeline_class", "configured", "family"),
    [
        ("StableDiffusion3Pipeline", "sd3", "sd3"),
        ("FluxPipeline", "flux", "flux"),
        ("StableDiffusionXLPipeline", "sdxl", "sdxl"),
        ("StableDiffusionPipeline", "sd2", "sd2"),
        ("FluxKontextPipeline", "flux", "FluxKontextPipeline"),  # another pipeline: not rendered as FLUX.1
    ],
)
def test_the_family_of_a_loaded_pipeline(pipeline_class: str, configured: str, family: str) -> None:
    """The text-to-image pipelines of SD3 and FLUX.1 are their families; other classes stay their class names."""
    assert detect_family(pipeline_class, configured) == family
    assert pipeline_family(pipeline_class) == (family if family in ("sd3", "flux") else None)


def test_the_flow_euler_sampler_keeps_the_models_shift() -> None:
    """``euler`` on a flow model is FlowMatchEuler with the model's own (dynamic) shift, as its pipeline expects."""
    scheduler = make_flow_scheduler("euler", FLUX_SCHEDULER)
    assert type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert (scheduler.config.use_dynamic_shifting, scheduler.config.max_shift) == (True, 1.15)
    scheduler.set_timesteps(4, mu=1.15)
    assert float(scheduler.sigmas[0]) == pytest.approx(1.0) and float(scheduler.sigmas[-1]) == 0.0


@pytest.mark.parametrize("name", ["euler_a", "dpmpp_2m_karras", "lcm", "nonsense"])
def test_another_sampler_on_a_flow_model_names_the_ones_that_work(name: str) -> None:
    """Only flow-matching samplers fit these models; the error lists them."""
    with pytest.raises(ValueError, match=rf"sampler '{name}' does not work with flow-matching models .*: euler"):
        make_flow_scheduler(name, FLUX_SCHEDULER)


def test_fluxs_packed_latents_are_unpacked_for_previews() -> None:
    """FLUX.1's callback latents (B × h/2·w/2 × 64) go back to B × 16 × h × w exactly; SD3's pass as they are."""
    latents = torch.randn(2, 16, 24, 40)  # an 80×48 image at the tiny VAE's factor 2
    packed = FluxPipeline._pack_latents(latents, 2, 16, 24, 40)
    assert packed.shape == (2, 12 * 20, 64)
    pipe = SimpleNamespace(vae_scale_factor=2, _unpack_latents=FluxPipeline._unpack_latents)
    assert torch.equal(spatial_latents("flux", pipe, packed, 80, 48), latents)
    assert spatial_latents("sd3", pipe, latents, 80, 48) is latents


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_16_channel_latents_project_to_rgb(family: str) -> None:
    """The family's 16 × 3 projection and bias: zero latents show the bias, one channel adds its row."""
    factors, bias = LATENT_RGB[family]
    assert len(factors) == 16
    zero = preview_pixels(torch.zeros(1, 16, 8, 8), family, side=8)
    expected = [round((value + 1) * 127.5 - 0.5) for value in bias]
    assert [abs(a - b) <= 1 for a, b in zip(zero[0, 0, 0].tolist(), expected, strict=True)] == [True] * 3
    one = torch.zeros(1, 16, 8, 8)
    one[:, 15] = 1.0
    lit = preview_pixels(one, family, side=8)[0, 0, 0].tolist()
    assert lit != zero[0, 0, 0].tolist()


def test_pixel_factor_and_denoiser() -> None:
    """Sizes snap to VAE factor × 2 on the flow families; the denoiser is the UNet or else the transformer."""
    transformer = SimpleNamespace(config=SimpleNamespace(patch_size=2))
    sd3 = SimpleNamespace(vae_scale_factor=8, transformer=transformer, unet=None)
    assert (pixel_factor("sd3", sd3), pixel_factor("flux", sd3), pixel_factor("sdxl", sd3)) == (16, 16, 8)
    assert denoiser(sd3) is transformer
    unet = object()
    assert denoiser(SimpleNamespace(unet=unet, transformer=transformer)) is unet


@pytest.mark.parametrize(
    ("family", "keys", "missing"),
    [
        ("flux", ["double_blocks.0.img_attn.qkv.weight"], ["vae", "text_encoder", "text_encoder_2"]),
        (
            "flux",
            ["transformer_blocks.0.attn.to_q.weight", "vae.decoder.conv_in.weight"],
            ["text_encoder", "text_encoder_2"],
        ),
        (
            "sd3",
            [
                "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight",
                "first_stage_model.decoder.conv_in.weight",
                "text_encoders.clip_l.transformer.text_model.final_layer_norm.weight",
                "text_encoders.clip_g.transformer.text_model.final_layer_norm.weight",
            ],
            ["text_encoder_3"],
        ),
        ("sdxl", ["model.diffusion_model.input_blocks.0.0.weight"], []),  # SD files hold everything
    ],
)
def test_what_a_single_file_lacks_is_read_from_its_header(
    tmp_path: Path, family: str, keys: list[str], missing: list[str]
) -> None:
    """The parts whose weights a file does not name come from the config folder."""
    path = tmp_path / "model.safetensors"
    save_file({key: torch.zeros(1) for key in keys}, path)
    assert missing_parts(family, path) == missing
