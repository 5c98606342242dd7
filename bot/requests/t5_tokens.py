"""Exact T5 token counts before anything is charged: SD3.5 and FLUX.1 read a prompt through T5 up to a fixed
length, and a longer one is refused. The count uses the model's own tokenizer file (``tokenizer_3/tokenizer.json``
of SD3, ``tokenizer_2/tokenizer.json`` of FLUX.1) through the ``tokenizers`` library (no torch), which gives the
engine's count (the same file behind transformers' fast tokenizer, ``</s>`` included). Where the file is not on this
machine (a hub model not downloaded yet, a single file whose config folder lacks it) the caller falls back to
counting words, and the engine counts again before it renders.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from config.model_registry import ModelSpec
from engine.model_sources import model_folder, source_kind

T5_TOKENIZER_FOLDERS = {"sd3": "tokenizer_3", "flux": "tokenizer_2"}
"""Where each T5 family's pipeline keeps its T5 tokenizer."""
TOKENIZER_FILE = "tokenizer.json"


_FOUND: dict[tuple[str, str, str], Path] = {}
"""Tokenizer files already found, by model source, config and models folder: finding a hub model's reads its
cached snapshot's index and folders, which need not happen on every request (a miss is looked for again: the model
may be downloaded meanwhile)."""


def t5_tokenizer_file(spec: ModelSpec, models_dir: Path) -> Path | None:
    """The T5 tokenizer file of a model as it loads here (its folder, its hub snapshot, a single file's config
    folder, a tiny model's built folder), or None when the family has no T5 or the file is not on this machine."""
    name = T5_TOKENIZER_FOLDERS.get(spec.family)
    if name is None:
        return None
    key = (spec.source, spec.config, str(models_dir))
    found = _FOUND.get(key)
    if found is not None and found.is_file():
        return found
    if source_kind(spec.source) == "single_file":
        folder: Path | None = Path(spec.config).expanduser() if spec.config else None
    else:
        folder = model_folder(spec, models_dir)
    if folder is None:
        return None
    path = folder / name / TOKENIZER_FILE
    if not path.is_file():
        return None
    _FOUND[key] = path
    return path


@functools.lru_cache(maxsize=8)
def _tokenizer(path: str, stamp: tuple[int, int]) -> Tokenizer:
    """The tokenizer of ``path`` as it is now (``stamp``: its size and modification time, so a replaced file is
    read again)."""
    return Tokenizer.from_file(path)


def t5_token_counts(path: Path, texts: Sequence[str]) -> list[int]:
    """How many T5 tokens each of ``texts`` is, ``</s>`` included. Raises OSError or ValueError (from tokenizers'
    Exception) when the file cannot be read."""
    status = path.stat()
    try:
        tokenizer = _tokenizer(str(path), (status.st_size, status.st_mtime_ns))
    except Exception as error:  # tokenizers raises plain Exception for a file it cannot parse
        raise ValueError(f"{path} is not a tokenizer file: {error}") from error
    return [len(encoding.ids) for encoding in tokenizer.encode_batch(list(texts))]
