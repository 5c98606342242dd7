"""A tiny random-weight BLIP image-captioning model, built in code, for /describe's tests and rehearsals.

Like the tiny diffusion models (:mod:`engine.tiny`), it is the real architecture
(``BlipForConditionalGeneration`` with its ``BlipProcessor``) at a handful of parameters, saved with
``save_pretrained`` and loaded back through the same ``from_pretrained`` path as an owner's captioning model. Its
tokenizer is a BERT word-piece tokenizer over a small English vocabulary written here (no download), so its
random captions are strings of real words. The captions mean nothing: the point is the plumbing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

from engine.tiny_folders import build_into_place

log = logging.getLogger(__name__)

TINY_CAPTIONERS: tuple[str, ...] = ("blip",)
"""Tiny captioning models :func:`ensure_tiny_captioner` builds (``tiny:<name>`` sources of ``[describe]``)."""
IMAGE_SIZE = 32
HIDDEN = 32
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
DECODER_START = "[DEC]"
"""BLIP's text decoder starts every caption with this token (the tokenizer's ``bos_token``)."""
WORDS = (
    "a an the of on in with and at by under over near",
    "cat dog fox owl horse bird woman man girl boy child robot dragon knight",
    "portrait painting photo illustration sketch poster landscape city street forest river mountain lake sea",
    "beach desert castle house tower bridge garden field sky clouds moon sun stars snow rain fog",
    "red blue green golden silver purple orange black white pink dark bright soft old small large",
    "sitting standing walking flying looking holding wearing smiling glowing",
    "sunset night morning light shadows flowers tree trees window door table chair car boat",
    "style art detailed colorful cinematic vintage watercolor oil digital cozy",
)
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "processor_config.json",
    "tokenizer_config.json",
)


def vocabulary() -> list[str]:
    """The tiny tokenizer's tokens: BERT's special tokens, the words, then BLIP's decoder start token."""
    words = [word for line in WORDS for word in line.split()]
    return [*SPECIAL_TOKENS, *dict.fromkeys(words), DECODER_START]


def build_tiny_blip(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny random-weight BLIP captioning model (model, tokenizer and image processor) in ``path``.

    The same ``seed`` always gives the same weights; the caller's global torch random state is left untouched."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    tokenizer = BertTokenizer(
        vocab={token: index for index, token in enumerate(vocab)}, bos_token=DECODER_START, model_max_length=64
    )
    image_processor = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = BlipConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": HIDDEN,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 64,
            "encoder_hidden_size": HIDDEN,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
        },
        vision_config={
            "hidden_size": HIDDEN,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
            "projection_dim": HIDDEN,
        },
        projection_dim=HIDDEN,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BlipForConditionalGeneration(config)
    model.save_pretrained(path, safe_serialization=True)
    processor.save_pretrained(path)
    log.info("built tiny BLIP captioner (seed %d) at %s", seed, path)
    return path


def ensure_tiny_captioner(name: str, models_dir: Path) -> Path:
    """``models_dir / f"tiny-{name}"``, built there when missing or incomplete (in a temporary folder renamed into
    place, so an interrupted build never looks complete). Raises ValueError for a name that is not tiny."""
    if name not in TINY_CAPTIONERS:
        raise ValueError(f"unknown tiny captioning model {name!r}; use one of: {', '.join(TINY_CAPTIONERS)}")
    target = Path(models_dir) / f"tiny-{name}"
    if _is_complete(target):
        return target
    return build_into_place(target, build_tiny_blip, _is_complete)


def _is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds every file a built tiny captioner has."""
    return all((folder / file).is_file() for file in REQUIRED_FILES)
