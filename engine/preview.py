"""Previews that cost the render nothing: a fixed linear latent-to-RGB projection per family, made on the GPU,
encoded as a small JPEG off the render thread.

The projection (no VAE, no extra weights) and the resize to at most :data:`PREVIEW_SIDE` pixels run where the
latents are, as a few tiny kernels queued behind the step; the copy to the CPU is asynchronous and a thread waits
for it and encodes, so the render thread never waits for the GPU (no synchronisation inside the denoising loop) nor
for an encoder.
"""

from __future__ import annotations

import functools
import io
import logging
import queue
import threading
from collections.abc import Callable

import torch
from PIL import Image

log = logging.getLogger(__name__)

PREVIEW_SIDE = 256
"""The longest side of a preview, in pixels."""
PREVIEW_QUALITY = 80
"""JPEG quality of a preview: it is shown for a few seconds and thrown away."""
PENDING_PREVIEWS = 8
"""Previews waiting to be encoded; more are dropped (the next one shows the render anyway)."""

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
    # The 16-channel VAEs of SD3/SD3.5 and FLUX.1 (FLUX.1's latents are unpacked first: engine.flow_families).
    "sd3": (
        (
            (-0.0922, -0.0175, 0.0749),
            (0.0311, 0.0633, 0.0954),
            (0.1994, 0.0927, 0.0458),
            (0.0856, 0.0339, 0.0902),
            (0.0587, 0.0272, -0.0496),
            (-0.0006, 0.1104, 0.0309),
            (0.0978, 0.0306, 0.0427),
            (-0.0042, 0.1038, 0.1358),
            (-0.0194, 0.0020, 0.0669),
            (-0.0488, 0.0130, -0.0268),
            (0.0922, 0.0988, 0.0951),
            (-0.0278, 0.0524, -0.0542),
            (0.0332, 0.0456, 0.0895),
            (-0.0069, -0.0030, -0.0810),
            (-0.0596, -0.0465, -0.0293),
            (-0.1448, -0.1463, -0.1189),
        ),
        (0.2394, 0.2135, 0.1925),
    ),
    "flux": (
        (
            (-0.0346, 0.0244, 0.0681),
            (0.0034, 0.0210, 0.0687),
            (0.0275, -0.0668, -0.0433),
            (-0.0174, 0.0160, 0.0617),
            (0.0859, 0.0721, 0.0329),
            (0.0004, 0.0383, 0.0115),
            (0.0405, 0.0861, 0.0915),
            (-0.0236, -0.0185, -0.0259),
            (-0.0245, 0.0250, 0.1180),
            (0.1008, 0.0755, -0.0421),
            (-0.0515, 0.0201, 0.0011),
            (0.0428, -0.0012, -0.0036),
            (0.0817, 0.0765, 0.0749),
            (-0.1264, -0.0522, -0.1103),
            (-0.0280, -0.0881, -0.0499),
            (-0.1262, -0.0982, -0.0778),
        ),
        (-0.0329, -0.0718, -0.0851),
    ),
}

PreviewSink = Callable[[int, int, int, bytes], None]
"""(job_id, step, total, JPEG bytes): where an encoded preview goes."""


def preview_size(height: int, width: int, side: int = PREVIEW_SIDE) -> tuple[int, int]:
    """Height and width of the preview of a ``height`` × ``width`` latent: its longest side scaled to ``side``."""
    scale = side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@functools.cache
def _projection(family: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The family's latent-to-RGB weight (channels × 3) and bias (1 × 3 × 1 × 1) on ``device``, copied there once:
    a copy from the host inside the denoising loop could wait for the device."""
    factors, bias = LATENT_RGB.get(family, LATENT_RGB["sd15"])
    weight = torch.tensor(factors, dtype=torch.float32).to(device)
    return weight, torch.tensor(bias, dtype=torch.float32).view(1, 3, 1, 1).to(device)


def preview_pixels(latents: torch.Tensor, family: str, side: int = PREVIEW_SIDE) -> torch.Tensor:
    """Latents (N × channels × h × w) as N small RGB images (N × H × W × 3, uint8) on the latents' device."""
    weight, bias = _projection(family, latents.device)
    channels = latents.detach()[:, : weight.shape[0]].float()
    rgb = torch.einsum("nchw,cr->nrhw", channels, weight) + bias
    height, width = preview_size(rgb.shape[-2], rgb.shape[-1], side)
    if (height, width) != tuple(rgb.shape[-2:]):
        rgb = torch.nn.functional.interpolate(rgb, size=(height, width), mode="bilinear", align_corners=False)
    return ((rgb.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def encode_preview(pixels: torch.Tensor) -> bytes:
    """One H × W × 3 uint8 image (on the CPU) as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.numpy(), "RGB").save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue()


def latents_to_image(latents: torch.Tensor, family: str, side: int = PREVIEW_SIDE) -> Image.Image:
    """One latent (channels × h × w) as a small RGB image, its longest side ``side`` pixels."""
    pixels = preview_pixels(latents.unsqueeze(0), family, side)[0].cpu()
    return Image.fromarray(pixels.numpy(), "RGB")


class PreviewEncoder:
    """Encodes previews on a thread of its own and hands each to ``sink``, in the order they were submitted.

    :meth:`submit` starts the copy of the pixels to the CPU without waiting for the GPU (pinned memory, a CUDA
    event) and returns; the thread waits for the copy, encodes, and calls ``sink``. When the encoder falls behind,
    new previews are dropped rather than slowing the render.
    """

    def __init__(self, sink: PreviewSink) -> None:
        self._sink = sink
        self._queue: queue.Queue[tuple[int, int, int, torch.Tensor, object | None] | None] = queue.Queue(
            PENDING_PREVIEWS
        )
        self._thread = threading.Thread(target=self._encode, name="engine-previews", daemon=True)
        self._thread.start()

    def submit(self, job_id: int, step: int, total: int, pixels: torch.Tensor) -> None:
        """Queue one preview (H × W × 3 uint8, on any device) of ``job_id`` at ``step``."""
        ready: object | None = None
        if pixels.is_cuda:
            pixels = pixels.to("cpu", non_blocking=True)  # lands in pinned memory: the copy is asynchronous
            event = torch.cuda.Event()
            event.record()
            ready = event
        else:
            pixels = pixels.cpu()
        try:
            self._queue.put_nowait((job_id, step, total, pixels, ready))
        except queue.Full:
            log.debug("preview of job %s at step %s dropped: the encoder is behind", job_id, step)

    def close(self) -> None:
        """Encode what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _encode(self) -> None:
        while (item := self._queue.get()) is not None:
            job_id, step, total, pixels, ready = item
            try:
                if ready is not None:
                    ready.synchronize()  # type: ignore[attr-defined]
                self._sink(job_id, step, total, encode_preview(pixels))
            except Exception:  # a preview is never worth a job: log and go on
                log.warning("could not make the preview of job %s", job_id, exc_info=True)
