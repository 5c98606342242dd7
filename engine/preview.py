"""Cheap previews: a fixed linear latent-to-RGB projection per family, no VAE and no extra weights."""

from __future__ import annotations

import io

import torch
from PIL import Image

# Rows are latent channels, columns R, G, B (the approximations A1111 and ComfyUI use for previews).
_SD15_LATENT_RGB = (
    (
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    ),
    (0.0, 0.0, 0.0),
)
LATENT_RGB: dict[str, tuple[tuple[tuple[float, float, float], ...], tuple[float, float, float]]] = {
    "sd15": _SD15_LATENT_RGB,
    "sd2": _SD15_LATENT_RGB,
    "sdxl": (
        (
            (0.3651, 0.4232, 0.4341),
            (-0.2533, -0.0042, 0.1068),
            (0.1076, 0.1111, -0.0362),
            (-0.3165, -0.2492, -0.2188),
        ),
        (0.1084, -0.0175, -0.0011),
    ),
}


def latents_to_image(latents: torch.Tensor, family: str) -> Image.Image:
    """One latent (channels × h × w) as a small RGB image (h × w: 1/8 of the output on real models)."""
    factors, bias = LATENT_RGB.get(family, LATENT_RGB["sd15"])
    weight = torch.tensor(factors, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->rhw", latents.detach().float().cpu()[: weight.shape[0]], weight)
    rgb = rgb + torch.tensor(bias).view(3, 1, 1)
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(pixels, "RGB")


def preview_png(latents: torch.Tensor, family: str) -> bytes:
    """PNG bytes of :func:`latents_to_image` (fast compression: previews are thrown away)."""
    buffer = io.BytesIO()
    latents_to_image(latents, family).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
