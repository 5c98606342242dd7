"""What kind of thing a registry ``source`` is. Pure (no torch): the bot's ``doctor`` uses it too."""

from __future__ import annotations

from pathlib import Path

TINY_PREFIX = "tiny:"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


def source_kind(source: str) -> str:
    """``tiny``, ``single_file``, ``folder`` or ``hub`` for a registry source."""
    if source.startswith(TINY_PREFIX):
        return "tiny"
    if source.lower().endswith(SINGLE_FILE_SUFFIXES):
        return "single_file"
    path = Path(source).expanduser()
    if path.is_absolute() or source.startswith((".", "~")) or path.exists():
        return "folder"
    return "hub"


def source_problem(source: str, config: str = "") -> str | None:
    """What is wrong with a source that can be seen without loading it, or None."""
    kind = source_kind(source)
    path = Path(source).expanduser()
    if kind == "single_file":
        if not path.is_file():
            return f"the checkpoint file {source} does not exist"
        if not config:
            return "a single-file checkpoint needs `config` (a local diffusers folder of the same family)"
        if not (Path(config).expanduser() / "model_index.json").is_file():
            return f"config {config} has no model_index.json"
    elif kind == "folder":
        if not path.is_dir():
            return f"{source} is not a folder"
        if not (path / "model_index.json").is_file():
            return f"{path} has no model_index.json, so it is not a diffusers folder"
    return None
