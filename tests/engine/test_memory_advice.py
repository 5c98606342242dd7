"""Not enough GPU memory is one line that says what to do: loading a model (start-up and later), and rendering.

This machine has no GPU. The messages are pure functions, table-tested; the load path runs the real load of the
tiny model (real files, real from_pretrained, real memory options) with one change: the device move of the
pipeline (``DiffusionPipeline.to``, where the weights go to the GPU) raises torch.OutOfMemoryError with the CUDA
allocator's text, as it does on a GPU that is too small.
"""

from __future__ import annotations

import gc
import multiprocessing
from pathlib import Path
from typing import Any

import diffusers
import pytest
import torch

from engine import process
from engine.memory_advice import load_oom_message, memory_size, render_oom_message, weight_bytes
from engine.model_sources import component_parameters
from engine.pipelines import GpuMemoryError, ModelCache, load_entry
from engine.protocol import (
    EngineConfig,
    EngineFatal,
    EngineStarting,
    MemoryOptions,
    ModelEntry,
    RenderTask,
    TaskFailed,
)
from tests.engine.rendering import run_group_here

GiB = 2**30
CUDA_OOM = (
    "CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 7.79 GiB of which 3.12 MiB is "
    "free. Of the allocated memory 7.41 GiB is allocated by PyTorch"
)


@pytest.mark.parametrize(
    ("memory", "free", "expected"),
    [
        (
            MemoryOptions(),
            int(1.2 * GiB),
            "model sdxl needs about 6.5 GiB of GPU memory for its weights at fp16 and the GPU has 1.2 GiB free: "
            'set memory.offload = "auto" (or "model"), or memory.quantize = "4bit", or use a smaller model',
        ),
        (
            MemoryOptions(offload="auto"),
            None,
            'model sdxl needs about 6.5 GiB of GPU memory for its weights at fp16: set memory.offload = "sequential" '
            '(slowest, least memory), or memory.quantize = "4bit", or use a smaller model',
        ),
        (
            MemoryOptions(offload="sequential", quantize="4bit"),
            300 * 2**20,
            "model sdxl needs about 6.5 GiB of GPU memory for its weights at fp16, its denoiser in 4bit and the GPU "
            "has 300 MiB free: use a smaller model",
        ),
        (
            MemoryOptions(quantize="8bit"),
            GiB,
            "model sdxl needs about 6.5 GiB of GPU memory for its weights at fp16, its denoiser in 8bit and the GPU "
            'has 1.0 GiB free: set memory.offload = "auto" (or "model"), or memory.quantize = "4bit", or use a '
            "smaller model",
        ),
    ],
)
def test_load_oom_message(memory: MemoryOptions, free: int | None, expected: str) -> None:
    """How much the model needs, how much is free, and only the settings not already made."""
    assert load_oom_message("sdxl", int(6.5 * GiB), free, "torch.float16", memory) == expected


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        (
            MemoryOptions(offload="auto", quantize="4bit"),
            "model flux-dev needs about 15.3 GiB of GPU memory for its weights at bf16, its denoiser in 4bit and the "
            'GPU has 11.0 GiB free: set memory.offload = "sequential" (slowest, least memory), or '
            'memory.quantize_text_encoders = "8bit", or use a smaller model',
        ),
        (
            MemoryOptions(offload="sequential", quantize="4bit", quantize_text_encoders="8bit"),
            "model flux-dev needs about 15.3 GiB of GPU memory for its weights at bf16, its denoiser in 4bit, its T5 "
            "encoder in 8bit and the GPU has 11.0 GiB free: use a smaller model",
        ),
    ],
)
def test_a_t5_family_is_told_to_quantize_its_text_encoder(memory: MemoryOptions, expected: str) -> None:
    """SD3.5 and FLUX.1 carry a T5-XXL encoder (4.8 B parameters) that 8-bit halves: suggested until it is set."""
    assert load_oom_message("flux-dev", int(15.3 * GiB), 11 * GiB, "torch.bfloat16", memory, "flux") == expected


def test_load_oom_message_without_a_size() -> None:
    """A model whose size cannot be read still gets the advice."""
    message = load_oom_message("mine", None, GiB, "bf16", MemoryOptions())
    assert message.startswith("model mine does not fit in GPU memory at bf16 and the GPU has 1.0 GiB free: set")


@pytest.mark.parametrize(
    ("images", "memory", "jobs", "expected"),
    [
        (
            [(4, 1024, 1024)],
            MemoryOptions(),
            1,
            "the GPU ran out of memory rendering 4 image(s) of 1024x1024: use a smaller --ar size or fewer images; "
            "or ask the owner to set memory.vae_slicing = true, memory.vae_tiling = true, "
            'memory.attention_slicing = true, memory.offload = "auto"',
        ),
        (
            [(4, 512, 512), (4, 512, 512)],
            MemoryOptions(vae_slicing=True, vae_tiling=True, attention_slicing=True, offload="model"),
            2,
            "the GPU ran out of memory rendering 4 image(s) of 512x512, 4 image(s) of 512x512: use a smaller --ar "
            "size or fewer images; or ask the owner to set engine_max_batch = 1",
        ),
        (
            [(1, 2048, 2048)],
            MemoryOptions(vae_tiling=True, attention_slicing=True, offload="sequential"),
            1,
            "the GPU ran out of memory rendering 1 image(s) of 2048x2048: use a smaller --ar size or fewer images; "
            "this size does not fit this GPU",
        ),
    ],
)
def test_render_oom_message(
    images: list[tuple[int, int, int]], memory: MemoryOptions, jobs: int, expected: str
) -> None:
    """What the member can lower, and the owner's settings that are still off (no 'fewer steps': they cost time,
    not memory)."""
    assert render_oom_message(images, memory, jobs) == expected


def test_weight_bytes_by_dtype_and_quantization() -> None:
    """Each component at the engine's dtype; the UNet at half a byte per parameter in 4-bit, one in 8-bit."""
    parameters = {"unet": 2_567_463_684, "text_encoder": 123_060_480, "text_encoder_2": 694_659_841, "vae": 83_653_863}
    assert memory_size(weight_bytes(parameters, "fp16")) == "6.5 GiB"
    assert memory_size(weight_bytes(parameters, "fp32")) == "12.9 GiB"
    assert memory_size(weight_bytes(parameters, "fp16", "4bit")) == "2.9 GiB"
    assert memory_size(weight_bytes(parameters, "fp16", "8bit")) == "4.1 GiB"


def test_weight_bytes_of_a_t5_family_by_component_setting() -> None:
    """FLUX.1-dev's published sizes: 31.4 GiB at bf16; an NF4 transformer saves 16.6 GiB, an 8-bit T5 4.4 more; a
    UNet family has no T5, so the text-encoder setting changes nothing there."""
    flux = {
        "transformer": 11_901 * 10**6,
        "text_encoder": 123 * 10**6,
        "text_encoder_2": 4_762 * 10**6,
        "vae": 84 * 10**6,
    }
    assert memory_size(weight_bytes(flux, "bf16", family="flux")) == "31.4 GiB"
    assert memory_size(weight_bytes(flux, "bf16", "4bit", family="flux")) == "14.8 GiB"
    both = weight_bytes(flux, "bf16", "4bit", family="flux", quantize_text_encoders="8bit")
    assert memory_size(both) == "10.4 GiB"
    sdxl = {"unet": 2_567 * 10**6, "text_encoder_2": 695 * 10**6}
    assert weight_bytes(sdxl, "fp16", family="sdxl", quantize_text_encoders="8bit") == weight_bytes(sdxl, "fp16")


@pytest.fixture
def device_move_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moving a pipeline to its device raises the CUDA allocator's out-of-memory error."""

    def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError(CUDA_OOM)

    monkeypatch.setattr(diffusers.DiffusionPipeline, "to", fail)


def test_a_model_that_does_not_fit_is_one_line_with_its_size(tmp_path: Path, device_move_fails: None) -> None:
    """The real load of the tiny model, whose device move fails: GpuMemoryError with the weights' size read from
    its safetensors headers, and what to set."""
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(tmp_path))
    with pytest.raises(GpuMemoryError) as caught:
        load_entry(ModelEntry("tiny", "tiny:sd15", "sd15"), config)
    parameters = component_parameters(tmp_path / "models" / "tiny-sd15", None)
    size = memory_size(weight_bytes(parameters, "fp32"))
    assert str(caught.value) == (
        f"model tiny needs about {size} of GPU memory for its weights at fp32: "
        'set memory.offload = "auto" (or "model"), or memory.quantize = "4bit", or use a smaller model'
    )
    assert caught.value.__context__ is None  # no traceback keeps the half-moved weights alive


def test_the_engine_reports_its_start_up_phases_then_the_memory_line(tmp_path: Path, device_move_fails: None) -> None:
    """run_engine (in this process, on a real pipe): importing, loading, then EngineFatal with the one line."""
    ours, theirs = multiprocessing.Pipe(duplex=True)
    try:
        process.run_engine(theirs, EngineConfig("tiny", "tiny:sd15", "sd15", str(tmp_path)))
    finally:
        gc.unfreeze()
    messages = []
    while ours.poll(1):
        messages.append(ours.recv())
    ours.close()
    assert messages[0] == EngineStarting("importing", detail="torch and diffusers")
    assert messages[1] == EngineStarting("loading", model="tiny", detail="full-precision weights on cpu")
    assert isinstance(messages[2], EngineFatal) and len(messages) == 3
    assert messages[2].message.startswith("model tiny needs about ")
    assert 'set memory.offload = "auto"' in messages[2].message and "\n" not in messages[2].message


def test_a_job_whose_model_does_not_fit_fails_with_reason_oom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job for another model that does not fit fails alone, reason oom, with the owner's line."""
    models = (ModelEntry("tiny", "tiny:sd15", "sd15"), ModelEntry("tiny-sdxl", "tiny:sdxl", "sdxl"))
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(tmp_path), models=models)
    cache = ModelCache(config)
    cache.get()

    def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError(CUDA_OOM)

    monkeypatch.setattr(diffusers.DiffusionPipeline, "to", fail)
    task = RenderTask(5, "a fox", "", 64, 64, 2, 5.0, (1,), "euler", str(tmp_path / "images" / "5"), model="tiny-sdxl")

    class Inbox:
        def is_cancelled(self, job_id: int) -> bool:
            return False

    class Conn:
        def send(self, message: object) -> None:
            pass

    (failed,) = run_group_here(cache, config, [task], Inbox(), Conn(), tmp_path.resolve())  # type: ignore[arg-type]
    assert isinstance(failed, TaskFailed) and failed.reason == "oom"
    assert failed.message.startswith("model tiny-sdxl needs about ")


def test_a_flux_model_that_does_not_fit_is_told_about_its_t5_encoder(tmp_path: Path, device_move_fails: None) -> None:
    """The real load of the tiny FLUX.1, whose device move fails: the size read from its files and the T5 setting
    among what to set."""
    config = EngineConfig("tiny-flux", "tiny:flux", "flux", str(tmp_path))
    with pytest.raises(GpuMemoryError) as caught:
        load_entry(ModelEntry("tiny-flux", "tiny:flux", "flux"), config)
    parameters = component_parameters(tmp_path / "models" / "tiny-flux", None)
    size = memory_size(weight_bytes(parameters, "fp32", family="flux"))
    assert str(caught.value) == (
        f'model tiny-flux needs about {size} of GPU memory for its weights at fp32: set memory.offload = "auto" '
        '(or "model"), or memory.quantize = "4bit", or memory.quantize_text_encoders = "8bit", or use a smaller model'
    )
