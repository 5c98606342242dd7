"""The parts every tiny random-weight model shares (see :mod:`engine.tiny`): a byte-level CLIP tokenizer built
offline, a tiny CLIP text-encoder config matching it, a two-block VAE, and the scheduler settings of Stable
Diffusion's training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffusers import AutoencoderKL
from transformers import CLIPTextConfig, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
MODEL_MAX_LENGTH = 77
TEXT_VOCAB_SIZE = 1000

SCHEDULER_COMMON: dict[str, object] = {  # shared by SD 1.5, SD2 and SDXL
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
}


def byte_level_vocab() -> dict[str, int]:
    """Return a CLIP-style byte-level BPE vocabulary with no merges.

    Every byte gets two entries (the bare character and the end-of-word form), followed by
    the start and end tokens, so any text tokenizes (one token per byte) without an unknown
    token. The end token has the highest id, as in the real CLIP vocabulary.
    """
    chars = list(bytes_to_unicode().values())
    tokens = [*chars, *(char + "</w>" for char in chars), BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def build_tokenizer(folder: Path, *, pad_token: str = EOS_TOKEN) -> CLIPTokenizer:
    """Build a tiny CLIP tokenizer offline and save it (with its vocab and merges) to ``folder``. ``pad_token``:
    the end token (SD1.5, SDXL) or ``!`` (SD2.x pads with it, token id 0)."""
    vocab = byte_level_vocab()
    folder.mkdir(parents=True, exist_ok=True)
    # The slow-tokenizer files real Stable Diffusion folders ship, next to tokenizer.json.
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(
        vocab=vocab,
        merges=[],
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=pad_token,
        model_max_length=MODEL_MAX_LENGTH,
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def text_config(
    hidden_size: int, *, projection_dim: int, num_layers: int = 2, hidden_act: str = "gelu", pad_token: str = EOS_TOKEN
) -> CLIPTextConfig:
    """Return a tiny CLIP text-encoder config whose special-token ids match the tiny tokenizer."""
    vocab = byte_level_vocab()
    return CLIPTextConfig(
        hidden_size=hidden_size,
        intermediate_size=37,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        layer_norm_eps=1e-5,
        vocab_size=TEXT_VOCAB_SIZE,
        max_position_embeddings=MODEL_MAX_LENGTH,
        projection_dim=projection_dim,
        hidden_act=hidden_act,
        bos_token_id=vocab[BOS_TOKEN],
        eos_token_id=vocab[EOS_TOKEN],
        pad_token_id=vocab[pad_token],
    )


def tiny_vae(*, force_upcast: bool, latent_channels: int = 4, **options: Any) -> AutoencoderKL:
    """Return a two-block random-weight VAE (latent scale factor 2, four latent channels unless told); ``options``
    are more ``AutoencoderKL`` settings (a flow model's VAE has no quantization convolutions, a scale and shift)."""
    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=latent_channels,
        layers_per_block=1,
        sample_size=64,
        force_upcast=force_upcast,
        **options,
    )
