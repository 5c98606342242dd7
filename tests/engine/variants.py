"""Give a diffusers folder an fp16 variant, the way hub repositories ship one: ``*.fp16.safetensors`` next to the
full-precision files, with every floating-point tensor stored in fp16."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.model_sources import FULL, weight_variant


def write_fp16_variant(folder: Path, *, keep_full: bool = True, components: tuple[str, ...] | None = None) -> None:
    """Write ``NAME.fp16.safetensors`` beside each full-precision ``NAME.safetensors`` of the component folders
    (all, or ``components``); drop the full-precision files unless ``keep_full``."""
    for path in sorted(folder.glob("*/*.safetensors")):
        if weight_variant(path.name) != FULL or (components is not None and path.parent.name not in components):
            continue
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata()
        tensors = {
            key: tensor.to(torch.float16) if tensor.is_floating_point() else tensor
            for key, tensor in load_file(str(path)).items()
        }
        target = path.with_name(path.name.removesuffix(".safetensors") + ".fp16.safetensors")
        save_file(tensors, str(target), metadata=metadata)
        if not keep_full:
            path.unlink()


def copy_model(source: Path, target: Path) -> Path:
    """A private copy of a model folder (tests change its files)."""
    shutil.copytree(source, target)
    return target


def put_in_hub_cache(folder: Path, cache: Path, repo_id: str, commit: str = "1" * 40) -> Path:
    """Lay a model folder out in a Hugging Face cache as huggingface_hub writes a download: each file a blob named
    by its hash under ``blobs/``, linked from ``snapshots/<commit>/``, and ``refs/main`` naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot
