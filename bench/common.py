"""Helpers shared by the benchmarks: a quiet, isolated tiny-model setup."""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from bot.application.service import ImagineService


def quiet() -> None:
    """No INFO logs on stdout: a benchmark's last stdout line must be its JSON."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)


def tiny_settings(**overrides: object) -> Settings:
    """Settings on the tiny model in a fresh temporary data folder."""
    data_dir = Path(tempfile.mkdtemp(prefix="imagine-bench-"))
    values: dict[str, object] = {"model": "tiny", "data_dir": data_dir, "log_level": "WARNING", "preview_every": 0}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def ensure_full_size_model(models_dir: Path) -> Path:
    """A tiny SD1.5-architecture model whose VAE scales by 8, as the real ones do, at ``models_dir/tiny-sd15-x8``:
    512² images from 64² latents, so its denoising costs almost nothing while every image has a real output size
    (what the job path does per image, encoding above all, is then measured at real sizes)."""
    import diffusers
    import torch

    from engine.tiny import ensure_tiny_model

    target = models_dir / "tiny-sd15-x8"
    if (target / "model_index.json").is_file():
        return target
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(str(ensure_tiny_model("sd15", models_dir)))
    torch.manual_seed(0)
    pipe.unet = diffusers.UNet2DConditionModel(  # one block of 8 channels, no attention: denoising is almost free
        block_out_channels=(8,),
        layers_per_block=1,
        down_block_types=("DownBlock2D",),
        up_block_types=("UpBlock2D",),
        mid_block_type=None,
        norm_num_groups=4,
        in_channels=4,
        out_channels=4,
        cross_attention_dim=pipe.unet.config.cross_attention_dim,
        sample_size=64,
    )
    pipe.vae = diffusers.AutoencoderKL(
        block_out_channels=(4, 4, 4, 4),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=0,
        norm_num_groups=2,
        mid_block_add_attention=False,
        sample_size=512,
    )
    pipe.save_pretrained(str(target))
    return target


def full_size_settings(**overrides: object) -> Settings:
    """Settings whose default model is :func:`ensure_full_size_model` (``x8``: 512² images, 1 step), in a fresh
    temporary data folder."""
    data_dir = Path(tempfile.mkdtemp(prefix="imagine-bench-"))
    folder = ensure_full_size_model(data_dir / "models")
    spec = {"source": str(folder), "family": "sd15", "base_size": 512, "steps": 1, "cfg": 7.0}
    return tiny_settings(data_dir=data_dir, model="x8", models={"x8": spec}, **overrides)


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[ImagineService]:
    """The application core with its own engine process, its model loaded; closed after the block (also when the
    engine cannot start)."""
    from bot.application.service import ImagineService

    service = await ImagineService.open(settings)
    try:
        await service.engine.wait_ready()
        yield service
    finally:
        await service.close()
