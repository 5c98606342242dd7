"""What kind of thing a registry ``source`` is, and whether it is on this machine. No torch: the bot uses it too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

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


class SourceSpec(Protocol):
    """What :func:`model_is_present` needs of a registry entry (``config.settings.ModelSpec`` or
    ``engine.protocol.ModelEntry``)."""

    @property
    def source(self) -> str: ...

    @property
    def config(self) -> str: ...


HUB_INDEX_FILE = "model_index.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def model_is_present(spec: SourceSpec) -> bool:
    """Whether the model loads without the network: a tiny model (built locally), a local folder or file that is
    complete, or a hub model whose files are all in the Hugging Face cache. Cheap and torch-free: the bot calls it
    before it charges for a request.
    """
    kind = source_kind(spec.source)
    if kind == "tiny":
        return True
    if kind in ("folder", "single_file"):
        return source_problem(spec.source, spec.config) is None
    return hub_snapshot(spec.source) is not None


def hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub model when every component it lists is there, else None.

    A component folder must hold files, and one with a ``config.json`` (a network: UNet, VAE, text encoder) must
    hold weights too, so an interrupted download is not taken for a complete one.
    """
    from huggingface_hub import try_to_load_from_cache  # light: no torch

    try:
        cached = try_to_load_from_cache(repo_id, HUB_INDEX_FILE)
    except ValueError:  # not a valid repo id
        return None
    if not isinstance(cached, str):
        return None
    snapshot = Path(cached).parent
    try:
        index = json.loads(Path(cached).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or None in value:
            continue
        folder = snapshot / name
        files = [path.name for path in folder.iterdir() if path.is_file()] if folder.is_dir() else []
        if not files:
            return None
        if "config.json" in files and not any(file.endswith(WEIGHT_SUFFIXES) for file in files):
            return None
    return snapshot
