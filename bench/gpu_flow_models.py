"""Full-size random-weight SD3.5-medium and FLUX.1 models for ``bench.gpu_flow``: the published architectures
(configs written out below from the models' ``config.json`` files, nothing downloaded), so the compute and the
memory are the real models'. Built on the GPU in bf16 and saved as diffusers folders, then loaded through the
engine's own loading path like any owner's model. ``tiny=True`` stands in ``tiny:sd3`` / ``tiny:flux``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.gpu_models import CLIP_G, CLIP_L, VAE, write_in_place

SD35_MEDIUM_TRANSFORMER: dict[str, Any] = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "pos_embed_max_size": 384,
    "dual_attention_layers": tuple(range(13)),
    "qk_norm": "rms_norm",
}
FLUX_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": True,
    "axes_dims_rope": (16, 56, 56),
}
"""FLUX.1-dev's transformer; schnell's is the same without the guidance embedding (``guidance_embeds=False``)."""
T5_XXL: dict[str, Any] = {
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "is_encoder_decoder": False,
    "use_cache": False,
}
FLOW_VAE: dict[str, Any] = {**VAE, "latent_channels": 16, "use_quant_conv": False, "use_post_quant_conv": False}
"""The SD/SDXL VAE with 16 latent channels and no quant convolutions (SD3.5's and FLUX.1's)."""
FAMILY_OF = {"sd35-medium": "sd3", "flux-dev": "flux", "flux-schnell": "flux"}
"""Each benchmark model's family (the tiny model of the family stands in for it with ``tiny=True``)."""


def build_flow_model(kind: str, folder: Path, *, tiny: bool = False) -> Path:
    """Save the ``kind`` model (``sd35-medium``, ``flux-dev`` or ``flux-schnell``) under ``folder`` and return its
    path; ``tiny=True``: the tiny model of the same family (to rehearse on a CPU)."""
    if tiny:
        from engine.tiny import ensure_tiny_model

        return ensure_tiny_model(FAMILY_OF[kind], folder)
    target = folder / f"big-{kind}"
    if (target / "model_index.json").is_file():
        return target
    import torch

    pipe = big_flow_pipeline(kind, "cuda")
    write_in_place(target, pipe.save_pretrained)
    del pipe
    torch.cuda.empty_cache()
    return target


def big_flow_pipeline(kind: str, device: str) -> Any:
    """The full-size random ``kind`` pipeline, made in bf16 on ``device`` (``meta`` to count without memory)."""
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from engine.tiny_flow import FLUX_SCHEDULER, FLUX_VAE, SD3_VAE, build_t5_tokenizer
    from engine.tiny_parts import build_tokenizer

    scratch = Path(tempfile.mkdtemp())
    tokenizer = build_tokenizer(scratch / "tokenizer")
    t5_tokenizer = build_t5_tokenizer(scratch / "tokenizer_t5")
    vocab = 49408
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            t5 = T5EncoderModel(T5Config(**T5_XXL))
            if kind == "sd35-medium":
                return diffusers.StableDiffusion3Pipeline(
                    transformer=diffusers.SD3Transformer2DModel(**SD35_MEDIUM_TRANSFORMER),
                    scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
                    vae=diffusers.AutoencoderKL(**FLOW_VAE, **SD3_VAE),
                    text_encoder=CLIPTextModelWithProjection(
                        CLIPTextConfig(vocab_size=vocab, projection_dim=768, **CLIP_L)
                    ),
                    tokenizer=tokenizer,
                    text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=vocab, **CLIP_G)),
                    tokenizer_2=tokenizer,
                    text_encoder_3=t5,
                    tokenizer_3=t5_tokenizer,
                )
            transformer = {**FLUX_TRANSFORMER, "guidance_embeds": kind == "flux-dev"}
            return diffusers.FluxPipeline(
                transformer=diffusers.FluxTransformer2DModel(**transformer),
                scheduler=diffusers.FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER),
                vae=diffusers.AutoencoderKL(**FLOW_VAE, **FLUX_VAE),
                text_encoder=CLIPTextModel(CLIPTextConfig(vocab_size=vocab, **CLIP_L)),
                tokenizer=tokenizer,
                text_encoder_2=t5,
                tokenizer_2=t5_tokenizer,
            )
    finally:
        torch.set_default_dtype(previous)


def component_parameters(kind: str) -> dict[str, int]:
    """Parameters of each component of the full-size ``kind`` model, counted on the meta device (no memory)."""
    import torch

    pipe = big_flow_pipeline(kind, "meta")
    return {
        name: sum(p.numel() for p in component.parameters())
        for name, component in pipe.components.items()
        if isinstance(component, torch.nn.Module)
    }
