"""Write a diffusers SD1.x or SDXL folder as an original-format (LDM) single-file checkpoint.

Diffusers ships only the other direction (``from_single_file``). This exists so tests can check the single-file
path offline on the tiny model; the key mapping is derived from the model's own config, so it follows any number
of blocks and layers per block. Covers the UNet, the VAE, CLIP-L and (SDXL) the OpenCLIP text encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_RESNET = (
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("emb_layers.1", "time_emb_proj"),
    ("skip_connection", "conv_shortcut"),
)
_UNET_TOP = (
    ("time_embed.0.", "time_embedding.linear_1."),
    ("time_embed.2.", "time_embedding.linear_2."),
    ("input_blocks.0.0.", "conv_in."),
    ("out.0.", "conv_norm_out."),
    ("out.2.", "conv_out."),
)


def unet_prefix_map(config: dict) -> list[tuple[str, str]]:
    """(LDM prefix, diffusers prefix) pairs for a UNet2DConditionModel config."""
    pairs: list[tuple[str, str]] = list(_UNET_TOP)
    layers = config["layers_per_block"]
    down_types, up_types = config["down_block_types"], config["up_block_types"]
    count = len(down_types)
    for i, block in enumerate(down_types):
        for j in range(layers):
            pairs.append((f"input_blocks.{(layers + 1) * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if "CrossAttn" in block:
                pairs.append((f"input_blocks.{(layers + 1) * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        if i < count - 1:
            pairs.append((f"input_blocks.{(layers + 1) * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
    for i, block in enumerate(up_types):
        for j in range(layers + 1):
            pairs.append((f"output_blocks.{(layers + 1) * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if "CrossAttn" in block:
                pairs.append((f"output_blocks.{(layers + 1) * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < count - 1:
            slot = 2 if "CrossAttn" in block else 1
            pairs.append((f"output_blocks.{(layers + 1) * i + layers}.{slot}.", f"up_blocks.{i}.upsamplers.0."))
    if config.get("addition_embed_type") == "text_time":  # SDXL's size/crop conditioning
        pairs += [("label_emb.0.0.", "add_embedding.linear_1."), ("label_emb.0.2.", "add_embedding.linear_2.")]
    pairs.append(("middle_block.1.", "mid_block.attentions.0."))
    for j in range(2):
        pairs.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    return pairs


def convert_unet(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    pairs = sorted(unet_prefix_map(config), key=lambda pair: -len(pair[1]))
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for ldm, hf in pairs:
            if key.startswith(hf):
                rest = key[len(hf) :]
                if ".resnets." in hf:
                    for ldm_part, hf_part in _RESNET:
                        rest = rest.replace(hf_part, ldm_part)
                out["model.diffusion_model." + ldm + rest] = value
                break
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
    return out


def convert_vae(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    count = len(config["block_out_channels"])
    pairs: list[tuple[str, str]] = [
        ("encoder.norm_out.", "encoder.conv_norm_out."),
        ("decoder.norm_out.", "decoder.conv_norm_out."),
    ]
    for part in ("encoder", "decoder"):
        pairs.append((f"{part}.mid.attn_1.", f"{part}.mid_block.attentions.0."))
        for j in range(2):
            pairs.append((f"{part}.mid.block_{j + 1}.", f"{part}.mid_block.resnets.{j}."))
    for i in range(count):
        pairs.append((f"encoder.down.{i}.block.", f"encoder.down_blocks.{i}.resnets."))
        pairs.append((f"encoder.down.{i}.downsample.", f"encoder.down_blocks.{i}.downsamplers.0."))
        pairs.append((f"decoder.up.{count - 1 - i}.block.", f"decoder.up_blocks.{i}.resnets."))
        pairs.append((f"decoder.up.{count - 1 - i}.upsample.", f"decoder.up_blocks.{i}.upsamplers.0."))
    pairs.sort(key=lambda pair: -len(pair[1]))
    attention = (
        ("norm.", "group_norm."),
        ("q.", "to_q."),
        ("k.", "to_k."),
        ("v.", "to_v."),
        ("proj_out.", "to_out.0."),
    )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        for ldm, hf in pairs:
            if key.startswith(hf):
                new = ldm + key[len(hf) :]
                break
        new = new.replace("conv_shortcut", "nin_shortcut")
        if ".attn_1." in new:
            head, _, tail = new.partition(".attn_1.")
            for ldm_part, hf_part in attention:
                if tail.startswith(hf_part):
                    tail = ldm_part + tail[len(hf_part) :]
                    break
            new = f"{head}.attn_1.{tail}"
            if value.ndim == 2:
                value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def convert_open_clip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A CLIPTextModelWithProjection (SDXL's second encoder) in OpenCLIP's layout: fused qkv, resblocks."""
    state = {key.removeprefix("text_model."): value for key, value in state.items()}
    out = {
        prefix + "token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
        prefix + "positional_embedding": state.pop("embeddings.position_embedding.weight"),
        prefix + "ln_final.weight": state.pop("final_layer_norm.weight"),
        prefix + "ln_final.bias": state.pop("final_layer_norm.bias"),
        prefix + "text_projection": state.pop("text_projection.weight").T,
    }
    names = (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"))
    layers = sorted({int(key.split(".")[2]) for key in state if key.startswith("encoder.layers.")})
    for i in range(len(layers)):
        hf, ldm = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{ldm}attn.in_proj_{kind}"] = torch.cat(
                [state.pop(f"{hf}self_attn.{x}_proj.{kind}") for x in ("q", "k", "v")]
            )
            out[f"{ldm}attn.out_proj.{kind}"] = state.pop(f"{hf}self_attn.out_proj.{kind}")
            for hf_name, ldm_name in names:
                out[f"{ldm}{ldm_name}.{kind}"] = state.pop(f"{hf}{hf_name}.{kind}")
    state.pop("embeddings.position_ids", None)
    if state:
        raise KeyError(f"no OpenCLIP name for {sorted(state)[:3]}")
    return out


def export_checkpoint(model_dir: Path, destination: Path) -> Path:
    """Write ``model_dir`` (a diffusers SD1.x or SDXL folder) as one LDM-format ``.safetensors`` file."""
    model_dir = Path(model_dir)
    state: dict[str, torch.Tensor] = {}
    unet_config = json.loads((model_dir / "unet" / "config.json").read_text())
    vae_config = json.loads((model_dir / "vae" / "config.json").read_text())
    state.update(convert_unet(load_file(model_dir / "unet" / "diffusion_pytorch_model.safetensors"), unet_config))
    state.update(convert_vae(load_file(model_dir / "vae" / "diffusion_pytorch_model.safetensors"), vae_config))
    sdxl = (model_dir / "text_encoder_2").is_dir()
    clip_prefix = (
        "conditioner.embedders.0.transformer.text_model." if sdxl else "cond_stage_model.transformer.text_model."
    )
    for key, value in load_file(model_dir / "text_encoder" / "model.safetensors").items():
        key = key.removeprefix("text_model.")  # transformers 5 saves CLIPTextModel without the prefix
        state[clip_prefix + key] = value
    if sdxl:
        second = load_file(model_dir / "text_encoder_2" / "model.safetensors")
        state.update(convert_open_clip(second, "conditioner.embedders.1.model."))
    destination.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in state.items()}, destination)
    return destination
