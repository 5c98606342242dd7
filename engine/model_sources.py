"""What kind of thing a registry ``source`` is, and whether it is on this machine. No torch: the bot uses it too."""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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
    """What is wrong with a local source (a folder or a single file) that can be seen without loading it, or None;
    always None for a hub id or a tiny model (nothing on this machine to look at)."""
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


def lora_problem(path: str) -> str | None:
    """What is wrong with a LoRA's ``path`` (always a local file: it is never looked up on the hub), or None."""
    local = Path(path).expanduser()
    if local.is_file():
        return None
    if local.is_dir():
        return f"{path} is a folder, not a LoRA file (.safetensors)"
    return f"the file {path} does not exist"


LORA_WEIGHTS_FILE = "pytorch_lora_weights.safetensors"
"""The file a hub LoRA repository holds its weights in (what ``save_lora_weights`` writes; the LCM-LoRAs too)."""
_HUB_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


def fuse_lora_is_local(value: str) -> bool:
    """Whether a model's ``fuse_lora`` is a local file (it starts with ``./``, ``/`` or ``~``, or exists), not a
    hub id."""
    return value.startswith((".", "/", "~")) or Path(value).expanduser().exists()


def fuse_lora_problem(value: str) -> str | None:
    """What is wrong with a model's ``fuse_lora`` that can be seen without loading it, or None (also for none): a
    local file that is missing, or a hub id that is not of the form ``org/repo``."""
    if not value:
        return None
    if fuse_lora_is_local(value):
        problem = lora_problem(value)
        return f"its fuse_lora {problem.removeprefix('the ')}" if problem is not None else None
    if _HUB_REPO_ID.fullmatch(value) is None:
        return f"its fuse_lora {value!r} is neither a local file (./, / or ~) nor a hub id (org/repo)"
    return None


def fuse_lora_cached(value: str) -> Path | None:
    """The local file of a ``fuse_lora``: the file itself, or a hub LoRA's weights in the Hugging Face cache;
    None when it is not on this machine."""
    if fuse_lora_is_local(value):
        path = Path(value).expanduser()
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache  # light: no torch

    try:
        cached = try_to_load_from_cache(value, LORA_WEIGHTS_FILE)
    except ValueError:  # not a valid repo id
        return None
    return Path(cached) if isinstance(cached, str) else None


class SourceSpec(Protocol):
    """What :func:`model_is_present` needs of a registry entry (``config.model_registry.ModelSpec`` or
    ``engine.protocol.ModelEntry``)."""

    @property
    def source(self) -> str: ...

    @property
    def config(self) -> str: ...

    @property
    def fuse_lora(self) -> str: ...


HUB_INDEX_FILE = "model_index.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def model_is_present(spec: SourceSpec) -> bool:
    """Whether the model loads without the network: a tiny model (built locally), a local folder or file that is
    complete, or a hub model whose files are all in the Hugging Face cache; and the LoRA it fuses at load, if any,
    is on this machine too. Cheap and torch-free: the bot calls it before it charges for a request.
    """
    if spec.fuse_lora and fuse_lora_cached(spec.fuse_lora) is None:
        return False
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


# --- weight variants (fp16) and sizes, read from file names and safetensors headers: no torch ------------------

FP16 = "fp16"
"""The variant most Stable Diffusion repositories ship next to their full-precision weights (``*.fp16.safetensors``):
half the download and disk; loaded when the engine runs in fp16 or bf16."""
FULL = ""
"""The default (full-precision, usually fp32) weight files, as a variant name."""
WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
"""How diffusers and transformers name weight files (before the variant and the suffix)."""
_SHARD = r"-\d{5}-of-\d{5}"
_WEIGHT_FILE = re.compile(
    rf"^(?:{'|'.join(WEIGHT_STEMS)})(?:{_SHARD})?(?:\.(?P<variant>[A-Za-z0-9_]+)(?:{_SHARD})?)?\.(?:safetensors|bin)$"
)
_DTYPE_BYTES = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


def weight_variant(filename: str) -> str | None:
    """The variant of a weight file: ``fp16`` for ``model.fp16.safetensors`` (or a shard such as
    ``model.fp16-00001-of-00002.safetensors``), ``""`` for full-precision weights, None for anything else."""
    match = _WEIGHT_FILE.match(filename)
    if match is None:
        return None
    return match.group("variant") or FULL


@dataclass(frozen=True)
class WeightsOnDisk:
    """Which weight variants each network component of a diffusers folder holds (``""`` = full precision)."""

    components: tuple[tuple[str, frozenset[str]], ...]

    @property
    def has_fp16(self) -> bool:
        """Some component has fp16 weights (diffusers then loads those, and the others' default files)."""
        return any(FP16 in variants for _, variants in self.components)

    @property
    def all_fp16(self) -> bool:
        return bool(self.components) and all(FP16 in variants for _, variants in self.components)

    @property
    def all_full(self) -> bool:
        """Every component has its full-precision weights, so the folder loads without a variant."""
        return all(FULL in variants for _, variants in self.components)

    def label(self) -> str:
        """``fp16``, ``full precision``, ``fp16 + full precision`` or ``fp16 (some parts full precision)``;
        empty for a folder without weights."""
        if not self.components:
            return ""
        if not self.has_fp16:
            return "full precision"
        if self.all_fp16:
            return "fp16 + full precision" if self.all_full else "fp16"
        return "fp16 (some parts full precision)"


def weights_on_disk(folder: Path) -> WeightsOnDisk:
    """The weight variants of each network component (a folder with a ``config.json``) that
    ``model_index.json`` lists; no components when the index is missing or unreadable."""
    try:
        index = json.loads((folder / HUB_INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return WeightsOnDisk(())
    components = []
    for name, value in sorted(index.items()) if isinstance(index, dict) else []:
        if name.startswith("_") or not isinstance(value, list) or None in value:
            continue
        component = folder / name
        if not (component / "config.json").is_file():
            continue
        variants = {weight_variant(path.name) for path in component.iterdir() if path.is_file()}
        variants.discard(None)
        components.append((name, frozenset(variant for variant in variants if variant is not None)))
    return WeightsOnDisk(tuple(components))


def choose_variant(dtype: str, weights: WeightsOnDisk) -> str | None:
    """The ``variant=`` to load a folder with: ``fp16`` when the engine runs in fp16 or bf16 (or ``auto``, which is
    fp16 on a GPU) and some component has fp16 weights, or when only those are complete; else None (the default
    files). ``dtype`` is the engine's dtype name (``fp16``, ``bf16``, ``fp32``, ``auto``, or ``float16`` …)."""
    if not weights.has_fp16:
        return None
    half = dtype.removeprefix("torch.") in ("fp16", "bf16", "float16", "bfloat16", "half")
    return FP16 if half or not weights.all_full else None


def weight_files(folder: Path, variant: str | None) -> dict[str, list[Path]]:
    """The weight files ``from_pretrained(folder, variant=variant)`` reads, by component: those of ``variant``
    where the component has them, else its full-precision ones (safetensors before bin)."""
    files: dict[str, list[Path]] = {}
    for name, variants in weights_on_disk(folder).components:
        wanted = variant if variant is not None and variant in variants else FULL
        candidates = sorted(
            path for path in (folder / name).iterdir() if path.is_file() and weight_variant(path.name) == wanted
        )
        safetensors = [path for path in candidates if path.suffix == ".safetensors"]
        files[name] = safetensors or candidates
    return files


def component_parameters(folder: Path, variant: str | None) -> dict[str, int]:
    """Parameters of each network component of a diffusers folder, from the safetensors headers of the files
    ``variant`` loads (no torch, a few KiB read per file)."""
    return {name: parameter_count(paths) for name, paths in weight_files(folder, variant).items()}


def disk_bytes(folder: Path, variant: str | None) -> int:
    """Bytes on disk of the weight files ``variant`` loads (links followed: a hub snapshot's files are links)."""
    return sum(path.stat().st_size for paths in weight_files(folder, variant).values() for path in paths)


def safetensors_header(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file by name (each one's dtype, shape and offsets), from its header alone (a few
    KiB are read)."""
    with path.open("rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header: dict[str, Any] = json.loads(file.read(length))
    header.pop("__metadata__", None)
    return header


def safetensors_parameters(path: Path) -> tuple[int, int]:
    """(parameters, bytes) of the tensors in a safetensors file, from its header alone."""
    count = size = 0
    for tensor in safetensors_header(path).values():
        numel = math.prod(tensor["shape"])
        count += numel
        size += numel * _DTYPE_BYTES.get(tensor["dtype"], 4)
    return count, size


def parameter_count(paths: list[Path]) -> int:
    """Parameters in these weight files: exact for safetensors, estimated for ``.bin`` as 4 bytes each."""
    total = 0
    for path in paths:
        if path.suffix == ".safetensors":
            total += safetensors_parameters(path)[0]
        else:
            total += path.stat().st_size // 4
    return total


def weights_size(folder: Path) -> int:
    """Bytes on disk of every weight file (all variants) of the network components of a diffusers folder."""
    total = 0
    for name, _variants in weights_on_disk(folder).components:
        for path in (folder / name).iterdir():
            if path.is_file() and weight_variant(path.name) is not None:
                total += path.stat().st_size
    return total


def model_folder(spec: SourceSpec, models_dir: Path) -> Path | None:
    """The local diffusers folder a registry source loads from (a tiny model's built folder, a local folder, a
    hub model's cached snapshot), or None (a single file, or a model not on disk)."""
    kind = source_kind(spec.source)
    if kind == "tiny":
        return models_dir / f"tiny-{spec.source.removeprefix(TINY_PREFIX)}"
    if kind == "folder":
        return Path(spec.source).expanduser()
    if kind == "hub":
        return hub_snapshot(spec.source)
    return None
