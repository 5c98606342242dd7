"""Random-weight IP-Adapters built in code: the tiny test ones (``tiny:ip-adapter-sd15``, ``tiny:ip-adapter-sdxl``)
and, for the GPU benchmark, full-size ones of the published architecture.

An adapter folder is what diffusers' ``load_ip_adapter`` reads from a local folder: the adapter's weights in one
safetensors file (``image_proj.*``: the projection of a CLIP image embedding to four extra cross-attention tokens;
``ip_adapter.<n>.to_k_ip`` / ``to_v_ip``: a key and a value projection for each cross-attention layer of the UNet,
numbered 1, 3, 5 … in the order of the UNet's attention processors) and an ``image_encoder`` folder holding a
``CLIPVisionModelWithProjection`` with its image processor config. The shapes follow the model's own UNet config,
so the adapter fits it exactly. Engine process only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.embeddings import ImageProjection
from safetensors.torch import save_file
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from engine.ip_adapter_sources import TINY_ADAPTER_NAMES
from engine.tiny import ensure_tiny_model
from engine.tiny_folders import build_into_place

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "ip-adapter.safetensors"
IMAGE_ENCODER = "image_encoder"
IMAGE_TOKENS = 4
"""Extra cross-attention tokens one image becomes in the base IP-Adapter."""

TINY_ADAPTERS: dict[str, tuple[str, int]] = {
    TINY_ADAPTER_NAMES[0]: ("sd15", 32),
    TINY_ADAPTER_NAMES[1]: ("sdxl", 40),
}
"""Tiny adapter name (the part after ``tiny:``) → the tiny model family it is shaped for and the width of its image
embedding (the tiny SDXL one differs from its UNet's widths, so a mix-up of shapes shows)."""

SD15_IMAGE_ENCODER: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}
"""The image encoder of the SD1.5 base IP-Adapter: OpenCLIP ViT-H/14."""


def tiny_vision_config(projection_dim: int) -> CLIPVisionConfig:
    """A two-layer CLIP vision config on 32×32 images whose embedding is ``projection_dim`` wide."""
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=4,
        projection_dim=projection_dim,
        layer_norm_eps=1e-5,
    )


def cross_attention_layers(unet_config: dict[str, Any]) -> list[tuple[str, int]]:
    """Each cross-attention processor of a UNet built from ``unet_config``, in the UNet's order, with the width of
    its block: what the adapter's ``to_k_ip``/``to_v_ip`` are shaped by. The UNet is built on the meta device (no
    memory, no time), only to list its processors."""
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
    widths = list(unet.config.block_out_channels)
    layers: list[tuple[str, int]] = []
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            width = widths[-1]
        elif name.startswith("up_blocks"):
            width = list(reversed(widths))[int(name.split(".")[1])]
        else:
            width = widths[int(name.split(".")[1])]
        layers.append((name, width))
    return layers


def ip_adapter_weights(unet_config: dict[str, Any], image_embed_dim: int) -> dict[str, torch.Tensor]:
    """Random base IP-Adapter weights for a UNet of ``unet_config`` and image embeddings ``image_embed_dim`` wide,
    under the keys the published adapter files use (``image_proj.proj``/``norm``, ``ip_adapter.<n>.to_k_ip``)."""
    cross = int(unet_config["cross_attention_dim"])
    projection = ImageProjection(
        image_embed_dim=image_embed_dim, cross_attention_dim=cross, num_image_text_embeds=IMAGE_TOKENS
    ).state_dict()
    weights = {
        "image_proj.proj.weight": projection["image_embeds.weight"],
        "image_proj.proj.bias": projection["image_embeds.bias"],
        "image_proj.norm.weight": projection["norm.weight"],
        "image_proj.norm.bias": projection["norm.bias"],
    }
    for position, (_name, width) in enumerate(cross_attention_layers(unet_config)):
        key = 2 * position + 1
        weights[f"ip_adapter.{key}.to_k_ip.weight"] = torch.nn.Linear(cross, width, bias=False).weight.detach()
        weights[f"ip_adapter.{key}.to_v_ip.weight"] = torch.nn.Linear(cross, width, bias=False).weight.detach()
    return weights


def build_ip_adapter(
    target: Path,
    unet_config: dict[str, Any],
    vision_config: CLIPVisionConfig,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a random-weight base IP-Adapter folder for a UNet of ``unet_config`` to ``target``: the weight file
    and an image encoder of ``vision_config`` with its image processor config. Same ``seed``, same weights; the
    caller's random state is left alone."""
    target.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        weights = ip_adapter_weights(unet_config, vision_config.projection_dim)
        torch.manual_seed(seed)
        encoder = CLIPVisionModelWithProjection(vision_config)
    stored = {key: value.to(dtype).contiguous().cpu() for key, value in weights.items()}
    save_file(stored, str(target / ADAPTER_WEIGHTS))
    encoder.to(dtype).save_pretrained(target / IMAGE_ENCODER, safe_serialization=True)
    side = vision_config.image_size
    processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    processor.save_pretrained(target / IMAGE_ENCODER)
    return target


def _is_complete(folder: Path) -> bool:
    return all(
        (folder / name).is_file()
        for name in (ADAPTER_WEIGHTS, f"{IMAGE_ENCODER}/config.json", f"{IMAGE_ENCODER}/model.safetensors")
    )


def ensure_tiny_ip_adapter(name: str, models_dir: Path) -> Path:
    """``models_dir / f"tiny-{name}"``, building the tiny adapter there first if needed (shaped by the tiny model of
    its family, which is built too when missing). Built in a temporary sibling folder and renamed into place, so an
    interrupted build never leaves a folder that looks complete. Raises ValueError for an unknown name."""
    if name not in TINY_ADAPTERS:
        raise ValueError(f"unknown tiny IP-Adapter {name!r}; valid ones: {', '.join(TINY_ADAPTERS)}")
    family, embed_dim = TINY_ADAPTERS[name]
    target = Path(models_dir) / f"tiny-{name}"
    if _is_complete(target):
        return target
    model = ensure_tiny_model(family, Path(models_dir))
    unet_config = dict(UNet2DConditionModel.load_config(model / "unet"))
    log.info("building the tiny IP-Adapter %s at %s", name, target)
    return build_into_place(
        target, lambda folder: build_ip_adapter(folder, unet_config, tiny_vision_config(embed_dim)), _is_complete
    )
