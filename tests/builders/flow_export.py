"""Write a tiny SD3 or FLUX.1 diffusers folder as the single-file checkpoints owners download.

SD3: the MMDiT in Stability's original layout (``model.diffusion_model.joint_blocks.N.x_block.attn.qkv`` …, the
inverse of diffusers' ``convert_sd3_transformer_checkpoint_to_diffusers``) with the VAE in LDM layout
(``first_stage_model.``), as SD3.5 files hold them. FLUX.1: the transformer alone in diffusers' layout (diffusers'
converter of Black Forest Labs' layout assumes the full model's 3072-wide blocks, so a tiny one cannot take that
path), as many FLUX.1 fine-tunes are shared; the VAE and text encoders then come from the config folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tests.builders.ldm_export import convert_vae

_TOP = (
    ("pos_embed.pos_embed", "pos_embed"),
    ("pos_embed.proj.", "x_embedder.proj."),
    ("time_text_embed.timestep_embedder.linear_1.", "t_embedder.mlp.0."),
    ("time_text_embed.timestep_embedder.linear_2.", "t_embedder.mlp.2."),
    ("time_text_embed.text_embedder.linear_1.", "y_embedder.mlp.0."),
    ("time_text_embed.text_embedder.linear_2.", "y_embedder.mlp.2."),
    ("context_embedder.", "context_embedder."),
    ("proj_out.", "final_layer.linear."),
)
_BLOCK = (  # diffusers name inside transformer_blocks.N. -> original name inside joint_blocks.N.
    ("attn.norm_q.", "x_block.attn.ln_q."),
    ("attn.norm_k.", "x_block.attn.ln_k."),
    ("attn.norm_added_q.", "context_block.attn.ln_q."),
    ("attn.norm_added_k.", "context_block.attn.ln_k."),
    ("attn.to_out.0.", "x_block.attn.proj."),
    ("attn.to_add_out.", "context_block.attn.proj."),
    ("attn2.norm_q.", "x_block.attn2.ln_q."),
    ("attn2.norm_k.", "x_block.attn2.ln_k."),
    ("attn2.to_out.0.", "x_block.attn2.proj."),
    ("norm1.linear.", "x_block.adaLN_modulation.1."),
    ("norm1_context.linear.", "context_block.adaLN_modulation.1."),
    ("ff.net.0.proj.", "x_block.mlp.fc1."),
    ("ff.net.2.", "x_block.mlp.fc2."),
    ("ff_context.net.0.proj.", "context_block.mlp.fc1."),
    ("ff_context.net.2.", "context_block.mlp.fc2."),
)
_QKV = (("attn.to_", "x_block.attn.qkv"), ("attn.add_", "context_block.attn.qkv"), ("attn2.to_", "x_block.attn2.qkv"))


def _swap_halves(weight: torch.Tensor) -> torch.Tensor:
    """Shift and scale in the other order (diffusers' ``swap_scale_shift`` is its own inverse)."""
    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def sd3_transformer_to_original(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """An SD3Transformer2DModel's state dict in Stability's layout, ``model.diffusion_model.`` prefixed."""
    state = dict(state)
    out: dict[str, torch.Tensor] = {}
    last = config["num_layers"] - 1
    for i in range(config["num_layers"]):
        hf, sai = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        for part in ("weight", "bias"):
            for hf_name, sai_name in _QKV:
                names = (
                    [f"{hf}{hf_name}{x}.{part}" for x in "qkv"]
                    if hf_name != "attn.add_"
                    else [f"{hf}attn.add_{x}_proj.{part}" for x in "qkv"]
                )
                if names[0] in state:
                    out[f"{sai}{sai_name}.{part}"] = torch.cat([state.pop(name) for name in names])
        for key in [key for key in state if key.startswith(hf)]:
            rest = key[len(hf) :]
            for hf_name, sai_name in _BLOCK:
                if rest.startswith(hf_name):
                    value = state.pop(key)
                    if i == last and hf_name == "norm1_context.linear.":
                        value = _swap_halves(value)
                    out[sai + sai_name + rest[len(hf_name) :]] = value
                    break
            else:
                raise KeyError(f"no original name for SD3 key {key}")
    for key in ("norm_out.linear.weight", "norm_out.linear.bias"):
        out["final_layer.adaLN_modulation.1." + key.rpartition(".")[2]] = _swap_halves(state.pop(key))
    for key in list(state):
        for hf_name, sai_name in _TOP:
            if key.startswith(hf_name):
                out[sai_name + key[len(hf_name) :]] = state.pop(key)
                break
    if state:
        raise KeyError(f"no original name for SD3 keys {sorted(state)[:3]}")
    return {f"model.diffusion_model.{key}": value for key, value in out.items()}


def export_flow_checkpoint(model_dir: Path, destination: Path) -> Path:
    """Write a tiny SD3 folder as an original-format file (transformer and VAE), or a FLUX.1 folder's transformer
    as a diffusers-format file; returns ``destination``."""
    model_dir = Path(model_dir)
    index = json.loads((model_dir / "model_index.json").read_text())
    transformer = load_file(model_dir / "transformer" / "diffusion_pytorch_model.safetensors")
    if index["_class_name"] == "FluxPipeline":
        state = transformer
    else:
        config = json.loads((model_dir / "transformer" / "config.json").read_text())
        vae_config = json.loads((model_dir / "vae" / "config.json").read_text())
        state = sd3_transformer_to_original(transformer, config)
        state.update(convert_vae(load_file(model_dir / "vae" / "diffusion_pytorch_model.safetensors"), vae_config))
    destination.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in state.items()}, destination)
    return destination
