"""What the bot and the engine share about ControlNets: the control modes, the range of the control weight, where
a ControlNet's or a depth estimator's weights come from and whether they are on this machine. Torch-free: the bot
asks :func:`control_source_problem` before it charges for a control job; the engine resolves the same sources when
it loads them.

A source is ``tiny:<name>`` (built locally, see :mod:`engine.tiny_controlnet`), a local folder holding a
``config.json`` and its weights (a diffusers ControlNet folder, a transformers depth-estimation folder), or a
Hugging Face hub id that must already be in the local cache (a member's request never starts a download).
"""

from __future__ import annotations

from pathlib import Path

from engine.model_sources import TINY_PREFIX, WEIGHT_SUFFIXES

CONTROL_MODES: tuple[str, ...] = ("canny", "depth", "lineart", "scribble", "raw")
"""What a control image is turned into before the ControlNet sees it (in the engine, :mod:`engine.control_maps`):
``canny`` edges (OpenCV), ``depth`` (the ``[depth]`` estimator), ``lineart`` and ``scribble`` (simple deterministic
line extractors), or ``raw``: the image already is a control map (edges, depth, a pose skeleton), used as it is."""
CONTROL_WEIGHT_MIN = 0.0
CONTROL_WEIGHT_MAX = 2.0
DEFAULT_CONTROL_WEIGHT = 1.0
"""``--cw``: how strongly the control map steers the image (diffusers' ``controlnet_conditioning_scale``)."""

TINY_CONTROL_SOURCES: tuple[str, ...] = ("controlnet-sd15", "controlnet-sdxl", "depth")
"""The tiny sources :func:`engine.tiny_controlnet.ensure_tiny_control` builds (``tiny:<name>``)."""

CONFIG_FILE = "config.json"


def control_source_kind(source: str) -> str:
    """``tiny``, ``folder`` or ``hub``."""
    if source.startswith(TINY_PREFIX):
        return "tiny"
    path = Path(source).expanduser()
    if path.is_absolute() or source.startswith((".", "~")) or path.exists():
        return "folder"
    return "hub"


def folder_problem(folder: Path) -> str | None:
    """What is wrong with a local weights folder (no config.json, no weights), or None."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not (folder / CONFIG_FILE).is_file():
        return f"{folder} has no {CONFIG_FILE}, so it is not a diffusers or transformers model folder"
    if not any(path.name.endswith(WEIGHT_SUFFIXES) for path in folder.iterdir()):
        return f"{folder} has no weights (*.safetensors or *.bin)"
    return None


def hub_cached_folder(repo_id: str) -> Path | None:
    """The cached snapshot of a hub repository holding a config.json and weights, or None."""
    from huggingface_hub import try_to_load_from_cache  # light: no torch

    try:
        cached = try_to_load_from_cache(repo_id, CONFIG_FILE)
    except ValueError:  # not a valid repo id
        return None
    if not isinstance(cached, str):
        return None
    folder = Path(cached).parent
    return folder if folder_problem(folder) is None else None


def control_source_problem(source: str) -> str | None:
    """What keeps ``source`` from loading without the network, or None: an unknown tiny name, a local folder that is
    missing or incomplete, a hub id that is not in the local Hugging Face cache."""
    kind = control_source_kind(source)
    if kind == "tiny":
        name = source.removeprefix(TINY_PREFIX)
        if name not in TINY_CONTROL_SOURCES:
            choices = ", ".join(TINY_PREFIX + known for known in TINY_CONTROL_SOURCES)
            return f"{source} is not a tiny source; use one of: {choices}"
        return None
    if kind == "folder":
        return folder_problem(Path(source).expanduser())
    if hub_cached_folder(source) is None:
        return (
            f"{source} is not downloaded on this machine (members never start a download): fetch it into the "
            f"Hugging Face cache, e.g. `hf download {source}`, or point source at a local folder"
        )
    return None
