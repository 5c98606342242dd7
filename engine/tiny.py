"""Tiny random-weight Stable Diffusion models, built in code.

These models exist so the bot (and its tests) can exercise the real model-loading and
rendering paths without downloading gigabytes of weights. Each builder constructs every
component with a handful of random parameters, the same way diffusers' own test-suite does
with ``get_dummy_components``, and writes the result with ``save_pretrained``. The folder
therefore loads back through the ordinary ``from_pretrained`` path exactly like a real
diffusers model folder would.

The images they produce are noise: the point is the plumbing, not the pictures.

Note that the tiny VAEs have two blocks, so their latent scale factor is 2 rather than the
8 of real Stable Diffusion models: a 64x64 image uses a 32x32 latent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from engine.tiny_flow import FLUX_FILES, SD3_FILES, build_tiny_flux, build_tiny_sd3
from engine.tiny_folders import build_into_place
from engine.tiny_parts import SCHEDULER_COMMON, build_tokenizer, text_config, tiny_vae

_build_tokenizer = build_tokenizer  # the name the GPU benchmark imports

__all__ = [
    "TINY_FAMILIES",
    "build_tiny_sd2",
    "build_tiny_sd15",
    "build_tiny_sd_turbo",
    "build_tiny_sdxl",
    "ensure_tiny_model",
]

logger = logging.getLogger(__name__)

TINY_FAMILIES: tuple[str, ...] = ("sd15", "sdxl", "sd2", "sd-turbo", "sd3", "flux")
"""Tiny models :func:`ensure_tiny_model` can build (``tiny:<name>`` sources): one per family, plus ``sd-turbo``, an
SD2.1-architecture model set up as SD-Turbo is (epsilon prediction, Euler with trailing timesteps). ``sd3`` and
``flux`` are built by :mod:`engine.tiny_flow`."""

TINY_UNET: dict[str, Any] = {
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
}
"""What every tiny UNet shares: two levels of 32 and 64 channels, cross-attention in the lower one."""

# Hidden sizes of the two SDXL text encoders. They must differ: the single-file loader
# tells the encoders apart by tensor shape and silently mixes them up when they match.
_SDXL_HIDDEN_1 = 32
_SDXL_HIDDEN_2 = 48
_SDXL_PROJECTION_2 = 48
_SDXL_ADDITION_TIME_EMBED_DIM = 8

# The width of the tiny SD2 text encoder (OpenCLIP ViT-H in SD2.1): unlike the tiny SD1.5's, so a mix-up shows.
_SD2_HIDDEN = 48

# Files every complete model folder has, beyond those common to both families.
_COMMON_FILES: tuple[str, ...] = (
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/tokenizer_config.json",
    "tokenizer/tokenizer.json",
    "scheduler/scheduler_config.json",
)
_REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "sd15": _COMMON_FILES,
    "sd2": _COMMON_FILES,
    "sd-turbo": _COMMON_FILES,
    "sdxl": (
        *_COMMON_FILES,
        "text_encoder_2/config.json",
        "text_encoder_2/model.safetensors",
        "tokenizer_2/tokenizer_config.json",
        "tokenizer_2/tokenizer.json",
    ),
    "sd3": SD3_FILES,
    "flux": FLUX_FILES,
}


def _prepare_target(path: Path) -> Path:
    """Create ``path`` (and its parents) and return it as a :class:`Path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_tiny_sd15(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight Stable Diffusion 1.5 model and save it to ``path``.

    The folder is a complete diffusers ``StableDiffusionPipeline`` folder (``model_index.json``,
    ``unet``, ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler``) without a safety checker or
    feature extractor. The same ``seed`` always gives the same weights; the caller's global torch
    random state is left untouched.

    Args:
        path: Folder to write into; created if missing.
        seed: Seed for the random weights.

    Returns:
        ``path``.
    """
    path = _prepare_target(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            **TINY_UNET,
            cross_attention_dim=32,
        )
        torch.manual_seed(seed)
        vae = tiny_vae(force_upcast=True)
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(text_config(32, projection_dim=32))
    tokenizer = build_tokenizer(path / "tokenizer")
    scheduler = PNDMScheduler(
        **SCHEDULER_COMMON,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        prediction_type="epsilon",
    )
    _save_sd_pipeline(path, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
    logger.info("Built tiny sd15 model (seed %d) at %s", seed, path)
    return path


def _save_sd_pipeline(path: Path, **components: Any) -> None:
    """Save a Stable Diffusion (1.x/2.x) pipeline of ``components`` to ``path``, without a safety checker."""
    pipe = StableDiffusionPipeline(
        **components, safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False
    )
    pipe.save_pretrained(path, safe_serialization=True)


def _build_tiny_sd2_architecture(path: Path, seed: int, *, upcast_attention: bool, scheduler: object) -> Path:
    """A tiny random-weight SD2.x pipeline folder: linear projections and per-block head counts in the UNet as SD2.x
    has them, a GELU text encoder padded with ``!`` (OpenCLIP's), no safety checker, and ``scheduler``."""
    path = _prepare_target(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            **TINY_UNET,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            upcast_attention=upcast_attention,
            cross_attention_dim=_SD2_HIDDEN,
        )
        torch.manual_seed(seed)
        vae = tiny_vae(force_upcast=True)
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(text_config(_SD2_HIDDEN, projection_dim=_SD2_HIDDEN, pad_token="!"))
    tokenizer = build_tokenizer(path / "tokenizer", pad_token="!")
    _save_sd_pipeline(path, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
    return path


def build_tiny_sd2(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight Stable Diffusion 2.1 (768-v) model and save it to ``path``.

    As SD2.1 is: a v-prediction DDIM scheduler, attention computed in fp32 (``upcast_attention``), linear
    projections in the UNet's transformers, a GELU text encoder whose tokenizer pads with ``!``. The same ``seed``
    always gives the same weights; the caller's global torch random state is left untouched.
    """
    scheduler = DDIMScheduler(
        **SCHEDULER_COMMON,
        clip_sample=False,
        set_alpha_to_one=False,
        prediction_type="v_prediction",
        timestep_spacing="leading",
    )
    _build_tiny_sd2_architecture(path, seed, upcast_attention=True, scheduler=scheduler)
    logger.info("Built tiny sd2 model (seed %d) at %s", seed, path)
    return Path(path)


def build_tiny_sd_turbo(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight SD-Turbo (an adversarially distilled SD2.1 at 512²) and save it to ``path``.

    As ``stabilityai/sd-turbo`` is: the SD2.1 architecture with epsilon prediction and no attention upcast (it is
    distilled from the 512² base model), and an Euler scheduler whose timesteps are spaced from the end
    (``trailing``), so that one step starts from pure noise. The same ``seed`` always gives the same weights.
    """
    scheduler = EulerDiscreteScheduler(
        **SCHEDULER_COMMON,
        interpolation_type="linear",
        prediction_type="epsilon",
        timestep_spacing="trailing",
        use_karras_sigmas=False,
    )
    _build_tiny_sd2_architecture(path, seed, upcast_attention=False, scheduler=scheduler)
    logger.info("Built tiny sd-turbo model (seed %d) at %s", seed, path)
    return Path(path)


def build_tiny_sdxl(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight Stable Diffusion XL model and save it to ``path``.

    The folder is a complete diffusers ``StableDiffusionXLPipeline`` folder with two text
    encoders of different widths (a ``CLIPTextModel`` and a ``CLIPTextModelWithProjection``) and
    two tokenizers. The same ``seed`` always gives the same weights; the caller's global torch
    random state is left untouched.

    Args:
        path: Folder to write into; created if missing.
        seed: Seed for the random weights.

    Returns:
        ``path``.
    """
    path = _prepare_target(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            **TINY_UNET,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=_SDXL_ADDITION_TIME_EMBED_DIM,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=6 * _SDXL_ADDITION_TIME_EMBED_DIM + _SDXL_PROJECTION_2,
            cross_attention_dim=_SDXL_HIDDEN_1 + _SDXL_HIDDEN_2,
        )
        torch.manual_seed(seed)
        vae = tiny_vae(force_upcast=False)
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(text_config(_SDXL_HIDDEN_1, projection_dim=_SDXL_HIDDEN_1))
        torch.manual_seed(seed)
        text_encoder_2 = CLIPTextModelWithProjection(text_config(_SDXL_HIDDEN_2, projection_dim=_SDXL_PROJECTION_2))
    tokenizer = build_tokenizer(path / "tokenizer")
    tokenizer_2 = build_tokenizer(path / "tokenizer_2")
    scheduler = EulerDiscreteScheduler(
        **SCHEDULER_COMMON,
        interpolation_type="linear",
        prediction_type="epsilon",
        timestep_spacing="leading",
        use_karras_sigmas=False,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    logger.info("Built tiny sdxl model (seed %d) at %s", seed, path)
    return path


_BUILDERS: dict[str, Callable[..., Path]] = {
    "sd15": build_tiny_sd15,
    "sdxl": build_tiny_sdxl,
    "sd2": build_tiny_sd2,
    "sd-turbo": build_tiny_sd_turbo,
    "sd3": build_tiny_sd3,
    "flux": build_tiny_flux,
}


def _is_complete(family: str, path: Path) -> bool:
    """Return whether ``path`` holds every file a built model of ``family`` has."""
    return all((path / name).is_file() for name in _REQUIRED_FILES[family])


def ensure_tiny_model(family: str, models_dir: Path) -> Path:
    """Return ``models_dir / f"tiny-{family}"``, building the tiny model there if needed.

    An existing complete folder is reused as is. A missing or incomplete one is (re)built in a
    temporary sibling folder which is then renamed into place, so an interrupted build never
    leaves a half-written folder that looks complete. If another process finishes the same
    build first, its folder is kept and this one is discarded.

    Args:
        family: One of :data:`TINY_FAMILIES`.
        models_dir: Folder holding the models; created if missing.

    Returns:
        The model folder.

    Raises:
        ValueError: If ``family`` is not one of :data:`TINY_FAMILIES`.
    """
    builder = _BUILDERS.get(family)
    if builder is None:
        raise ValueError(f"unknown tiny model family {family!r}; valid families: {', '.join(TINY_FAMILIES)}")
    target = Path(models_dir) / f"tiny-{family}"
    if _is_complete(family, target):
        logger.debug("Reusing tiny %s model at %s", family, target)
        return target
    logger.info("Building tiny %s model at %s", family, target)
    return build_into_place(target, builder, lambda folder: _is_complete(family, folder))
