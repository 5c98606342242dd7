"""Loaded ControlNets and the depth estimator, kept like models: loaded on first use onto the engine's device and
dtype, the least recently used ControlNet dropped beyond ``max_loaded_models``. Engine process only.

Sources are resolved as :mod:`engine.control_sources` describes: a tiny one is built on first use, a local folder is
read as it is, a hub id only from the local cache (never downloaded here).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from engine.control_sources import control_source_kind, control_source_problem, hub_cached_folder
from engine.model_sources import TINY_PREFIX
from engine.protocol import ControlNetEntry, EngineConfig
from engine.tiny_controlnet import ensure_tiny_control

if TYPE_CHECKING:
    from engine.control_maps import DepthEstimator
    from engine.pipelines import LoadedModel

log = logging.getLogger(__name__)


class ControlNetLoadError(ValueError):
    """A ControlNet or the depth estimator could not be loaded; the message says what to fix (a bad input to the
    job: it fails without a retry)."""


def resolve_control_source(source: str, what: str, data_dir: str) -> Path:
    """The local folder of a ControlNet or depth estimator source (a tiny one built first). Raises
    ControlNetLoadError naming ``what`` and the problem."""
    problem = control_source_problem(source)
    if problem is not None:
        raise ControlNetLoadError(f"{what}: {problem}")
    kind = control_source_kind(source)
    if kind == "tiny":
        return ensure_tiny_control(source.removeprefix(TINY_PREFIX), Path(data_dir) / "models")
    if kind == "folder":
        return Path(source).expanduser()
    folder = hub_cached_folder(source)
    if folder is None:  # went away since the check
        raise ControlNetLoadError(f"{what}: {source} is not in the local Hugging Face cache")
    return folder


class ControlModels:
    """The engine's ControlNets (by registry name) and its depth estimator, each loaded once."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.entries: dict[str, ControlNetEntry] = {entry.name: entry for entry in config.controlnets}
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self._depth: DepthEstimator | None = None

    @property
    def loaded_names(self) -> list[str]:
        """Loaded ControlNets, least recently used first."""
        return list(self._loaded)

    def entry(self, name: str) -> ControlNetEntry:
        """The registry entry ``name``. Raises ControlNetLoadError naming the known ones."""
        entry = self.entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self.entries)) or "none is configured"
            raise ControlNetLoadError(f"ControlNet {name!r} is not in the registry; known ControlNets: {known}")
        return entry

    def controlnet(self, name: str, device: str, dtype: torch.dtype) -> Any:
        """The ``ControlNetModel`` ``name`` on ``device`` in ``dtype``, loading it (and dropping the least recently
        used one beyond ``max_loaded_models``) if needed."""
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        entry = self.entry(name)
        folder = resolve_control_source(entry.source, f"ControlNet {name!r}", self.config.data_dir)
        while len(self._loaded) >= max(1, self.config.max_loaded_models):
            dropped, _model = self._loaded.popitem(last=False)
            log.info("dropping ControlNet %s (least recently used)", dropped)
        started = time.perf_counter()
        from diffusers import ControlNetModel

        try:
            model = ControlNetModel.from_pretrained(str(folder), dtype=dtype)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            raise ControlNetLoadError(
                f"ControlNet {name!r} from {entry.source} did not load: {_first_line(error)}; point source at a "
                "complete diffusers ControlNet folder (config.json and diffusion_pytorch_model.safetensors)"
            ) from error
        model.to(device)
        model.eval()
        log.info("ControlNet %s loaded on %s in %.1f s", name, device, time.perf_counter() - started)
        self._loaded[name] = model
        return model

    def depth(self, device: str, dtype: torch.dtype) -> DepthEstimator:
        """The depth estimator of ``[depth] source`` (loaded on first use). Raises ControlNetLoadError when none is
        configured or it does not load."""
        if self._depth is None:
            self._depth = self._load_depth(device, dtype)
        return self._depth

    def _load_depth(self, device: str, dtype: torch.dtype) -> DepthEstimator:
        source = self.config.depth_source
        if not source:
            raise ControlNetLoadError("control_mode=depth needs a depth estimator: set [depth] source")
        folder = resolve_control_source(source, "the depth estimator", self.config.data_dir)
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        try:
            processor = AutoImageProcessor.from_pretrained(str(folder))
            model = AutoModelForDepthEstimation.from_pretrained(str(folder), dtype=dtype)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            raise ControlNetLoadError(
                f"the depth estimator {source} did not load: {_first_line(error)}; point [depth] source at a "
                "transformers depth-estimation folder (DPT, Depth Anything)"
            ) from error
        model.to(device)
        model.eval()
        log.info("depth estimator %s loaded on %s", source, device)

        def estimate(picture: Image.Image) -> np.ndarray:
            inputs = processor(images=picture, return_tensors="pt")
            pixels = inputs["pixel_values"].to(device=device, dtype=dtype)
            with torch.inference_mode():
                predicted = model(pixel_values=pixels).predicted_depth
            return predicted[0].float().cpu().numpy()

        return estimate


def control_pipeline(model: LoadedModel, kind: str, controlnet: Any) -> Any:
    """The ControlNet pipeline of ``kind`` (``txt2img`` or ``img2img``) sharing ``model``'s components, kept with the
    model until another ControlNet takes its place. ``AutoPipelineFor…from_pipe`` keeps the model's dtype (a
    pipeline class's own ``from_pipe`` without a dtype would cast the shared weights to fp32)."""
    import diffusers

    auto = {"txt2img": diffusers.AutoPipelineForText2Image, "img2img": diffusers.AutoPipelineForImage2Image}
    if kind not in auto:
        raise ValueError(f"a ControlNet job runs as txt2img or img2img, not {kind!r}")
    key = f"controlnet-{kind}"
    held = model._derived.get(key)
    if held is not None and held[0] is controlnet:
        return held[1]
    pipe = auto[kind].from_pipe(model.pipeline, controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    model._derived[key] = (controlnet, pipe)
    log.debug("made %s for model %s", type(pipe).__name__, model.name)
    return pipe


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
