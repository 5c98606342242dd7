"""Tiny random-weight ControlNets and a tiny depth estimator, built in code (sources ``tiny:controlnet-sd15``,
``tiny:controlnet-sdxl`` and ``tiny:depth``).

A tiny ControlNet is ``ControlNetModel.from_unet`` of the tiny model's UNet (:mod:`engine.tiny`), so it has the
architecture diffusers builds for that family, saved with ``save_pretrained`` and loaded back through
``from_pretrained`` like an owner's ControlNet folder. Its conditioning embedding downsamples by 2, the tiny VAE's
factor (real ControlNets downsample by 8, SD's). ``from_unet`` starts the ControlNet's output convolutions at zero
(so a new ControlNet changes nothing); here they get small seeded random weights instead, so the control image
really steers the tiny model's noise and a test can see it.

The tiny depth estimator is a four-layer DPT (``DPTForDepthEstimation``) with its image processor, saved as a
transformers folder. Engine process only.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from engine.tiny import ensure_tiny_model

log = logging.getLogger(__name__)

TINY_CONDITIONING_CHANNELS = (16, 32)
"""The conditioning embedding of a tiny ControlNet: one stride-2 step, the tiny VAE's factor."""
ZERO_CONVOLUTIONS = ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")
"""The layers ``from_unet`` starts at zero (ControlNet's "zero convolutions")."""
RANDOM_STD = 0.1


def build_tiny_controlnet(family: str, path: Path, models_dir: Path, *, seed: int = 0) -> Path:
    """A tiny ControlNet made from the UNet of the tiny ``family`` (``sd15`` or ``sdxl``) model in ``models_dir``
    (built there first if needed), saved under ``path``."""
    model = ensure_tiny_model(family, models_dir)
    unet = UNet2DConditionModel.from_pretrained(model / "unet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=TINY_CONDITIONING_CHANNELS)
        with torch.no_grad():
            for name, parameter in controlnet.named_parameters():
                if name.startswith(ZERO_CONVOLUTIONS):
                    parameter.normal_(std=RANDOM_STD)
    controlnet.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_depth(path: Path, _models_dir: Path | None = None, *, seed: int = 0) -> Path:
    """A tiny random-weight DPT depth estimator (``DPTForDepthEstimation``) with its image processor, under ``path``."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessorPil

    config = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        backbone_out_indices=[0, 1, 2, 3],
        num_attention_heads=4,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
        neck_hidden_sizes=[16, 16, 32, 32],
        reassemble_factors=[4, 2, 1, 0.5],
        fusion_hidden_size=16,
        head_in_index=-1,
        is_hybrid=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DPTForDepthEstimation(config)
    processor = DPTImageProcessorPil(size={"height": 32, "width": 32}, keep_aspect_ratio=False, do_pad=False)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


_BUILDERS: dict[str, Callable[[Path, Path], Path]] = {
    "controlnet-sd15": lambda path, models_dir: build_tiny_controlnet("sd15", path, models_dir),
    "controlnet-sdxl": lambda path, models_dir: build_tiny_controlnet("sdxl", path, models_dir),
    "depth": build_tiny_depth,
}
_DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
_WEIGHTS = {"controlnet-sd15": _DIFFUSERS_WEIGHTS, "controlnet-sdxl": _DIFFUSERS_WEIGHTS, "depth": "model.safetensors"}


def _is_complete(name: str, folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / _WEIGHTS[name]).is_file()


def ensure_tiny_control(name: str, models_dir: Path) -> Path:
    """``models_dir / f"tiny-{name}"``, built there first if needed (in a temporary sibling renamed into place, so
    an interrupted build never looks complete). Raises ValueError for an unknown name."""
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown tiny source tiny:{name}; use one of: {', '.join('tiny:' + n for n in _BUILDERS)}")
    target = Path(models_dir) / f"tiny-{name}"
    if _is_complete(name, target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tiny-{name}.", suffix=".tmp", dir=target.parent))
    try:
        log.info("building tiny %s at %s", name, target)
        builder(staging / "built", target.parent)
        if _is_complete(name, target):  # another process finished first
            return target
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging / "built", target)
        except OSError:
            if _is_complete(name, target):
                return target
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
