"""``python -m bench.gpu``: seconds per image of SD1.5- and SDXL-architecture models on a CUDA GPU.

The models have random weights built from the published configs (written out below, nothing is downloaded):
the compute equals the real models'. 512² (SD1.5) and 1024² (SDXL), 20 steps, batch 1 and 4, with and without
``torch.compile`` of the UNet. Without CUDA it prints a JSON line saying why it skipped. Last line: one JSON object.
"""

from __future__ import annotations

import json
import time
from typing import Any

STEPS = 20
BATCHES = (1, 4)

SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "cross_attention_dim": 2048,
    "attention_head_dim": (5, 10, 20),
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
}
CLIP_L: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
}
CLIP_G: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "projection_dim": 1280,
}


def _pipeline(family: str, dtype: Any) -> Any:
    import tempfile
    from pathlib import Path

    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from engine.tiny import _build_tokenizer  # a local byte-level tokenizer: no download

    tokenizer_dir = Path(tempfile.mkdtemp())
    tokenizer: CLIPTokenizer = _build_tokenizer(tokenizer_dir / "tok")
    vocab = 49408
    unet = diffusers.UNet2DConditionModel(**(SDXL_UNET if family == "sdxl" else SD15_UNET))
    vae = diffusers.AutoencoderKL(**VAE)
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1
    )
    text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, **CLIP_L))
    if family == "sdxl":
        text_2 = CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=vocab, **CLIP_G))
        pipe = diffusers.StableDiffusionXLPipeline(vae, text, text_2, tokenizer, tokenizer, unet, scheduler)
    else:
        pipe = diffusers.StableDiffusionPipeline(vae, text, tokenizer, unet, scheduler, None, None, None, False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cuda", dtype)


def _seconds_per_image(pipe: Any, size: int, batch: int) -> float:
    import torch

    def run() -> None:
        pipe(["a red fox"] * batch, width=size, height=size, num_inference_steps=STEPS, output_type="latent")

    run()
    torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return round((time.perf_counter() - started) / batch, 4)


def main() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"benchmark": "gpu", "skipped": True, "reason": "torch is not installed"}
    if not torch.cuda.is_available():
        return {"benchmark": "gpu", "skipped": True, "reason": "no CUDA device on this machine"}
    results: list[dict[str, Any]] = []
    for family, size in (("sd15", 512), ("sdxl", 1024)):
        pipe = _pipeline(family, torch.float16)
        for compiled in (False, True):
            if compiled:
                pipe.unet = torch.compile(pipe.unet)
            for batch in BATCHES:
                results.append(
                    {
                        "family": family,
                        "size": size,
                        "batch": batch,
                        "compile": compiled,
                        "seconds_per_image": _seconds_per_image(pipe, size, batch),
                    }
                )
        del pipe
        torch.cuda.empty_cache()
    return {
        "benchmark": "gpu",
        "skipped": False,
        "device": torch.cuda.get_device_name(0),
        "steps": STEPS,
        "dtype": "fp16",
        "results": results,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
