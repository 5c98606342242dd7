"""/describe in the engine: four prompts that could have made an image, from an image-captioning model run through
transformers (BLIP, Florence-2, GIT: whatever ``AutoModelForImageTextToText`` loads). Engine process only.

The model comes from the task (``RenderTask.describe_model``, the owner's ``[describe] source``): ``tiny:blip`` (built
under the models folder, see :mod:`engine.tiny_captioner`), a local transformers folder, or a hub id already in the
Hugging Face cache (a member's request never starts a download: ``python -m engine.describe pull SOURCE`` fetches
it). The one loaded captioner stays loaded beside the diffusion models (BLIP base: about 1 GB in fp32, half in fp16).

The suggestions are deterministic for a seed: the first is the model's greedy caption (its most likely reading),
the others are sampled with the task's seed (nucleus sampling), several per round, until four read differently once
cleaned (:func:`engine.describe_text.suggestions_from`) or :data:`SAMPLING_ROUNDS` rounds are spent (then fewer
come back). The task's result is the described image (scaled to at most :data:`SHOWN_SIDE`, so the job has an image
and a grid like any other) and the suggestions.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from engine.describe_text import SUGGESTIONS, suggestions_from
from engine.device import pick_device, pick_dtype
from engine.model_sources import TINY_PREFIX, source_kind
from engine.protocol import EngineConfig, RenderTask
from engine.tiny_captioner import ensure_tiny_captioner

if TYPE_CHECKING:
    from engine.render import Rendered

log = logging.getLogger(__name__)

CAPTION_TOKENS = 48
"""The most tokens one caption may have (BLIP's captions are about 10-20; Florence-2's detailed ones longer)."""
SAMPLED_PER_ROUND = SUGGESTIONS + 2
"""Captions sampled at once: more than needed, since some read the same as another once cleaned."""
SAMPLING_ROUNDS = 3
TOP_P = 0.9
SHOWN_SIDE = 1024
"""The described image is kept at most this wide and high (it is shown, not rendered)."""
DEFAULT_PROMPTS: dict[str, str] = {"florence2": "<MORE_DETAILED_CAPTION>"}
"""The text a model type needs beside the image when ``[describe] prompt`` is empty (Florence-2 takes a task)."""


class CaptionerLoadError(ValueError):
    """The captioning model cannot be loaded; the message says what the owner must do."""


@dataclass
class Captioner:
    """A loaded image-captioning model with its processor."""

    source: str
    processor: Any
    model: Any
    device: str
    dtype: torch.dtype

    @property
    def model_type(self) -> str:
        return str(getattr(self.model.config, "model_type", ""))


_loaded: dict[tuple[str, str, str], Captioner] = {}
"""The one captioner this process keeps, by (source, device, dtype)."""


def model_folder(source: str, data_dir: str) -> str:
    """What ``from_pretrained`` loads for ``source``: a tiny model's folder (built on first use), a local folder,
    or the hub id (loaded from the local cache only). Raises CaptionerLoadError."""
    if not source:
        raise CaptionerLoadError("no describe model is configured; set [describe] source")
    kind = source_kind(source)
    if kind == "tiny":
        try:
            return str(ensure_tiny_captioner(source.removeprefix(TINY_PREFIX), Path(data_dir) / "models"))
        except ValueError as error:
            raise CaptionerLoadError(str(error)) from None
    if kind == "folder":
        folder = Path(source).expanduser()
        if not (folder / "config.json").is_file():
            raise CaptionerLoadError(f"the describe model {source} is not a transformers folder (no config.json)")
        return str(folder)
    if kind == "single_file":
        raise CaptionerLoadError(f"the describe model {source} is a single file; give a transformers folder or hub id")
    return source


def load_captioner(source: str, config: EngineConfig) -> Captioner:
    """The captioner of ``source`` on the engine's device, loaded once and kept (a new source replaces the old).
    Raises CaptionerLoadError saying what to do."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = pick_device(config.device)
    dtype = pick_dtype(config.dtype, device)
    key = (source, device, str(dtype))
    if key in _loaded:
        return _loaded[key]
    _loaded.clear()
    folder = model_folder(source, config.data_dir)
    offline = source_kind(source) == "hub"
    try:
        processor = AutoProcessor.from_pretrained(folder, local_files_only=offline)
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype, local_files_only=offline)
    except (OSError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if offline:
            raise CaptionerLoadError(
                f"the describe model {source} is not downloaded on this machine ({first}); the owner can fetch it "
                f"with `python -m engine.describe pull {source}`"
            ) from None
        raise CaptionerLoadError(f"the describe model {source} did not load: {first}") from None
    model.to(device)
    model.eval()
    captioner = Captioner(source, processor, model, device, dtype)
    _loaded[key] = captioner
    log.info("describe model %s loaded on %s (%s, %s)", source, device, dtype, type(model).__name__)
    return captioner


def _generate(captioner: Captioner, image: Image.Image, prompt: str, **options: Any) -> list[str]:
    text = prompt or DEFAULT_PROMPTS.get(captioner.model_type, "")
    inputs = captioner.processor(images=image, text=text or None, return_tensors="pt")
    inputs = inputs.to(captioner.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(captioner.dtype)
    with torch.inference_mode():
        ids = captioner.model.generate(**inputs, max_new_tokens=CAPTION_TOKENS, no_repeat_ngram_size=3, **options)
    return [str(text) for text in captioner.processor.batch_decode(ids, skip_special_tokens=True)]


def caption_candidates(captioner: Captioner, image: Image.Image, prompt: str, seed: int) -> Iterator[str]:
    """The greedy caption, then sampled ones, round after round (each round seeded from ``seed``)."""
    yield from _generate(captioner, image, prompt, do_sample=False, num_beams=1)
    for round_index in range(SAMPLING_ROUNDS):
        devices = [torch.device(captioner.device).index or 0] if captioner.device == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((seed + round_index) % 2**32)
            yield from _generate(
                captioner, image, prompt, do_sample=True, top_p=TOP_P, num_return_sequences=SAMPLED_PER_ROUND
            )


def describe_image(captioner: Captioner, image: Image.Image, prompt: str, seed: int) -> tuple[str, ...]:
    """Up to four distinct prompts for ``image`` (usually four), the same ones for the same seed."""
    return suggestions_from(caption_candidates(captioner, image, prompt, seed), image.width, image.height)


def describe_task(
    task: RenderTask, config: EngineConfig, is_cancelled: Callable[[int], bool] | None = None
) -> Rendered:
    """Describe ``task.init_image``: the image itself (at most :data:`SHOWN_SIDE` a side) with its suggestions.
    Raises ValueError for an image it cannot read, a model it cannot load, or no caption at all;
    RenderCancelledError when the job was cancelled before the model ran."""
    from engine.pipelines import RenderCancelledError
    from engine.render import ImageInfo, Rendered, load_image

    image = load_image(task.init_image, "init_image")
    captioner = load_captioner(task.describe_model, config)
    if is_cancelled is not None and is_cancelled(task.job_id):
        raise RenderCancelledError(f"job {task.job_id} cancelled")
    suggestions = describe_image(captioner, image, task.prompt, task.seeds[0])
    if not suggestions:
        raise ValueError("the describe model wrote no usable text for this image; try another image")
    shown = image.copy()
    shown.thumbnail((SHOWN_SIDE, SHOWN_SIDE), Image.Resampling.LANCZOS)
    info = ImageInfo(task.seeds[0], suggestions[0], task.steps, task.cfg, task.sampler)
    return Rendered([shown], [info], suggestions=suggestions)


def pull(source: str) -> int:
    """Download a hub captioning model into the Hugging Face cache (its configuration, tokenizer and safetensors
    weights), so /describe loads it without the network. 0 when it is there, 1 when it could not be fetched."""
    from huggingface_hub import snapshot_download

    if source_kind(source) != "hub":
        print(f"{source} is not a hub id: nothing to download", file=sys.stderr)
        return 0
    patterns = ["*.json", "*.safetensors", "*.txt", "*.model"]  # no code: remote code is never run
    try:
        folder = snapshot_download(source, allow_patterns=patterns)
    except Exception as error:  # the hub client's own errors (offline, no such repository): one line
        print(f"error: {source} could not be downloaded: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"{source} is in {folder}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m engine.describe pull SOURCE``."""
    parser = argparse.ArgumentParser(prog="python -m engine.describe", description="the /describe model")
    actions = parser.add_subparsers(dest="action", required=True)
    fetch = actions.add_parser("pull", help="download a hub captioning model into the Hugging Face cache")
    fetch.add_argument("source", help="e.g. Salesforce/blip-image-captioning-base")
    args = parser.parse_args(argv)
    return pull(args.source)


if __name__ == "__main__":
    sys.exit(main())
