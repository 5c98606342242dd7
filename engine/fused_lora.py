"""A LoRA fused into a model's weights when it loads: an LCM-LoRA turns a base model into a 4-step one.

Unlike a prompt's ``<lora:name:weight>`` (loaded for one job, then unloaded), a model's ``fuse_lora`` is merged into
its UNet and text encoder weights once, at load, and its LoRA layers are dropped: the model then renders at the
base model's speed, with nothing to load per job. A hub LoRA (``org/repo``) is its ``pytorch_lora_weights.safetensors``;
only the engine's start-up model may fetch it, any other comes from the cache (``python -m bot models pull NAME``).

Torch is never imported here (the pipeline's own methods do the work), so the bot side may import the module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.model_sources import LORA_WEIGHTS_FILE, fuse_lora_cached, fuse_lora_is_local, fuse_lora_problem
from engine.protocol import ModelEntry

log = logging.getLogger(__name__)

FUSED_ADAPTER = "fused"
"""The adapter name the fused LoRA has while it is merged (it is gone once the model is loaded)."""


class FusedLoraError(Exception):
    """A model's ``fuse_lora`` could not be found or fused; the message says what to fix."""


def fuse_lora_file(entry: ModelEntry, *, allow_download: bool) -> Path:
    """The local file of ``entry.fuse_lora``: a local file, or a hub LoRA from the cache, downloaded first when
    ``allow_download`` (the start-up model). Raises FusedLoraError saying what to do."""
    problem = fuse_lora_problem(entry.fuse_lora)
    if problem is not None:
        raise FusedLoraError(f"model {entry.name!r}: {problem}; fix [models.{entry.name}] fuse_lora")
    cached = fuse_lora_cached(entry.fuse_lora)
    if cached is not None:
        return cached
    pull = f"`python -m bot models pull {entry.name}`"
    if fuse_lora_is_local(entry.fuse_lora) or not allow_download:
        raise FusedLoraError(
            f"model {entry.name!r}: its LoRA {entry.fuse_lora} is not downloaded on this machine; run {pull} first"
        )
    return download_fuse_lora(entry.fuse_lora, entry.name)


def download_fuse_lora(repo_id: str, name: str) -> Path:
    """Fetch a hub LoRA's weights into the Hugging Face cache (a few hundred MB at most). Raises FusedLoraError."""
    from huggingface_hub import constants, hf_hub_download

    if constants.is_offline_mode():
        raise FusedLoraError(
            f"model {name!r}: its LoRA {repo_id} is not downloaded, and HF_HUB_OFFLINE is set so nothing can be "
            f"fetched: run `python -m bot models pull {name}` where huggingface.co can be reached"
        )
    log.info("downloading the LoRA of model %s from the Hugging Face hub (%s)", name, repo_id)
    try:
        return Path(hf_hub_download(repo_id, LORA_WEIGHTS_FILE))
    except Exception as error:  # the hub client's own errors (network, a repository without that file): one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FusedLoraError(f"model {name!r}: its LoRA {repo_id} could not be downloaded: {first}") from error


def fuse_model_lora(pipeline: Any, entry: ModelEntry, *, allow_download: bool) -> None:
    """Merge ``entry.fuse_lora`` (at ``entry.fuse_lora_scale``) into the pipeline's weights and drop its LoRA
    layers; nothing when the entry has none. Raises FusedLoraError with what to fix."""
    if not entry.fuse_lora:
        return
    path = fuse_lora_file(entry, allow_download=allow_download)
    try:
        pipeline.load_lora_weights(str(path), adapter_name=FUSED_ADAPTER)
        pipeline.fuse_lora(lora_scale=entry.fuse_lora_scale, adapter_names=[FUSED_ADAPTER])
        pipeline.unload_lora_weights()
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        first = str(error).strip().splitlines()[0].rstrip(":") if str(error).strip() else type(error).__name__
        raise FusedLoraError(
            f"model {entry.name!r}: its LoRA {entry.fuse_lora} does not fit this model ({first}); is it a LoRA for "
            f"the {entry.family} family?"
        ) from error
    log.info("model %s: fused LoRA %s at %g", entry.name, entry.fuse_lora, entry.fuse_lora_scale)
