"""Image prompts through an IP-Adapter: load the adapter into a loaded model once, switch it on for the jobs that have
image prompts and off for every other job, and hand the pipeline the images' embeddings. Engine process only.

The adapter is loaded with diffusers' own ``load_ip_adapter`` (its image encoder and image processor join the
model's pipeline). Right after the load its cross-attention processors and image projection are taken out of the
UNet and kept aside, and the UNet gets back exactly the processors it had: a job without image prompts runs the
very same modules as before any adapter was loaded. :func:`image_prompting` puts the adapter's parts in for one job
(with the job's ``--iw`` as the adapter's scale) and takes them out again, whatever happens.

Several images (``/blend``) are encoded one by one by the adapter's CLIP image encoder and their embeddings averaged,
rescaled to the images' mean length, so a blend steers as strongly as one image. The pipelines get the result as
``ip_adapter_image_embeds``, one per image of the call (a zero embedding is the unconditional half, as diffusers
makes it), which every Stable Diffusion pipeline (text-to-image, image-to-image, inpainting) takes alike.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.models.attention_processor import (
    IPAdapterAttnProcessor,
    IPAdapterAttnProcessor2_0,
    IPAdapterXFormersAttnProcessor,
)
from diffusers.models.embeddings import ImageProjection
from PIL import Image, UnidentifiedImageError

from engine.ip_adapter_sources import TINY_PREFIX, adapter_kind
from engine.pipelines import LoadedModel
from engine.protocol import EngineConfig, IpAdapterEntry, RenderTask
from engine.tiny_ip_adapter import ADAPTER_WEIGHTS, IMAGE_ENCODER, ensure_tiny_ip_adapter

log = logging.getLogger(__name__)

LOADED_KEY = "ip_adapter"
"""Where a model keeps its loaded adapter (:class:`LoadedAdapter`) among its derived parts."""
ACTIVE_KEY = "ip_adapter_embeds"
"""Where a model keeps the current job's image embeddings (:class:`ImageEmbeds`) while :func:`image_prompting` runs."""
IP_PROCESSORS = (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0, IPAdapterXFormersAttnProcessor)
IP_HIDDEN_TYPE = "ip_image_proj"
MAX_WEIGHT = 2.0


@dataclass
class LoadedAdapter:
    """An adapter loaded into a model, its UNet parts kept aside while no job uses it."""

    name: str
    processors: dict[str, Any]
    """Cross-attention processor name → the adapter's processor (with its ``to_k_ip``/``to_v_ip`` weights)."""
    projection: Any
    """The UNet's ``encoder_hid_proj`` while the adapter is on: image embedding → extra cross-attention tokens."""
    added_feature_extractor: bool
    """The pipeline had no image processor before; the adapter's load made one (dropped with the adapter)."""


@dataclass(frozen=True)
class ImageEmbeds:
    """One job's image prompt: the averaged embedding (``positive``, shape ``(1, width)``) and the unconditional one."""

    positive: torch.Tensor
    negative: torch.Tensor


def check_weight(weight: float) -> None:
    """``--iw`` is the adapter's scale: 0 (image prompts ignored) to 2."""
    if not 0.0 <= weight <= MAX_WEIGHT:
        raise ValueError(f"image_weight={weight:g} must be from 0 to {MAX_WEIGHT:g}")


def adapter_entry(config: EngineConfig, name: str) -> IpAdapterEntry:
    """The registry entry ``name``. Raises ValueError naming the known ones."""
    for entry in config.ip_adapters:
        if entry.name == name:
            return entry
    known = ", ".join(sorted(entry.name for entry in config.ip_adapters)) or "none are configured"
    raise ValueError(f"the IP-Adapter {name!r} is not in the registry; known IP-Adapters: {known}")


def _load_arguments(entry: IpAdapterEntry, data_dir: str) -> tuple[str, dict[str, Any]]:
    """What ``load_ip_adapter`` gets for ``entry``: the folder or hub id, and the keyword arguments (always from
    local files: a tiny adapter is built here first, a hub one must be in the cache)."""
    kind = adapter_kind(entry.source)
    if kind == "tiny":
        folder = ensure_tiny_ip_adapter(entry.source.removeprefix(TINY_PREFIX), Path(data_dir) / "models")
        return str(folder), {
            "subfolder": "",
            "weight_name": ADAPTER_WEIGHTS,
            "image_encoder_folder": IMAGE_ENCODER,
            "local_files_only": True,
        }
    source = str(Path(entry.source).expanduser()) if kind == "folder" else entry.source
    return source, {
        "subfolder": entry.subfolder,
        "weight_name": entry.weight_name,
        "image_encoder_folder": entry.image_encoder,
        "local_files_only": True,
    }


def load_adapter(model: LoadedModel, entry: IpAdapterEntry, data_dir: str) -> LoadedAdapter:
    """Load ``entry`` into ``model``'s pipeline (once; another adapter loaded before is dropped first) and put the
    UNet back as it was. Raises ValueError saying what is wrong (another family, files missing, an adapter kind
    this engine does not take)."""
    loaded: LoadedAdapter | None = model._derived.get(LOADED_KEY)
    if loaded is not None and loaded.name == entry.name:
        return loaded
    if entry.family != model.family:
        raise ValueError(
            f"the IP-Adapter {entry.name!r} is for {entry.family} models but model {model.name!r} is {model.family}"
        )
    if loaded is not None:
        drop_adapter(model)
    pipe = model.pipeline
    unet = pipe.unet
    before = dict(unet.attn_processors)
    before_projection, before_type = unet.encoder_hid_proj, unet.config.encoder_hid_dim_type
    had_feature_extractor = getattr(pipe, "feature_extractor", None) is not None
    source, arguments = _load_arguments(entry, str(data_dir))
    try:
        pipe.load_ip_adapter(source, **arguments)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        _restore(unet, before, before_projection, before_type)
        _forget_encoder(pipe, drop_feature_extractor=not had_feature_extractor)
        log.error("the IP-Adapter %s (%s) did not load: %s", entry.name, entry.source, error)
        raise ValueError(f"the IP-Adapter {entry.name!r} did not load: {_first_line(error)}") from error
    adapter = LoadedAdapter(
        name=entry.name,
        processors={name: proc for name, proc in unet.attn_processors.items() if isinstance(proc, IP_PROCESSORS)},
        projection=unet.encoder_hid_proj,
        added_feature_extractor=not had_feature_extractor,
    )
    _restore(unet, before, before_projection, before_type)
    layers = list(adapter.projection.image_projection_layers)
    if not all(isinstance(layer, ImageProjection) for layer in layers):
        _forget_encoder(pipe, drop_feature_extractor=adapter.added_feature_extractor)
        raise ValueError(
            f"the IP-Adapter {entry.name!r} is not a base IP-Adapter (ip-adapter_sd15, ip-adapter_sdxl); "
            "Plus and FaceID adapters are not supported"
        )
    model._derived[LOADED_KEY] = adapter
    log.info("IP-Adapter %s loaded into model %s", entry.name, model.name)
    return adapter


def drop_adapter(model: LoadedModel) -> None:
    """Forget ``model``'s adapter: its parts kept aside, its image encoder, the image processor it brought."""
    adapter: LoadedAdapter | None = model._derived.pop(LOADED_KEY, None)
    if adapter is not None:
        _forget_encoder(model.pipeline, drop_feature_extractor=adapter.added_feature_extractor)


def _restore(unet: Any, processors: dict[str, Any], projection: Any, hidden_type: Any) -> None:
    """Put ``processors`` and the image projection back into the UNet (``set_attn_processor`` empties the dict it
    is given: it gets a copy)."""
    unet.set_attn_processor(dict(processors))
    unet.encoder_hid_proj = projection
    unet.config.encoder_hid_dim_type = hidden_type  # diffusers' own load and unload set it this way


def _forget_encoder(pipe: Any, *, drop_feature_extractor: bool) -> None:
    if getattr(pipe, "image_encoder", None) is not None:
        pipe.register_modules(image_encoder=None)
    if drop_feature_extractor and getattr(pipe, "feature_extractor", None) is not None:
        pipe.register_modules(feature_extractor=None)


def load_prompt_image(path: str) -> Image.Image:
    """An image prompt as RGB. Raises ValueError when it is missing or unreadable."""
    if not path:
        raise ValueError("an image prompt was never received (empty path); send the request again")
    try:
        with Image.open(Path(path)) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise ValueError(f"the image prompt {Path(path).name} is no longer kept; send the image again") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"the image prompt {Path(path).name} is not an image this engine can read: {error}") from None


@torch.no_grad()
def embed_images(model: LoadedModel, images: Sequence[Image.Image]) -> ImageEmbeds:
    """The adapter's image encoder on each image; the embeddings averaged, then rescaled to their mean length (so
    two equal images give exactly the embedding of one)."""
    pipe = model.pipeline
    encoder = pipe.image_encoder
    parameter = next(encoder.parameters())
    pixels = pipe.feature_extractor(list(images), return_tensors="pt").pixel_values
    embeds = encoder(pixels.to(device=parameter.device, dtype=parameter.dtype)).image_embeds.float()
    mean = embeds.mean(dim=0, keepdim=True)
    length = embeds.norm(dim=-1).mean()
    positive = mean * (length / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    positive = positive.to(parameter.dtype)
    return ImageEmbeds(positive=positive, negative=torch.zeros_like(positive))


@contextlib.contextmanager
def image_prompting(model: LoadedModel, task: RenderTask, config: EngineConfig) -> Iterator[None]:
    """For a task with image prompts: the adapter on, at the task's weight, with the images' embeddings ready for
    :func:`image_prompt_arguments`; afterwards the UNet exactly as before. A task without image prompts runs as it
    is. Raises ValueError (a bad weight, an unknown or unloadable adapter, an unreadable image)."""
    if not task.image_prompts:
        yield
        return
    check_weight(task.image_weight)
    if not task.ip_adapter:
        raise ValueError("the task has image prompts but names no IP-Adapter (ip_adapter is empty)")
    images = [load_prompt_image(path) for path in task.image_prompts]
    adapter = load_adapter(model, adapter_entry(config, task.ip_adapter), config.data_dir)
    embeds = embed_images(model, images)
    pipe = model.pipeline
    unet = pipe.unet
    current = dict(unet.attn_processors)
    projection, hidden_type = unet.encoder_hid_proj, unet.config.encoder_hid_dim_type
    unet.set_attn_processor({name: adapter.processors.get(name, proc) for name, proc in current.items()})
    unet.encoder_hid_proj = adapter.projection
    unet.config.encoder_hid_dim_type = IP_HIDDEN_TYPE
    try:
        pipe.set_ip_adapter_scale(task.image_weight)
        model._derived[ACTIVE_KEY] = embeds
        yield
    finally:
        model._derived.pop(ACTIVE_KEY, None)
        _restore(unet, current, projection, hidden_type)


def image_prompt_arguments(model: LoadedModel, images: int, cfg: float) -> dict[str, Any]:
    """The pipeline's ``ip_adapter_image_embeds`` for a call making ``images`` images at guidance ``cfg`` while
    :func:`image_prompting` runs; nothing otherwise. With classifier-free guidance (as diffusers decides it: a scale
    above 1 and no guidance embedding) the unconditional embeddings come first, as the pipelines expect."""
    embeds: ImageEmbeds | None = model._derived.get(ACTIVE_KEY)
    if embeds is None:
        return {}
    unet = model.pipeline.unet
    device = next(unet.parameters()).device
    positive = embeds.positive.unsqueeze(0).expand(images, -1, -1)
    if cfg > 1 and unet.config.time_cond_proj_dim is None:
        negative = embeds.negative.unsqueeze(0).expand(images, -1, -1)
        positive = torch.cat([negative, positive])
    return {"ip_adapter_image_embeds": [positive.to(device)]}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
