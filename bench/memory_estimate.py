"""``python -m bench.memory_estimate``: GPU memory and disk each built-in model needs, estimated on any machine.

Nothing is downloaded and no GPU is needed. The networks are built from their published architectures (the configs
of ``bench.gpu``, plus the SD1.5 safety checker's CLIP ViT-L/14 vision tower) inside torch's ``FakeTensorMode``, so
no weight is allocated, and run there under ``MemTracker``, which records the peak of live tensors:

- weights: the parameters of every component the pipeline loads, at fp16 (2 bytes each);
- render of 4 images at the model's base size, 20 steps: classifier-free guidance runs the UNet on a batch of 8;
  the peak is the larger of one UNet call and the VAE decode of the 4 latents (SDXL's VAE is upcast to fp32 to
  decode, as diffusers does for its ``force_upcast`` config). Attention takes the fused (flash) path on this
  fake CPU device, as SDPA does on a CUDA GPU; CUDA's own context (~0.3-0.5 GiB) and the caching allocator's
  slack (~10-20%) come on top;
- 4-bit (``memory.quantize = "4bit"``, bitsandbytes NF4 of the UNet): the UNet's Linear layers at 0.5 byte per
  parameter plus one fp32 scale per 64 (0.5625 bytes), its convolutions and norms stay fp16;
- model CPU offload (``memory.offload = "model"``): one component on the GPU at a time, so the peak is the largest
  component's weights plus its own activations;
- disk of the fp16 variant: the weights at 2 bytes per parameter (safetensors adds a few KiB of header).

The tiny models are read from the folders ``engine.tiny`` builds (their real files). Last line: one JSON object.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from bench.gpu import CLIP_G, CLIP_L, SD15_UNET, SDXL_UNET, VAE

GIB = 2**30
IMAGES = 4
NF4_BYTES = 0.5 + 4 / 64
"""Bytes per quantized parameter: two 4-bit values per byte and an fp32 absmax per block of 64."""
CLIP_VIT_L14: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
}


def _peak_bytes(run: Any, modules: list[Any]) -> int:
    """Peak bytes of the tensors ``run()`` keeps alive at once, beyond the modules' own parameters."""
    import torch
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    for module in modules:
        tracker.track_external(module)
    with tracker, torch.no_grad():
        run()
    peak = tracker.get_tracker_snapshot("peak")
    return max(
        int(stats["Total"]) - int(sum(v for k, v in stats.items() if str(k).endswith("PARAM")))
        for stats in peak.values()
    )


def _linear_and_other(module: Any) -> tuple[int, int]:
    import torch

    linear = sum(p.numel() for m in module.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters(False))
    total = sum(p.numel() for p in module.parameters())
    return linear, total - linear


def _estimate(
    unet_config: dict[str, Any],
    vae_config: dict[str, Any],
    text_configs: list[tuple[str, dict[str, Any], bool]],
    *,
    size: int,
    latent_scale: int,
    vae_fp32_decode: bool,
    safety_checker: bool,
    addition: bool,
) -> dict[str, Any]:
    import diffusers
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import (
        CLIPConfig,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
    )

    previous = torch.get_default_dtype()
    try:
        with FakeTensorMode():
            torch.set_default_dtype(torch.float16)
            unet = diffusers.UNet2DConditionModel(**unet_config)
            vae = diffusers.AutoencoderKL(**vae_config)
            parameters: dict[str, int] = {
                "unet": sum(p.numel() for p in unet.parameters()),
                "vae": sum(p.numel() for p in vae.parameters()),
            }
            for name, config, projection in text_configs:
                text_class = CLIPTextModelWithProjection if projection else CLIPTextModel
                text = text_class(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, **config))
                parameters[name] = sum(p.numel() for p in text.parameters())
            if safety_checker:
                from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

                clip = CLIPConfig(
                    text_config=CLIPTextConfig(**CLIP_L).to_dict(),
                    vision_config=CLIPVisionConfig(**CLIP_VIT_L14).to_dict(),
                    projection_dim=768,
                )
                parameters["safety_checker"] = sum(p.numel() for p in StableDiffusionSafetyChecker(clip).parameters())
            latent = size // latent_scale
            cross = unet_config["cross_attention_dim"]
            sample = torch.randn(2 * IMAGES, unet_config.get("in_channels", 4), latent, latent)
            context = torch.randn(2 * IMAGES, 77, cross)
            extra: dict[str, Any] = {}
            if addition:  # SDXL: the pooled text embedding and six size/crop numbers, as the pipeline passes them
                pooled = (
                    unet_config["projection_class_embeddings_input_dim"] - 6 * unet_config["addition_time_embed_dim"]
                )
                extra["added_cond_kwargs"] = {
                    "text_embeds": torch.randn(2 * IMAGES, pooled),
                    "time_ids": torch.randn(2 * IMAGES, 6),
                }
            unet_peak = _peak_bytes(lambda: unet(sample, 10, context, **extra), [unet])
            linear, other = _linear_and_other(unet)
            if vae_fp32_decode:
                torch.set_default_dtype(torch.float32)
                vae = diffusers.AutoencoderKL(**vae_config)
            channels = vae_config.get("latent_channels", 4)
            latents = torch.randn(IMAGES, channels, latent, latent)
            vae_peak = _peak_bytes(lambda: vae.decode(latents), [vae])
            one = torch.randn(1, channels, latent, latent)
            vae_sliced_peak = _peak_bytes(lambda: vae.decode(one), [vae])  # memory.vae_slicing: one image at a time
    finally:
        torch.set_default_dtype(previous)
    fp16 = {name: count * 2 for name, count in parameters.items()}
    weights = sum(fp16.values())
    decode_weights = parameters["vae"] * (4 if vae_fp32_decode else 2)
    unet_4bit = int(linear * NF4_BYTES + other * 2)

    def peak(resident: int, decode: int) -> int:
        """All weights resident: the larger of a UNet call and the decode (the VAE at its decode dtype)."""
        return max(resident + unet_peak, resident - fp16["vae"] + decode_weights + decode)

    def offloaded(decode: int) -> int:
        """One component on the GPU at a time: the largest of its weights plus its own activations."""
        return max(fp16["unet"] + unet_peak, decode_weights + decode, max(fp16.values()))

    return {
        "parameters": parameters,
        "weights_fp16_bytes": weights,
        "disk_fp16_bytes": weights,
        "unet_activation_peak_bytes": unet_peak,
        "vae_decode_peak_bytes": vae_peak,
        "unet_linear_parameters": linear,
        "render_4_images_bytes": peak(weights, vae_peak),
        "vae_decode_one_image_peak_bytes": vae_sliced_peak,
        "render_4_images_vae_slicing_bytes": peak(weights, vae_sliced_peak),
        "render_4_images_4bit_bytes": peak(weights - fp16["unet"] + unet_4bit, vae_peak),
        "render_4_images_4bit_vae_slicing_bytes": peak(weights - fp16["unet"] + unet_4bit, vae_sliced_peak),
        "render_4_images_model_offload_bytes": offloaded(vae_peak),
        "render_4_images_model_offload_vae_slicing_bytes": offloaded(vae_sliced_peak),
        "size": size,
    }


def _tiny(family: str) -> dict[str, Any]:
    """The tiny models: parameters and disk from the files ``engine.tiny`` writes; activations of a 4-image render
    at 64x64 measured the same way from their configs."""
    import diffusers

    from engine.model_sources import component_parameters, disk_bytes
    from engine.tiny import ensure_tiny_model

    folder = ensure_tiny_model(family, Path(tempfile.mkdtemp()))
    parameters = component_parameters(folder, None)
    unet_config = dict(diffusers.UNet2DConditionModel.load_config(folder / "unet"))
    vae_config = dict(diffusers.AutoencoderKL.load_config(folder / "vae"))
    keep = {"block_out_channels", "down_block_types", "up_block_types", "layers_per_block", "latent_channels"}
    vae_kwargs = {key: value for key, value in vae_config.items() if key in keep}
    unet_kwargs = {key: value for key, value in unet_config.items() if not key.startswith("_")}
    result = _estimate(
        unet_kwargs,
        vae_kwargs,
        [],
        size=64,
        latent_scale=2,
        vae_fp32_decode=False,
        safety_checker=False,
        addition=family == "sdxl",
    )
    from_files = sum(parameters.values()) * 2 - result["weights_fp16_bytes"]  # the text encoders, left out above
    for key in [key for key in result if key.startswith(("weights_", "render_"))]:
        result[key] += from_files
    result["parameters"] = parameters
    result["disk_fp32_bytes"] = disk_bytes(folder, None)
    result["disk_fp16_bytes"] = sum(parameters.values()) * 2
    return result


def main() -> dict[str, Any]:
    models = {
        "sd15": _estimate(
            SD15_UNET,
            VAE,
            [("text_encoder", CLIP_L, False)],
            size=512,
            latent_scale=8,
            vae_fp32_decode=False,
            safety_checker=True,
            addition=False,
        ),
        "sdxl": _estimate(
            SDXL_UNET,
            VAE,
            [("text_encoder", CLIP_L, False), ("text_encoder_2", CLIP_G, True)],
            size=1024,
            latent_scale=8,
            vae_fp32_decode=True,
            safety_checker=False,
            addition=True,
        ),
    }
    try:
        models["tiny"] = _tiny("sd15")
        models["tiny-sdxl"] = _tiny("sdxl")
    except Exception as error:  # the tiny rows are a convenience: report, keep the real ones
        models["tiny"] = {"error": f"{type(error).__name__}: {error}"}
    summary = {
        name: {key: round(value / GIB, 3) for key, value in row.items() if key.endswith("_bytes")}
        for name, row in models.items()
        if "error" not in row
    }
    return {"benchmark": "memory_estimate", "images": IMAGES, "dtype": "fp16", "models": models, "gib": summary}


if __name__ == "__main__":
    print(json.dumps(main()))
