"""Loading models (diffusers folder, single file, hub id, tiny) and keeping them in an LRU. Engine process only.

One set of weights per model: the text-to-image pipeline is loaded once and the image-to-image and inpainting
pipelines are made from it with ``from_pipe``, which shares every component (memory = one model, not three).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers

from engine.controlnet_models import ControlModels, control_pipeline
from engine.device import pick_device, pick_dtype
from engine.flow_families import pipeline_family
from engine.flow_quantize import check_quantizations, pipeline_quantization
from engine.fused_lora import FusedLoraError, fuse_model_lora
from engine.hub_download import DownloadPlan, DownloadProgress, download_hub_model, hub_problem, plan_download
from engine.memory import apply_memory_options, free_device_bytes
from engine.memory_advice import load_oom_message, needed_weight_bytes
from engine.model_sources import (
    TINY_PREFIX,
    choose_variant,
    hub_snapshot,
    source_kind,
    source_problem,
    weights_on_disk,
)
from engine.protocol import (
    STARTING_DOWNLOADING,
    STARTING_LOADING,
    EngineConfig,
    EngineStarting,
    ModelEntry,
)
from engine.single_file import load_single_file
from engine.speed import dtype_name, plan_speed
from engine.tiny import ensure_tiny_model
from engine.warmup import base_size_of, warm_up

log = logging.getLogger(__name__)

PhaseCallback = Callable[[EngineStarting], None]
"""Hears the phases of a model load (``downloading`` with its progress, ``loading``)."""


class ModelLoadError(Exception):
    """The model could not be loaded; the message says what to fix."""


class GpuMemoryError(ModelLoadError):
    """The model's weights do not fit in the GPU's free memory; the message says what to set."""


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
    variant: str = ""
    """``fp16`` when the fp16 variant's files were loaded, empty for the default files."""
    speed: tuple[str, ...] = ()
    """The speed settings that are on (:class:`engine.memory.Applied`), e.g. ``("bf16", "sdpa", "tf32")``."""
    compiled: str = ""
    """How the UNet is compiled (``regional``, ``full``), or empty."""
    _derived: dict[str, Any] = field(default_factory=dict)

    def pipeline_for(self, kind: str, controlnet: Any = None) -> Any:
        """``txt2img``, ``img2img`` or ``inpaint``: the latter two share this model's components (as, with a
        ``controlnet``, its txt2img or img2img ControlNet pipeline does)."""
        if controlnet is not None:
            return control_pipeline(self, kind, controlnet)
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


def load_entry(entry: ModelEntry, config: EngineConfig, on_phase: PhaseCallback | None = None) -> LoadedModel:
    """Load one registry entry onto the chosen device. Raises ModelLoadError with a readable reason, GpuMemoryError
    when its weights do not fit in the GPU.

    Only the start-up model (``config.model_name``) may be fetched from the Hugging Face hub (its fp16 variant where
    the repository has one, with progress told to ``on_phase``); any other hub model loads from the local cache
    only, so a member's request never starts a download. A folder with fp16 weights loads them when the engine
    runs in fp16 or bf16 (``variant="fp16"``), the default files otherwise.
    """
    started = time.perf_counter()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    try:
        device = pick_device(config.device)
        dtype = pick_dtype(config.dtype, device)
        check_quantizations(config.memory, device)
    except ValueError as error:
        raise ModelLoadError(str(error)) from error
    source = resolve_source(entry, config.data_dir)
    extra: dict[str, Any] = {}
    offline_only = cache_only(entry, config)
    if offline_only:
        check_available(entry, config)
        extra["local_files_only"] = True
    single_file = source_kind(entry.source) == "single_file"
    if source_kind(entry.source) == "hub":
        source = str(fetch_hub_model(entry, on_phase))
    variant = None if single_file else choose_variant(str(dtype), weights_on_disk(Path(source)))
    if variant is not None:
        extra["variant"] = variant
    quant = pipeline_quantization(entry.family, config.memory, dtype)
    if quant is not None:
        extra["quantization_config"] = quant
    if on_phase is not None:
        detail = f"{variant or 'full-precision'} weights on {device}"
        on_phase(EngineStarting(STARTING_LOADING, model=entry.name, detail=detail))
    out_of_memory = False
    try:
        pipeline = _from_pretrained(entry, source, dtype, offline_only, extra)
        fuse_model_lora(pipeline, entry, allow_download=entry.name == config.model_name)
        family = detect_family(type(pipeline).__name__, entry.family)
        plan = plan_speed(config.memory, family, device, dtype_name(dtype))
        applied = apply_memory_options(pipeline, config.memory, device, plan)
    except torch.OutOfMemoryError:
        out_of_memory = True
    except FusedLoraError as error:
        raise ModelLoadError(str(error)) from error
    if out_of_memory:  # raised outside the handler, so no traceback keeps the half-moved weights alive
        pipeline = None
        _free_memory()
        needed = needed_weight_bytes(Path(source), single_file, variant, str(dtype), entry.family, config.memory)
        free = free_device_bytes(device)
        raise GpuMemoryError(load_oom_message(entry.name, needed, free, str(dtype), config.memory, entry.family))
    pipeline.set_progress_bar_config(disable=True)
    log.info(
        "model %s loaded on %s (%s, %s weights); memory options: %s; speed: %s",
        entry.name,
        device,
        dtype,
        variant or "full-precision",
        ", ".join(applied.memory) or "-",
        ", ".join(applied.speed),
    )
    weight_total = sum(
        parameter.numel() * parameter.element_size()
        for component in pipeline.components.values()
        if isinstance(component, torch.nn.Module)
        for parameter in component.parameters()
    )
    return LoadedModel(
        name=entry.name,
        family=family,
        pipeline=pipeline,
        device=device,
        dtype=dtype,
        scheduler_config=pipeline.scheduler.config,
        load_seconds=time.perf_counter() - started,
        weight_bytes=weight_total,
        variant=variant or "",
        speed=applied.speed,
        compiled=applied.compiled,
    )


def _from_pretrained(
    entry: ModelEntry, source: str, dtype: torch.dtype, offline_only: bool, extra: dict[str, Any]
) -> Any:
    """The text-to-image pipeline of a folder or single file, on the CPU (or the GPU for quantized parts).
    Raises ModelLoadError; lets torch.OutOfMemoryError through."""
    try:
        if source_kind(entry.source) == "single_file":
            return load_single_file(entry.family, Path(source), Path(entry.config).expanduser(), dtype, extra)
        return diffusers.AutoPipelineForText2Image.from_pretrained(source, dtype=dtype, **extra)
    except torch.OutOfMemoryError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        if offline_only:
            raise ModelLoadError(f"{_not_downloaded(entry.name, entry.source)} ({_first_line(error)})") from error
        raise ModelLoadError(
            f"model {entry.name!r} from {source} did not load: {_first_line(error)}. "
            "Check that the folder or file is complete (re-download it) or that the hub id is right and this "
            "machine is online or has the model in its Hugging Face cache."
        ) from error


def fetch_hub_model(entry: ModelEntry, on_phase: PhaseCallback | None = None) -> Path:
    """The cached snapshot folder of a hub model, downloading it first when it is not in the cache (its fp16
    variant where the repository has one), with its progress told to ``on_phase``. Raises ModelLoadError."""
    from huggingface_hub import constants

    snapshot = hub_snapshot(entry.source)
    if snapshot is not None:
        return snapshot
    pull = f"`python -m bot models pull {entry.name}`"
    if constants.is_offline_mode():
        raise ModelLoadError(
            f"model {entry.name!r} ({entry.source}) is not downloaded, and HF_HUB_OFFLINE is set so nothing can be "
            f"fetched: run {pull} where huggingface.co can be reached, or unset HF_HUB_OFFLINE"
        )
    try:
        plan = plan_download(entry.source)
    except Exception as error:  # the hub client's own errors: one line
        raise ModelLoadError(f"model {entry.name!r} ({entry.source}): {hub_problem(error)}") from error

    def report(current: DownloadPlan, progress: DownloadProgress) -> None:
        if on_phase is not None:
            on_phase(
                EngineStarting(
                    STARTING_DOWNLOADING,
                    model=entry.name,
                    detail=f"{entry.source}, {current.describe()}",
                    done_bytes=progress.done_bytes,
                    total_bytes=progress.total_bytes,
                    done_files=progress.done_files,
                    total_files=progress.total_files,
                )
            )

    report(plan, DownloadProgress(0, plan.total_bytes, 0, len(plan.files)))
    log.info("downloading model %s from the Hugging Face hub (%s, %s)", entry.name, entry.source, plan.describe())
    try:
        download_hub_model(entry.source, plan=plan, on_progress=report)
    except Exception as error:  # network, disk full: one line
        raise ModelLoadError(
            f"model {entry.name!r} ({entry.source}) could not be downloaded: {_first_line(error)}; "
            f"{pull} resumes it with a progress bar"
        ) from error
    snapshot = hub_snapshot(entry.source)
    if snapshot is None:
        raise ModelLoadError(
            f"model {entry.name!r} ({entry.source}): the download finished but some components are missing; "
            "is it a diffusers repository (with model_index.json)?"
        )
    return snapshot


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
    ``sd3`` and ``flux`` for theirs, else the pipeline's class name (other families run through the Auto pipelines
    without compel or previews).
    """
    if "XL" in pipeline_class:
        return "sdxl"
    if pipeline_class.startswith("StableDiffusion") and not pipeline_class.startswith("StableDiffusion3"):
        return configured if configured in ("sd15", "sd2") else "sd15"
    return pipeline_family(pipeline_class) or pipeline_class


class ModelCache:
    """Loaded models by name, least recently used dropped first beyond ``max_loaded`` or the memory budget."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.entries: dict[str, ModelEntry] = {entry.name: entry for entry in config.models}
        self.entries.setdefault(config.model_name, ModelEntry(config.model_name, config.model_source, config.family))
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self.controlnets = ControlModels(config)  # and the depth estimator, kept like the models

    @property
    def loaded_names(self) -> list[str]:
        """Loaded models, least recently used first."""
        return list(self._loaded)

    def get(self, name: str = "", *, on_phase: PhaseCallback | None = None) -> LoadedModel:
        """The loaded model ``name`` (the start-up model when empty), loading it and evicting others as needed;
        ``on_phase`` hears the load's phases (the engine's start-up tells them to the bot)."""
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
        model = load_entry(entry, self.config, on_phase)
        if model.compiled:  # compile now, before any job: the start-up model before EngineReady
            warm_up(model, base_size_of(entry), on_phase)
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
