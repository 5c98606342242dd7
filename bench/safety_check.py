"""``python -m bench.safety_check``: what the image safety check adds to a job, with the real checker's compute.

diffusers' :class:`StableDiffusionSafetyChecker` is built in code with the architecture of
``CompVis/stable-diffusion-safety-checker`` (a CLIP ViT-L/14 vision tower, 224² input, 768-wide projection) and
random weights, which cost exactly what the real ones do; nothing is downloaded. It is saved and loaded back through
the engine's own loader (:func:`engine.safety.load_safety_checker`), then checks a 4-image job's renders of
``--size``² again and again: milliseconds per job (best and median of ``--repeat``) and per image, and how long the
load took. Prints one JSON object as its last line.

Options: ``--device`` (auto, cpu, cuda), ``--dtype`` (auto, fp16, bf16, fp32), ``--images`` (4), ``--size`` (512),
``--repeat`` (5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor

from engine.device import pick_device, pick_dtype
from engine.safety import load_safety_checker

VIT_L_14 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "num_channels": 3,
}
"""The vision tower of the Stable Diffusion safety checker (CLIP ViT-L/14)."""
PROJECTION_DIM = 768


def build_full_size_checker(folder: Path) -> Path:
    """A random-weight checker of the real architecture, with CLIP's image processor, saved to ``folder``."""
    config = CLIPConfig(vision_config=VIT_L_14, projection_dim=PROJECTION_DIM)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        StableDiffusionSafetyChecker(config).save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor().save_pretrained(folder)  # CLIP's defaults: 224² crop, OpenAI's mean and std
    return folder


def renders(count: int, side: int) -> list[Image.Image]:
    """Noise images of a render's size (the check's cost does not depend on what they show)."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.safety_check", description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    images = renders(args.images, args.size)
    with tempfile.TemporaryDirectory(prefix="bench-safety-") as folder:
        source = build_full_size_checker(Path(folder))
        started = time.perf_counter()
        checker = load_safety_checker(str(source), device, dtype)
        load_s = time.perf_counter() - started
        checker.check(images[:1])  # warm-up
        times: list[float] = []
        for _ in range(args.repeat):
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            checker.check(images)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
    result = {
        "benchmark": "safety_check",
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
        "images": args.images,
        "size": args.size,
        "load_s": round(load_s, 3),
        "job_ms_best": round(min(times) * 1000, 1),
        "job_ms_median": round(statistics.median(times) * 1000, 1),
        "image_ms_best": round(min(times) * 1000 / args.images, 1),
        "parameters_m": round(sum(p.numel() for p in checker.model.parameters()) / 1e6, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
