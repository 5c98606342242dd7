"""A tiny random LoRA for the tiny models, built in code with peft (tests and demos; nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def build_tiny_lora(model_dir: Path, destination: Path, *, seed: int = 0, rank: int = 4) -> Path:
    """Write a LoRA for the UNet of the diffusers folder ``model_dir`` to ``destination`` (a folder).

    Both LoRA matrices are random (``init_lora_weights=False``; peft zeroes B by default), so it changes images.
    Returns the path of the ``.safetensors`` file.
    """
    unet = UNet2DConditionModel.from_pretrained(Path(model_dir) / "unet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS, init_lora_weights=False))
        state = get_peft_model_state_dict(unet)
    destination.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(destination, unet_lora_layers=state, safe_serialization=True)
    return destination / "pytorch_lora_weights.safetensors"
