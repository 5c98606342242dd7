"""The image safety check: diffusers' :class:`StableDiffusionSafetyChecker` on every image of a task that asks for it
(``RenderTask.safety_check``), after rendering and before the task's files are reported. Engine process only.

The checker is the one Stable Diffusion pipelines ship: a CLIP vision model whose image embedding is compared with
the embeddings of NSFW concepts, each with its own threshold (the weights hold both, so a model folder decides what
is flagged). Its own ``forward`` decides: it is called as the pipelines call it, with the pixels its
:class:`~transformers.CLIPImageProcessor` makes; the images it would blacken are stand-ins, since a flagged result
is still written (the bot posts it behind a spoiler or withholds it, as the owner chose).

The checker is loaded on the first task that asks for a check, on the engine's device and dtype, and kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from PIL import Image
from transformers import CLIPImageProcessor

from engine.device import pick_device, pick_dtype
from engine.finishing import Outcome, RenderedTask
from engine.protocol import EngineConfig, FailureReason, TaskFailed

log = logging.getLogger(__name__)

FLAG_REASON = "NSFW content"
"""Why the Stable Diffusion safety checker flags an image (its concepts have no names)."""
CHECK_BATCH = 8
"""Images checked in one call of the checker (a sweep may have dozens)."""
PIPELINE_SUBFOLDERS = ("safety_checker", "feature_extractor")
"""Where a Stable Diffusion pipeline folder keeps the checker and its image processor."""


class SafetyCheckError(Exception):
    """The safety checker could not be loaded or run; the message says what to fix."""


@dataclass(frozen=True)
class SafetyChecker:
    """A loaded checker and the image processor that feeds it, on one device."""

    model: StableDiffusionSafetyChecker
    processor: CLIPImageProcessor
    device: str
    dtype: torch.dtype

    def check(self, images: Sequence[Image.Image]) -> tuple[str, ...]:
        """Per image, why it is flagged (:data:`FLAG_REASON`), or ``""`` when it passed."""
        verdicts: list[str] = []
        for start in range(0, len(images), CHECK_BATCH):
            chunk = [image.convert("RGB") for image in images[start : start + CHECK_BATCH]]
            pixels = self.processor(images=chunk, return_tensors="pt").pixel_values
            stand_ins = np.zeros((len(chunk), 1, 1, 3), dtype=np.float32)
            with torch.inference_mode():
                _, flagged = self.model(clip_input=pixels.to(self.device, self.dtype), images=stand_ins)
            verdicts.extend(FLAG_REASON if flag else "" for flag in flagged)
        return tuple(verdicts)


def checker_folders(source: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Where the checker and its image processor load from: ``(source, checker kwargs, processor kwargs)``. A local
    Stable Diffusion pipeline folder (with ``safety_checker/``) gives its subfolders; a folder or hub id that holds
    the checker itself (as ``CompVis/stable-diffusion-safety-checker`` does) gives none."""
    folder = Path(source).expanduser()
    if all((folder / name).is_dir() for name in PIPELINE_SUBFOLDERS):
        return str(folder), {"subfolder": PIPELINE_SUBFOLDERS[0]}, {"subfolder": PIPELINE_SUBFOLDERS[1]}
    if folder.is_dir():
        return str(folder), {}, {}
    if source.startswith(("/", "./", "../", "~")):
        raise SafetyCheckError(
            f"the safety classifier folder {source} does not exist; fix [safety] classifier or set enabled = false"
        )
    return source, {}, {}


def load_safety_checker(source: str, device: str, dtype: torch.dtype) -> SafetyChecker:
    """The checker of ``source`` (see :func:`checker_folders`) on ``device`` at ``dtype``. Raises SafetyCheckError."""
    where, checker_kwargs, processor_kwargs = checker_folders(source)
    try:
        model = StableDiffusionSafetyChecker.from_pretrained(where, dtype=dtype, **checker_kwargs)
        processor = CLIPImageProcessor.from_pretrained(where, **processor_kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SafetyCheckError(
            f"the safety classifier {source} did not load ({first}); point [safety] classifier at a "
            "StableDiffusionSafetyChecker folder or hub id, or set enabled = false"
        ) from error
    model.to(device).eval()
    log.info("safety checker %s loaded on %s (%s)", source, device, str(dtype).removeprefix("torch."))
    return SafetyChecker(model, processor, device, dtype)


class SafetyCheckers:
    """The checker of each classifier source, loaded on first use and kept for the life of the engine process."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str, str], SafetyChecker] = {}
        self._lock = threading.Lock()

    def get(self, config: EngineConfig) -> SafetyChecker:
        """The checker of ``config.safety_classifier`` on the engine's device. Raises SafetyCheckError."""
        if not config.safety_classifier:
            raise SafetyCheckError("a job asked for a safety check but no [safety] classifier is configured")
        try:
            device = pick_device(config.device)
            dtype = pick_dtype(config.dtype, device)
        except ValueError as error:
            raise SafetyCheckError(str(error)) from error
        key = (config.safety_classifier, device, str(dtype))
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = load_safety_checker(config.safety_classifier, device, dtype)
            return self._loaded[key]


CHECKERS = SafetyCheckers()
"""This engine process's checkers."""


def check_rendered(rendered: RenderedTask, config: EngineConfig, checkers: SafetyCheckers = CHECKERS) -> Outcome:
    """``rendered`` with each image's verdict (``RenderedTask.safety``) when its task asks for a check; a task whose
    check cannot run fails with the reason (its images are never reported unchecked)."""
    task = rendered.task
    if not task.safety_check or not rendered.rendered.images:  # nothing rendered (a text answer): nothing to check
        return rendered
    try:
        verdicts = checkers.get(config).check(rendered.rendered.images)
    except SafetyCheckError as error:
        return TaskFailed(task.job_id, FailureReason.INTERNAL, f"the image safety check could not run: {error}")
    except Exception as error:  # a library error: the job fails with it rather than going out unchecked
        log.exception("the safety check of job %s failed", task.job_id)
        return TaskFailed(
            task.job_id,
            FailureReason.INTERNAL,
            f"the image safety check could not run: {type(error).__name__}: {error}",
        )
    flagged = [index for index, verdict in enumerate(verdicts) if verdict]
    if flagged:
        log.info("job %s: the safety check flagged image(s) %s", task.job_id, [index + 1 for index in flagged])
    return replace(rendered, safety=verdicts)
