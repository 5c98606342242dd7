"""``python -m bench.result_encoding``: what encoding a job's files costs, to choose formats with numbers.

A photo-like test image (smooth structure plus sensor-like noise, which compresses like a render; a flat or
random image would flatter or punish every encoder) at 512² for a single and 1024² for a 2×2 grid: milliseconds
(best of :data:`RUNS`, one thread) and KiB for PNG (Pillow at levels 1 and 6, and :mod:`engine.png_encoding`),
lossless WebP, and JPEG / WebP at high quality. Then the files of one 4-image 512² job as the engine writes them,
one after another and on the encoder pool. Prints one JSON object as its last line.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

RUNS = 5


def photo_like(side: int, seed: int = 0) -> Image.Image:
    """Smooth colour fields from a 16×16 grid of random colours, plus Gaussian noise of σ 6."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC)).astype(np.int16)
    noisy = smooth + rng.normal(0, 6, smooth.shape).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def best_ms(encode: Callable[[], bytes]) -> tuple[float, int]:
    """Best of RUNS in milliseconds, and the size in KiB."""
    times: list[float] = []
    data = b""
    for _ in range(RUNS):
        started = time.perf_counter()
        data = encode()
        times.append(time.perf_counter() - started)
    return round(min(times) * 1000, 2), len(data) // 1024


def pillow(image: Image.Image, fmt: str, **options: Any) -> Callable[[], bytes]:
    def encode() -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    return encode


def formats(image: Image.Image) -> dict[str, dict[str, float]]:
    from engine.png_encoding import encode_png

    candidates = {
        "png_pillow_level6": pillow(image, "PNG", compress_level=6),
        "png_pillow_level1": pillow(image, "PNG", compress_level=1),
        "png_engine": lambda: encode_png(image, {"parameters": "a red fox"}),
        "webp_lossless_fastest": pillow(image, "WEBP", lossless=True, quality=0, method=0),
        "webp_q90_method0": pillow(image, "WEBP", quality=90, method=0),
        "jpeg_q90": pillow(image, "JPEG", quality=90),
        "jpeg_q95": pillow(image, "JPEG", quality=95),
    }
    table: dict[str, dict[str, float]] = {}
    for name, encode in candidates.items():
        ms, kib = best_ms(encode)
        table[name] = {"ms": ms, "kib": kib}
    return table


def job_files_ms(workers: int) -> float:
    """Writing one 4-image 512² job's files (singles and grid) as the engine does, on ``workers`` encoder threads."""
    import tempfile

    from engine.protocol import RenderTask
    from engine.render import ImageInfo, Rendered
    from engine.results import write_results

    images = [photo_like(512, seed) for seed in range(4)]
    infos = [ImageInfo(seed, "a red fox", 20, 7.0, "euler_a") for seed in range(4)]
    folder = tempfile.mkdtemp(prefix="imagine-encoding-")
    task = RenderTask(1, "a red fox", "", 512, 512, 20, 7.0, (0, 1, 2, 3), "euler_a", folder)
    rendered = Rendered(images, infos)
    with ThreadPoolExecutor(workers) as pool:
        ms, _kib = best_ms(lambda: write_results("m", task, rendered, 1.0, encoders=pool).grid_path.encode())
    return ms


def main() -> dict[str, object]:
    import os

    cpus = os.cpu_count() or 1
    return {
        "benchmark": "result_encoding",
        "cpus": cpus,
        "single_512": formats(photo_like(512)),
        "grid_1024": formats(photo_like(1024)),
        "job_files_ms": {"one_thread": job_files_ms(1), f"{min(cpus, 8)}_threads": job_files_ms(min(cpus, 8))},
        "chosen": {"single": "png_engine", "grid": "jpeg_q90"},
    }


if __name__ == "__main__":
    print(json.dumps(main()))
