"""A tiny random LoRA for the tiny SD3.5 and FLUX.1 transformers, built in code with peft (nothing is downloaded),
saved in the diffusers format their pipelines' ``load_lora_weights`` reads."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import FluxPipeline, FluxTransformer2DModel, SD3Transformer2DModel, StableDiffusion3Pipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

FLOW_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
"""The transformer's attention projections (both families' joint attention names them so)."""


def build_tiny_flow_lora(
    model_dir: Path, family: str, destination: Path, *, seed: int = 0, rank: int = 4, strength: float = 4.0
) -> Path:
    """Write a LoRA for the transformer of the ``family`` (``sd3`` or ``flux``) diffusers folder ``model_dir`` to
    ``destination`` (a folder), both LoRA matrices random so it changes images (B scaled by ``strength``: the tiny
    random transformers hardly react to a LoRA of peft's scale). Returns the ``.safetensors`` file."""
    transformer_class = SD3Transformer2DModel if family == "sd3" else FluxTransformer2DModel
    pipeline_class = StableDiffusion3Pipeline if family == "sd3" else FluxPipeline
    transformer = transformer_class.from_pretrained(Path(model_dir) / "transformer")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=FLOW_LORA_TARGETS, init_lora_weights=False)
        transformer.add_adapter(config)
        state = get_peft_model_state_dict(transformer)
    state = {key: value * strength if "lora_B" in key else value for key, value in state.items()}
    destination.mkdir(parents=True, exist_ok=True)
    pipeline_class.save_lora_weights(destination, transformer_lora_layers=state, safe_serialization=True)
    return destination / "pytorch_lora_weights.safetensors"
