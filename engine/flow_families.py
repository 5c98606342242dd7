"""Stable Diffusion 3/3.5 and FLUX.1 on diffusers: their samplers, call arguments, sizes and previews. Engine
process only; the rules of what they can do are in :mod:`engine.families`.

They load through the same path as SD1.5/SDXL (``AutoPipelineForText2Image`` for a folder or hub id, their
img2img and inpainting pipelines made with ``from_pipe``); what differs is gathered here:

- Samplers: flow-matching Euler (``FlowMatchEulerDiscreteScheduler`` from the model's own scheduler config, so its
  shift, and FLUX.1-dev's resolution-dependent shift, are kept).
- Sizes: their img2img and inpainting pipelines resize the source to the model's default size unless told the
  size, so the call always names it; width and height are multiples of the VAE factor times the 2×2 patch
  (SD3) or packing (FLUX.1): 16 on the full-size models, 4 on the tiny ones.
- Prompts: T5 reads up to the family's ``max_sequence_length`` (:func:`sequence_length`); longer prompts are
  refused (:mod:`engine.flow_prompts`), never cut short.
- Previews: FLUX.1 hands its callback packed latents (``B × (h/2 · w/2) × 64``), unpacked here with the
  pipeline's own helper to ``B × 16 × h × w`` for the family's linear projection (:mod:`engine.preview`).
- Single files: see :mod:`engine.single_file`.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.families import FLOW_FAMILIES, FLOW_SAMPLERS, family_traits, t5_token_limit

FLOW_SCHEDULERS: dict[str, tuple[str, tuple[tuple[str, Any], ...]]] = {
    "euler": ("FlowMatchEulerDiscreteScheduler", ()),
}
"""The diffusers scheduler (and its options) of each flow sampler (:data:`engine.families.FLOW_SAMPLERS`)."""
PIPELINE_FAMILIES = {"StableDiffusion3Pipeline": "sd3", "FluxPipeline": "flux"}
"""The text-to-image pipeline class of each flow family."""


def is_flow(family: str) -> bool:
    """Whether ``family`` is a flow-matching transformer family (sd3, flux)."""
    return family in FLOW_FAMILIES


def pipeline_family(pipeline_class: str) -> str | None:
    """``sd3`` or ``flux`` for their text-to-image pipeline class names, else None."""
    return PIPELINE_FAMILIES.get(pipeline_class)


def denoiser(pipe: Any) -> torch.nn.Module:
    """The network that denoises: the UNet of SD1.x/2.x/SDXL, the transformer of SD3 and FLUX.1."""
    unet = getattr(pipe, "unet", None)
    return unet if unet is not None else pipe.transformer


def make_flow_scheduler(name: str, base_config: Any) -> Any:
    """A fresh flow-matching scheduler for sampler ``name`` from the model's scheduler config. Raises ValueError
    naming the samplers that work."""
    if name not in FLOW_SCHEDULERS:
        raise ValueError(
            f"sampler {name!r} does not work with flow-matching models (SD3, FLUX.1); use one of: "
            f"{', '.join(FLOW_SAMPLERS)}"
        )
    import diffusers

    class_name, options = FLOW_SCHEDULERS[name]
    return getattr(diffusers, class_name).from_config(base_config, **dict(options))


def pixel_factor(family: str, pipe: Any) -> int:
    """Pixels per denoiser token along a side: the VAE factor, times the patch size (SD3) or the 2×2 packing
    (FLUX.1). Width and height must be multiples of it."""
    factor = int(pipe.vae_scale_factor)
    if family == "sd3":
        return factor * int(pipe.transformer.config.patch_size)
    if family == "flux":
        return factor * 2
    return factor


def call_arguments(family: str, pipe: Any, image: Any, width: int | None, height: int | None) -> dict[str, Any]:
    """What a flow pipeline's call needs beyond the common arguments: the size (the source image's, for img2img,
    whose pipelines otherwise resize it to the model's default size), and the T5 prompt length the model was trained
    with (:func:`sequence_length`). Empty for other families."""
    if not is_flow(family):
        return {}
    arguments: dict[str, Any] = {}
    if width is None and image is not None:
        arguments["width"], arguments["height"] = image.width, image.height
    arguments["max_sequence_length"] = sequence_length(family, pipe)
    return arguments


def sequence_length(family: str, pipe: Any) -> int:
    """The T5 tokens a prompt of this model may have (:func:`engine.families.t5_token_limit`): FLUX.1 without a
    guidance embedding (schnell) reads fewer than FLUX.1-dev; 0 for a family without T5."""
    guidance = family != "flux" or bool(pipe.transformer.config.guidance_embeds)
    return t5_token_limit(family, guidance=guidance)


def spatial_latents(family: str, pipe: Any, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The latents a step callback got as ``N × channels × h × w``: FLUX.1's packed ones unpacked with the
    pipeline's own helper, any other family's as they are."""
    if family == "flux" and latents.dim() == 3:
        return pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    return latents


def default_sampler(family: str) -> str:
    """The sampler a job of ``family`` gets when nobody picked one (the warm-up's too)."""
    from engine.samplers import DEFAULT_SAMPLER

    return family_traits(family).default_sampler or DEFAULT_SAMPLER
