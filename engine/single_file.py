"""Loading a single-file checkpoint (what most owners download) with a local diffusers folder of the same family
for its configuration, so nothing is fetched. Engine process only.

SD1.x/2.x and SDXL files hold the whole model. SD3/SD3.5 files hold the transformer and usually the VAE and CLIP
encoders (T5 only in some); FLUX.1 files usually hold the transformer alone. What a file lacks comes from the
folder (:data:`PARTS`); tokenizers and the scheduler always do.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from engine.model_sources import safetensors_header

log = logging.getLogger(__name__)

PIPELINES = {
    "sd15": "StableDiffusionPipeline",
    "sd2": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
}
"""The text-to-image pipeline a single file of each family loads into."""
PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "sd3": {
        "vae": ("first_stage_model.", "vae."),
        "text_encoder": ("text_encoders.clip_l.",),
        "text_encoder_2": ("text_encoders.clip_g.",),
        "text_encoder_3": ("text_encoders.t5xxl.",),
    },
    "flux": {
        "vae": ("first_stage_model.", "vae."),
        "text_encoder": ("text_encoders.clip_l.",),
        "text_encoder_2": ("text_encoders.t5xxl.",),
    },
}
"""The components a single file of a family may lack, by the key prefixes their weights have when it holds them.
diffusers takes a missing VAE or text encoder from the config folder only when its weights are named as diffusers
names its own files, which a transformers text encoder's are not; so each missing part is loaded here instead."""


def missing_parts(family: str, checkpoint: Path) -> list[str]:
    """The components of ``family`` whose weights a single file lacks (a ``.ckpt`` is assumed to hold them all)."""
    parts = PARTS.get(family, {})
    if not parts or checkpoint.suffix.lower() != ".safetensors":
        return []
    keys = list(safetensors_header(checkpoint))
    return [name for name, prefixes in parts.items() if not any(key.startswith(prefixes) for key in keys)]


def load_part(config: Path, name: str, dtype: torch.dtype) -> Any:
    """Component ``name`` of the diffusers folder ``config``, of the class its ``model_index.json`` names."""
    import importlib

    library, class_name = json.loads((config / "model_index.json").read_text(encoding="utf-8"))[name]
    part_class = getattr(importlib.import_module(library), class_name)
    if library == "transformers":
        return part_class.from_pretrained(config, subfolder=name, dtype=dtype)
    return part_class.from_pretrained(config, subfolder=name, torch_dtype=dtype)


def load_single_file(family: str, checkpoint: Path, config: Path, dtype: torch.dtype, extra: dict[str, Any]) -> Any:
    """The text-to-image pipeline of a single-file checkpoint of ``family``, configured by ``config`` (a local
    diffusers folder of the same family), which also gives the parts the file lacks. Lets diffusers' errors
    through."""
    import diffusers

    pipeline_class = getattr(diffusers, PIPELINES.get(family, PIPELINES["sd15"]))
    parts = missing_parts(family, checkpoint)
    if parts:
        log.info("%s holds no %s; taken from %s", checkpoint.name, ", ".join(parts), config)
    components = {name: load_part(config, name, dtype) for name in parts}
    return pipeline_class.from_single_file(
        str(checkpoint), config=str(config), torch_dtype=dtype, **components, **extra
    )
