"""Full-size random-weight models for ``bench.gpu``: the published architectures (configs written out below,
nothing downloaded), so the compute is the real models'. Built on the GPU and saved as diffusers folders in half
precision, then loaded through the project's registry like any owner's model. ``tiny=True`` stands in the tiny test
models of the same families, to rehearse the benchmark on a CPU."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SD21_UNET: dict[str, Any] = {
    **SD15_UNET,
    "cross_attention_dim": 1024,
    "attention_head_dim": (5, 10, 20, 20),
    "use_linear_projection": True,
}
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "cross_attention_dim": 2048,
    "attention_head_dim": (5, 10, 20),
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
}
CLIP_L: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
}
CLIP_H: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "hidden_act": "gelu",
    "projection_dim": 512,
}
CLIP_G: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "projection_dim": 1280,
}
SCHEDULER: dict[str, Any] = {
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "steps_offset": 1,
}
TINY_SOURCES = {"sd15": "sd15", "sdxl": "sdxl", "turbo": "sd-turbo"}


def write_in_place(target: Path, write: Callable[[Path], object]) -> None:
    """Have ``write`` fill a ``.NAME.partial`` folder beside ``target`` (a stale one removed first), then rename it
    to ``target``, so an interrupted build never leaves a folder that looks complete."""
    partial = target.parent / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    partial.rename(target)


def save_half(target: Path, make: Callable[[], Any]) -> Path:
    """Save the model ``make`` builds on the GPU as ``target``, in half precision (see :func:`write_in_place`), and
    give its GPU memory back; returns ``target``."""
    import torch

    model = make()
    model.to(dtype=torch.float16)
    write_in_place(target, model.save_pretrained)
    del model
    torch.cuda.empty_cache()
    return target


def build_model(kind: str, folder: Path, *, tiny: bool = False) -> Path:
    """Save the ``kind`` model (``sd15``, ``sdxl`` or ``turbo``: SD2.1's architecture set up as SD-Turbo) under
    ``folder`` and return its path."""
    target = folder / f"big-{kind}"
    if tiny:
        from engine.tiny import ensure_tiny_model

        return ensure_tiny_model(TINY_SOURCES[kind], folder)
    if (target / "model_index.json").is_file():
        return target
    return save_half(target, lambda: _big_pipeline(kind))


def _big_pipeline(kind: str) -> Any:
    """The full-size random ``kind`` pipeline, made on the GPU."""
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from engine.tiny_parts import build_tokenizer

    tokenizer = build_tokenizer(Path(tempfile.mkdtemp()) / "tokenizer")
    vocab = 49408
    with torch.device("cuda"):
        vae = diffusers.AutoencoderKL(**VAE)
        if kind == "sdxl":
            unet = diffusers.UNet2DConditionModel(**SDXL_UNET)
            text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, **CLIP_L))
            text_2 = CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=vocab, **CLIP_G))
            scheduler = diffusers.EulerDiscreteScheduler(**SCHEDULER)
            pipe: Any = diffusers.StableDiffusionXLPipeline(vae, text, text_2, tokenizer, tokenizer, unet, scheduler)
        elif kind == "turbo":
            unet = diffusers.UNet2DConditionModel(**SD21_UNET)
            text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, **CLIP_H))
            scheduler = diffusers.EulerDiscreteScheduler(**SCHEDULER, timestep_spacing="trailing")
            pipe = diffusers.StableDiffusionPipeline(vae, text, tokenizer, unet, scheduler, None, None, None, False)
        else:
            unet = diffusers.UNet2DConditionModel(**SD15_UNET)
            text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, **CLIP_L))
            scheduler = diffusers.EulerDiscreteScheduler(**SCHEDULER)
            pipe = diffusers.StableDiffusionPipeline(vae, text, tokenizer, unet, scheduler, None, None, None, False)
    return pipe


def build_controlnet(folder: Path, *, tiny: bool = False) -> Path:
    """Save a full-size random SD1.5 ControlNet (``ControlNetModel.from_unet`` of SD1.5's UNet: its encoder half and
    middle block, plus the conditioning embedding) under ``folder`` in half precision and return its path;
    ``tiny=True``: the tiny SD1.5 ControlNet, to rehearse on a CPU."""
    if tiny:
        from engine.tiny_controlnet import ensure_tiny_control

        return ensure_tiny_control("controlnet-sd15", folder)
    target = folder / "big-controlnet-sd15"
    if (target / "config.json").is_file():
        return target
    return save_half(target, _big_controlnet)


def _big_controlnet() -> Any:
    """The full-size random SD1.5 ControlNet, made on the GPU (the UNet it comes from is freed on return)."""
    import diffusers
    import torch

    with torch.device("cuda"):
        unet = diffusers.UNet2DConditionModel(**SD15_UNET)
        return diffusers.ControlNetModel.from_unet(unet)


def build_ip_adapter_model(folder: Path, *, tiny: bool = False) -> Path:
    """Save a full-size random SD1.5 base IP-Adapter under ``folder`` in half precision and return its path: four
    image tokens into each of SD1.5's 16 cross-attention layers, with an OpenCLIP ViT-H/14 image encoder (the
    published ip-adapter_sd15's architecture); ``tiny=True``: the tiny SD1.5 adapter, to rehearse on a CPU."""
    from engine.tiny_ip_adapter import ensure_tiny_ip_adapter

    if tiny:
        return ensure_tiny_ip_adapter("ip-adapter-sd15", folder)
    target = folder / "big-ip-adapter-sd15"
    if (target / "image_encoder" / "model.safetensors").is_file():
        return target
    import torch
    from transformers import CLIPVisionConfig

    from engine.tiny_ip_adapter import SD15_IMAGE_ENCODER, build_ip_adapter

    with torch.device("cuda"):
        write_in_place(
            target,
            lambda partial: build_ip_adapter(
                partial, SD15_UNET, CLIPVisionConfig(**SD15_IMAGE_ENCODER), dtype=torch.float16
            ),
        )
    torch.cuda.empty_cache()
    return target
