"""Previews: projected from the latents where they are, at most 256 px, encoded as JPEG off the render thread."""

from __future__ import annotations

import io
import threading

import pytest
import torch
from PIL import Image

from engine.preview import PREVIEW_SIDE, PreviewEncoder, encode_preview, latents_to_image, preview_pixels, preview_size


@pytest.mark.parametrize(
    ("latent", "expected"),
    [
        ((64, 64), (256, 256)),  # SD1.5 at 512²
        ((128, 128), (256, 256)),  # SDXL at 1024²: made smaller
        ((64, 96), (171, 256)),  # 3:2
        ((8, 12), (171, 256)),
        ((1, 300), (1, 256)),
    ],
)
def test_preview_size_puts_the_longest_side_at_256(latent: tuple[int, int], expected: tuple[int, int]) -> None:
    """The longest side becomes PREVIEW_SIDE, the other follows the aspect ratio (at least one pixel)."""
    assert preview_size(*latent) == expected


def test_preview_pixels_are_one_small_rgb_image_per_latent() -> None:
    """N latents give N × H × W × 3 bytes on the latents' device; the family's projection sets the colour."""
    latents = torch.zeros(3, 4, 8, 12)
    latents[:, 0] = 1.0  # the first channel alone: SD1.5's row (0.3512, 0.2297, 0.3227)
    pixels = preview_pixels(latents, "sd15")
    assert pixels.shape == (3, 171, 256, 3) and pixels.dtype == torch.uint8
    assert tuple(pixels[0, 0, 0].tolist()) == (172, 156, 168)


def test_latents_to_image_and_its_jpeg() -> None:
    """One latent as an RGB image; its preview bytes are a JPEG of that size."""
    image = latents_to_image(torch.zeros(4, 8, 12), "sdxl")
    assert (image.size, image.mode) == ((256, 171), "RGB")
    data = encode_preview(preview_pixels(torch.zeros(1, 4, 8, 8), "sdxl")[0])
    with Image.open(io.BytesIO(data)) as decoded:
        assert (decoded.format, decoded.size) == ("JPEG", (PREVIEW_SIDE, PREVIEW_SIDE))


def test_the_encoder_hands_previews_over_in_order_off_the_calling_thread() -> None:
    """Submitted previews reach the sink in order, as JPEGs, from the encoder's own thread; close waits for them."""
    received: list[tuple[int, int, int, str, str]] = []

    def sink(job_id: int, step: int, total: int, data: bytes) -> None:
        with Image.open(io.BytesIO(data)) as image:
            received.append((job_id, step, total, image.format or "", threading.current_thread().name))

    encoder = PreviewEncoder(sink)
    pixels = preview_pixels(torch.zeros(2, 4, 8, 8), "sd15")
    encoder.submit(1, 5, 20, pixels[0])
    encoder.submit(2, 5, 20, pixels[1])
    encoder.close()
    assert received == [(1, 5, 20, "JPEG", "engine-previews"), (2, 5, 20, "JPEG", "engine-previews")]


def test_a_slow_sink_makes_the_encoder_drop_previews_not_wait() -> None:
    """While the sink is stuck, submit never blocks: previews beyond the queue are dropped."""
    release = threading.Event()
    received: list[int] = []

    def stuck_sink(job_id: int, step: int, total: int, data: bytes) -> None:
        release.wait()
        received.append(step)

    encoder = PreviewEncoder(stuck_sink)
    pixels = preview_pixels(torch.zeros(1, 4, 8, 8), "sd15")[0]
    submitting = threading.Thread(target=lambda: [encoder.submit(1, step, 50, pixels) for step in range(50)])
    submitting.start()
    submitting.join(timeout=60)  # a submit that waited for the stuck sink would still be waiting
    assert not submitting.is_alive()
    release.set()
    encoder.close()
    assert 0 < len(received) < 50 and received == sorted(received)
