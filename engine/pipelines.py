"""Loading models (diffusers folder, single file, hub id, tiny) and keeping them in an LRU. Engine process only.

One set of weights per model: the text-to-image pipeline is loaded once and the image-to-image and inpainting
pipelines are made from it with ``from_pipe``, which shares every component (memory = one model, not three).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers

from engine.device import pick_device, pick_dtype
from engine.memory import apply_memory_options, check_quantization, quantization_config
from engine.model_sources import TINY_PREFIX, hub_snapshot, source_kind, source_problem
from engine.protocol import EngineConfig, ModelEntry
from engine.tiny import ensure_tiny_model

log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """The model could not be loaded; the message says what to fix."""


class RenderCancelledError(Exception):
    """The job was cancelled between two denoising steps."""


@dataclass
class LoadedModel:
    """A model's text-to-image pipeline on its device, plus the pipelines that share its weights."""

    name: str
    family: str
    pipeline: Any
    device: str
    dtype: torch.dtype
    scheduler_config: Any
    load_seconds: float
    weight_bytes: int = 0
    _derived: dict[str, Any] = field(default_factory=dict)

    def pipeline_for(self, kind: str) -> Any:
        """``txt2img``, ``img2img`` or ``inpaint``: the latter two share this model's components."""
        if kind == "txt2img":
            return self.pipeline
        if kind not in self._derived:
            auto = {
                "img2img": diffusers.AutoPipelineForImage2Image,
                "inpaint": diffusers.AutoPipelineForInpainting,
            }[kind]
            derived = auto.from_pipe(self.pipeline)
            derived.set_progress_bar_config(disable=True)
            self._derived[kind] = derived
        return self._derived[kind]


def resolve_source(entry: ModelEntry, data_dir: str) -> str:
    """A path or hub id diffusers understands; tiny models are built on first use. Raises ModelLoadError."""
    source = entry.source
    kind = source_kind(source)
    if kind == "tiny":
        family = source.removeprefix(TINY_PREFIX)
        return str(ensure_tiny_model(family, Path(data_dir) / "models"))
    path = Path(source).expanduser()
    if kind == "single_file":
        if not path.is_file():
            raise ModelLoadError(f"model {entry.name!r}: the checkpoint file {source} does not exist.")
        if not entry.config:
            raise ModelLoadError(
                f"model {entry.name!r}: a single-file checkpoint needs `config` set to a local diffusers folder of "
                f"the same family ({entry.family}), so nothing is fetched from the hub."
            )
        if not (Path(entry.config).expanduser() / "model_index.json").is_file():
            raise ModelLoadError(
                f"model {entry.name!r}: config {entry.config} has no model_index.json; point it at a diffusers "
                "folder of the same family."
            )
        return str(path)
    if kind == "folder":
        if not path.is_dir():
            raise ModelLoadError(
                f"model {entry.name!r}: {source} is not a folder. Point source at a diffusers folder "
                "(one with model_index.json), a .safetensors file, or use a Hugging Face hub id."
            )
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"model {entry.name!r}: {path} has no model_index.json, so it is not a diffusers folder."
            )
        return str(path)
    return source


def load_entry(entry: ModelEntry, config: EngineConfig) -> LoadedModel:
    """Load one registry entry onto the chosen device. Raises ModelLoadError with a readable reason.

    Only the start-up model (``config.model_name``) may be fetched from the Hugging Face hub; any other hub model
    loads from the local cache only (``local_files_only``), so a member's request never starts a download.
    """
    started = time.perf_counter()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    try:
        device = pick_device(config.device)
        dtype = pick_dtype(config.dtype, device)
        check_quantization(config.memory.quantize, device)
    except ValueError as error:
        raise ModelLoadError(str(error)) from error
    source = resolve_source(entry, config.data_dir)
    extra: dict[str, Any] = {}
    offline_only = cache_only(entry, config)
    if offline_only:
        check_available(entry, config)
        extra["local_files_only"] = True
    quant = quantization_config(config.memory.quantize)
    if quant is not None:
        extra["quantization_config"] = quant
    try:
        if source_kind(entry.source) == "single_file":
            single = (
                diffusers.StableDiffusionXLPipeline if entry.family == "sdxl" else diffusers.StableDiffusionPipeline
            )
            pipeline = single.from_single_file(
                source, config=str(Path(entry.config).expanduser()), torch_dtype=dtype, **extra
            )
        else:
            pipeline = diffusers.AutoPipelineForText2Image.from_pretrained(source, dtype=dtype, **extra)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        if offline_only:
            raise ModelLoadError(f"{_not_downloaded(entry.name, source)} ({_first_line(error)})") from error
        raise ModelLoadError(
            f"model {entry.name!r} from {source} did not load: {_first_line(error)}. "
            "Check that the folder or file is complete (re-download it) or that the hub id is right and this "
            "machine is online or has the model in its Hugging Face cache."
        ) from error
    pipeline.set_progress_bar_config(disable=True)
    applied = apply_memory_options(pipeline, config.memory, device)
    log.info("model %s loaded on %s (%s); memory options: %s", entry.name, device, dtype, ", ".join(applied) or "-")
    weight_bytes = sum(
        parameter.numel() * parameter.element_size()
        for component in pipeline.components.values()
        if isinstance(component, torch.nn.Module)
        for parameter in component.parameters()
    )
    family = detect_family(type(pipeline).__name__, entry.family)
    return LoadedModel(
        name=entry.name,
        family=family,
        pipeline=pipeline,
        device=device,
        dtype=dtype,
        scheduler_config=pipeline.scheduler.config,
        load_seconds=time.perf_counter() - started,
        weight_bytes=weight_bytes,
    )


def cache_only(entry: ModelEntry, config: EngineConfig) -> bool:
    """Whether ``entry`` must load from the local Hugging Face cache: a hub model other than the start-up one."""
    return source_kind(entry.source) == "hub" and entry.name != config.model_name


def check_available(entry: ModelEntry, config: EngineConfig) -> None:
    """Raise ModelLoadError, saying what to do, for a model that cannot load without fetching or fixing something:
    a cache-only hub model that is not in the cache, a local folder or file that is missing or incomplete."""
    if cache_only(entry, config) and hub_snapshot(entry.source) is None:
        raise ModelLoadError(_not_downloaded(entry.name, entry.source))
    problem = source_problem(entry.source, entry.config)
    if problem is not None:
        raise ModelLoadError(f"model {entry.name!r}: {problem}")


def detect_family(pipeline_class: str, configured: str) -> str:
    """``sdxl`` for SDXL pipelines (Turbo included), the configured SD1.x/2.x family for Stable Diffusion ones,
    else the pipeline's class name (newer families run through the Auto pipelines without compel or previews).
    """
    if "XL" in pipeline_class:
        return "sdxl"
    if pipeline_class.startswith("StableDiffusion") and not pipeline_class.startswith("StableDiffusion3"):
        return configured if configured in ("sd15", "sd2") else "sd15"
    return pipeline_class


class ModelCache:
    """Loaded models by name, least recently used dropped first beyond ``max_loaded`` or the memory budget."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.entries: dict[str, ModelEntry] = {entry.name: entry for entry in config.models}
        self.entries.setdefault(config.model_name, ModelEntry(config.model_name, config.model_source, config.family))
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()

    @property
    def loaded_names(self) -> list[str]:
        """Loaded models, least recently used first."""
        return list(self._loaded)

    def get(self, name: str = "") -> LoadedModel:
        """The loaded model ``name`` (the start-up model when empty), loading it and evicting others as needed."""
        name = name or self.config.model_name
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        entry = self.entries.get(name)
        if entry is None:
            raise ValueError(f"model {name!r} is not in the registry; use one of: {', '.join(sorted(self.entries))}")
        check_available(entry, self.config)  # before evicting: a missing model must not cost the loaded ones
        while len(self._loaded) >= max(1, self.config.max_loaded_models):
            self._evict()
        model = load_entry(entry, self.config)
        self._loaded[name] = model
        budget = int(self.config.memory_budget_gb * 2**30)
        while budget and len(self._loaded) > 1 and sum(m.weight_bytes for m in self._loaded.values()) > budget:
            self._evict()
        return model

    def _evict(self) -> None:
        name, model = self._loaded.popitem(last=False)
        log.info("dropping model %s (least recently used)", name)
        model._derived.clear()
        del model
        _free_memory()


def load_model(config: EngineConfig) -> LoadedModel:
    """Load the start-up model of ``config`` (kept for callers that need one model and no cache)."""
    return ModelCache(config).get()


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _not_downloaded(name: str, repo_id: str) -> str:
    return (
        f"model {name!r} ({repo_id}) is not downloaded on this machine, and only the start-up model is fetched from "
        f"the hub; the owner must run `python -m bot models pull {name}` first"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
