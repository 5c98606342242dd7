"""Where an IP-Adapter's files are and whether they are on this machine. No torch: the bot checks an adapter with it
before it charges for a request, the engine resolves the adapter's source with it.

A source is ``tiny:<name>`` (built locally on first use), a local folder (``/…``, ``./…``, ``~…`` or an existing
path), or a Hugging Face hub id, which loads from the local cache only: a member's request never starts a download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

TINY_PREFIX = "tiny:"
TINY_ADAPTER_NAMES = ("ip-adapter-sd15", "ip-adapter-sdxl")
"""The tiny adapters :func:`engine.tiny_ip_adapter.ensure_tiny_ip_adapter` builds (``tiny:<name>`` sources)."""


class AdapterFiles(Protocol):
    """What :func:`adapter_problem` reads of an adapter entry (``config.ip_adapters.IpAdapterSpec``)."""

    @property
    def source(self) -> str: ...

    @property
    def weight_path(self) -> str: ...

    @property
    def image_encoder_path(self) -> str: ...


def adapter_kind(source: str) -> str:
    """``tiny``, ``folder`` or ``hub`` for an adapter's ``source``."""
    if source.startswith(TINY_PREFIX):
        return "tiny"
    if source.startswith((".", "/", "~")) or Path(source).expanduser().exists():
        return "folder"
    return "hub"


def adapter_problem(spec: AdapterFiles) -> str | None:
    """What keeps an adapter from loading without the network, in words for the owner (with paths), or None: an
    unknown tiny adapter, a local folder without its weight file or image encoder, a hub adapter not in the Hugging
    Face cache."""
    kind = adapter_kind(spec.source)
    if kind == "tiny":
        name = spec.source.removeprefix(TINY_PREFIX)
        if name not in TINY_ADAPTER_NAMES:
            return f"{spec.source} is not a tiny IP-Adapter; use one of: {', '.join(TINY_ADAPTER_NAMES)}"
        return None
    encoder_config = f"{spec.image_encoder_path}/config.json"
    if kind == "folder":
        folder = Path(spec.source).expanduser()
        if not folder.is_dir():
            return f"{spec.source} is not a folder"
        for relative in (spec.weight_path, encoder_config):
            if not (folder / relative).is_file():
                return f"{folder / relative} does not exist"
        return None
    from huggingface_hub import try_to_load_from_cache  # light: no torch

    for filename in (spec.weight_path, encoder_config):
        try:
            cached = try_to_load_from_cache(spec.source, filename)
        except ValueError:  # not a valid repo id
            return f"{spec.source!r} is neither a local folder (./, / or ~) nor a hub id (org/repo)"
        if not isinstance(cached, str):
            return (
                f"{spec.source} ({filename}) is not downloaded on this machine; fetch it once with "
                f"`hf download {spec.source} --include {spec.weight_path} '{spec.image_encoder_path}/*'`"
            )
    return None
