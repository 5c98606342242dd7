"""Tiny random-weight Stable Diffusion 3.5 and FLUX.1 models, built in code (see :mod:`engine.tiny`).

Both are the real architectures at a few thousand parameters, as diffusers' own tests build them: an MMDiT
transformer (SD3.5-medium's, with its dual-attention layer and RMS-normed queries and keys) or FLUX.1's double- and
single-stream transformer (with guidance embedding, as FLUX.1-dev), CLIP text encoders with projection, a T5
encoder, a 16-channel VAE without quantization convolutions, and a flow-matching Euler scheduler set up as the real
models' are. Tokenizers are built offline: the CLIP ones as the tiny SD models' are, the T5 one from a
character-level Unigram vocabulary.

Like the other tiny models, the VAE has two blocks, so a 64×64 image is a 32×32 latent (16 channels); with the 2×2
patches (SD3) or packing (FLUX.1) the transformer sees 16×16 tokens. The images are noise: the point is the plumbing.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel, T5Tokenizer

from engine.tiny_parts import build_tokenizer, text_config, tiny_vae

logger = logging.getLogger(__name__)
T = TypeVar("T")

T5_MAX_LENGTH = 512
"""The longest prompt the tiny T5 tokenizer is set up for (FLUX.1-dev's ``max_sequence_length``)."""
_T5_SPECIALS = ("<pad>", "</s>", "<unk>")
_T5_CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation

# Widths. The two SD3 CLIP encoders differ (CLIP-L and OpenCLIP bigG differ too), so the single-file loader cannot
# mix them up; the T5 is wider than both together, as T5-XXL is (the pipeline pads the CLIP embeddings to its width).
_CLIP_L = 32
_CLIP_G = 48
_SD3_T5 = 96
_FLUX_T5 = 48
_LATENT_CHANNELS = 16

SD3_VAE = {"scaling_factor": 1.5305, "shift_factor": 0.0609}
"""The latent scale and shift of SD3/SD3.5's VAE (its config): latents the denoiser sees are (z - shift) * scale."""
FLUX_VAE = {"scaling_factor": 0.3611, "shift_factor": 0.1159}
"""The same for FLUX.1's VAE."""
FLUX_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
"""FLUX.1-dev's flow-matching Euler scheduler config: its shift grows with the image's token count."""

SD3_FILES: tuple[str, ...] = (
    "model_index.json",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder_2/model.safetensors",
    "text_encoder_3/model.safetensors",
    "tokenizer/tokenizer.json",
    "tokenizer_2/tokenizer.json",
    "tokenizer_3/tokenizer.json",
    "scheduler/scheduler_config.json",
)
"""Files every complete tiny SD3 folder has."""
FLUX_FILES: tuple[str, ...] = (
    "model_index.json",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder_2/model.safetensors",
    "tokenizer/tokenizer.json",
    "tokenizer_2/tokenizer.json",
    "scheduler/scheduler_config.json",
)
"""Files every complete tiny FLUX.1 folder has."""


def t5_vocabulary() -> list[tuple[str, float]]:
    """A character-level Unigram vocabulary: T5's special tokens (pad 0, end 1, unknown 2), the word-start mark,
    and every printable ASCII character bare and at a word's start. Other characters become ``<unk>``."""
    pieces = [(token, 0.0) for token in _T5_SPECIALS] + [("▁", -2.0)]
    pieces += [(char, -3.0) for char in _T5_CHARS]
    pieces += [(f"▁{char}", -3.5) for char in _T5_CHARS]
    return pieces


def build_t5_tokenizer(folder: Path) -> T5Tokenizer:
    """Build a tiny T5 tokenizer offline (no SentencePiece model, no download) and save it to ``folder``."""
    tokenizer = T5Tokenizer(vocab=t5_vocabulary(), extra_ids=0, model_max_length=T5_MAX_LENGTH)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def tiny_t5(width: int) -> T5EncoderModel:
    """A two-layer T5 encoder (gated GELU, as T5 v1.1 and T5-XXL are) over :func:`t5_vocabulary`."""
    config = T5Config(
        vocab_size=len(t5_vocabulary()),
        d_model=width,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config)


def tiny_flow_vae(*, scaling_factor: float, shift_factor: float) -> AutoencoderKL:
    """The tiny VAE (:func:`engine.tiny_parts.tiny_vae`) with 16 latent channels and no quantization convolutions
    (SD3's and FLUX.1's VAEs have none), latent scale factor 2."""
    return tiny_vae(
        force_upcast=False,
        latent_channels=_LATENT_CHANNELS,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
    )


def _seeded(seed: int, make: Callable[[], T]) -> T:
    """``make()`` from a fresh ``seed``: each part's weights stay the same whatever is built before it."""
    torch.manual_seed(seed)
    return make()


def build_tiny_sd3(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight Stable Diffusion 3.5 (medium) model and save it to ``path``.

    A complete diffusers ``StableDiffusion3Pipeline`` folder: an MMDiT of two joint blocks (the first with SD3.5
    medium's second self-attention), RMS norm on queries and keys, 2×2 patches, CLIP-L and CLIP-G stand-ins of
    different widths with projection, a T5 encoder, a 16-channel VAE and a flow-matching Euler scheduler with SD3's
    shift of 3. The same ``seed`` always gives the same weights; the caller's torch random state is left untouched.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(
            sample_size=32,
            patch_size=2,
            in_channels=_LATENT_CHANNELS,
            out_channels=_LATENT_CHANNELS,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=4,
            joint_attention_dim=_SD3_T5,
            caption_projection_dim=32,
            pooled_projection_dim=_CLIP_L + _CLIP_G,
            pos_embed_max_size=64,
            dual_attention_layers=(0,),
            qk_norm="rms_norm",
        )
        vae = _seeded(seed, lambda: tiny_flow_vae(**SD3_VAE))
        text_encoder = _seeded(seed, lambda: CLIPTextModelWithProjection(text_config(_CLIP_L, projection_dim=_CLIP_L)))
        text_encoder_2 = _seeded(
            seed, lambda: CLIPTextModelWithProjection(text_config(_CLIP_G, projection_dim=_CLIP_G))
        )
        text_encoder_3 = _seeded(seed, lambda: tiny_t5(_SD3_T5))
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_tokenizer(path / "tokenizer"),
        text_encoder_2=text_encoder_2,
        tokenizer_2=build_tokenizer(path / "tokenizer_2"),
        text_encoder_3=text_encoder_3,
        tokenizer_3=build_t5_tokenizer(path / "tokenizer_3"),
    )
    pipe.save_pretrained(path, safe_serialization=True)
    logger.info("Built tiny sd3 model (seed %d) at %s", seed, path)
    return path


def build_tiny_flux(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight FLUX.1 (dev) model and save it to ``path``.

    A complete diffusers ``FluxPipeline`` folder: one double-stream and one single-stream block with guidance
    embedding (FLUX.1-dev's distilled guidance; schnell has none), rotary axes splitting the head width as FLUX.1's
    do, a CLIP-L stand-in whose pooled output conditions the transformer, a T5 encoder, a 16-channel VAE and a
    flow-matching Euler scheduler with FLUX.1-dev's resolution-dependent shift. The same ``seed`` always gives the
    same weights; the caller's torch random state is left untouched.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=4 * _LATENT_CHANNELS,  # 2×2 packed latents
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=_FLUX_T5,
            pooled_projection_dim=_CLIP_L,
            guidance_embeds=True,
            axes_dims_rope=(4, 6, 6),
        )
        vae = _seeded(seed, lambda: tiny_flow_vae(**FLUX_VAE))
        text_encoder = _seeded(seed, lambda: CLIPTextModel(text_config(_CLIP_L, projection_dim=_CLIP_L)))
        text_encoder_2 = _seeded(seed, lambda: tiny_t5(_FLUX_T5))
    pipe = FluxPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_tokenizer(path / "tokenizer"),
        text_encoder_2=text_encoder_2,
        tokenizer_2=build_t5_tokenizer(path / "tokenizer_2"),
    )
    pipe.save_pretrained(path, safe_serialization=True)
    logger.info("Built tiny flux model (seed %d) at %s", seed, path)
    return path
