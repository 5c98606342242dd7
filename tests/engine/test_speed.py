"""The speed decisions (dtype, channels_last, fused QKV, compile) and the warm-up's shapes: pure tables."""

from __future__ import annotations

import pytest

from engine.protocol import MemoryOptions, ModelEntry
from engine.speed import dtype_name, fusion_conflict, layout_switch, plan_speed, resolve_dtype
from engine.warmup import base_size_of, warmup_sizes


@pytest.mark.parametrize(
    ("requested", "device", "bf16", "expected"),
    [
        ("auto", "cuda", True, "bf16"),
        ("auto", "cuda", False, "fp16"),
        ("auto", "mps", False, "fp16"),
        ("auto", "xpu", True, "fp16"),
        ("auto", "cpu", False, "fp32"),
        ("fp16", "cuda", True, "fp16"),
        ("fp32", "cuda", True, "fp32"),
        ("bf16", "cpu", False, "bf16"),
    ],
)
def test_resolve_dtype(requested: str, device: str, bf16: bool, expected: str) -> None:
    """auto: bf16 where a CUDA card computes it, fp16 on other GPUs, fp32 on the CPU; an explicit choice is kept."""
    assert resolve_dtype(requested, device, bf16) == expected


def test_unknown_dtype_is_refused() -> None:
    """A dtype outside the list is an error that lists the choices."""
    with pytest.raises(ValueError, match="dtype 'fp8' is not one of auto, fp16, bf16, fp32"):
        resolve_dtype("fp8", "cuda", True)


@pytest.mark.parametrize(
    ("setting", "family", "device", "expected"),
    [
        ("auto", "sd15", "cuda", True),
        ("auto", "sd2", "cuda", True),
        ("auto", "sdxl", "cuda", False),
        ("auto", "StableDiffusion3Pipeline", "cuda", False),
        ("auto", "sd15", "cpu", False),
        ("auto", "sd15", "mps", False),
        (True, "sdxl", "cuda", True),
        (True, "sd15", "cpu", True),
        (False, "sd15", "cuda", False),
    ],
)
def test_layout_switch(setting: bool | str, family: str, device: str, expected: bool) -> None:
    """channels_last and fused QKV: auto is on for SD1.x/2.x on CUDA only; true/false is the owner's choice."""
    assert layout_switch(setting, family, device) is expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (MemoryOptions(), ""),
        (MemoryOptions(sdpa=False), "sdpa = false (classic attention)"),
        (MemoryOptions(attention_slicing=True), "attention_slicing = true"),
        (MemoryOptions(quantize="4bit"), "quantize = 4bit"),
    ],
)
def test_fusion_conflict(options: MemoryOptions, expected: str) -> None:
    """Fused QKV would replace classic or sliced attention, and cannot concatenate quantized weights."""
    assert fusion_conflict(options) == expected


@pytest.mark.parametrize(
    ("options", "family", "device", "dtype", "labels"),
    [
        (MemoryOptions(), "sd15", "cuda", "bf16", ("bf16", "sdpa", "tf32", "channels_last", "fused qkv")),
        (MemoryOptions(), "sdxl", "cuda", "bf16", ("bf16", "sdpa", "tf32")),
        (MemoryOptions(), "sd15", "cpu", "fp32", ("fp32", "sdpa")),
        (
            MemoryOptions(compile=True),
            "sd15",
            "cuda",
            "fp16",
            ("fp16", "sdpa", "tf32", "channels_last", "fused qkv", "compiled (regional)"),
        ),
        (
            MemoryOptions(compile=True, compile_mode="full"),
            "sdxl",
            "cuda",
            "bf16",
            ("bf16", "sdpa", "tf32", "compiled (full)"),
        ),
        (
            MemoryOptions(tf32=False, channels_last=False, fused_qkv=False),
            "sd15",
            "cuda",
            "bf16",
            ("bf16", "sdpa"),
        ),
        (MemoryOptions(attention_slicing=True), "sd15", "cuda", "bf16", ("bf16", "sdpa", "tf32", "channels_last")),
        (MemoryOptions(sdpa=False, fused_qkv=True), "sd15", "cuda", "fp16", ("fp16", "tf32", "channels_last")),
    ],
)
def test_plan_speed_labels(
    options: MemoryOptions, family: str, device: str, dtype: str, labels: tuple[str, ...]
) -> None:
    """What a load turns on, in the words the engine logs and sends in EngineReady.speed."""
    assert plan_speed(options, family, device, dtype).labels() == labels


def test_unknown_compile_mode_is_refused() -> None:
    """compile_mode is regional or full."""
    with pytest.raises(ValueError, match="compile_mode 'partial' is not one of regional, full"):
        plan_speed(MemoryOptions(compile=True, compile_mode="partial"), "sd15", "cuda", "bf16")


@pytest.mark.parametrize(
    ("dtype", "name"),
    [("torch.float16", "fp16"), ("torch.bfloat16", "bf16"), ("torch.float32", "fp32"), ("float16", "fp16")],
)
def test_dtype_name(dtype: str, name: str) -> None:
    """torch's dtype names in the engine's words."""
    assert dtype_name(dtype) == name


@pytest.mark.parametrize(
    ("base", "sizes"),
    [
        (512, [(624, 416), (512, 512)]),
        (1024, [(1256, 840), (1024, 1024)]),
        (768, [(944, 624), (768, 768)]),
        (64, [(80, 56), (64, 64)]),
    ],
)
def test_warmup_sizes(base: int, sizes: list[tuple[int, int]]) -> None:
    """A 3:2 shape first (a square one first would have dynamo assume height == width), then the square base."""
    assert warmup_sizes(base) == sizes
    for width, height in sizes:
        assert width % 8 == 0 and height % 8 == 0


@pytest.mark.parametrize(
    ("entry", "size"),
    [
        (ModelEntry("mine", "/models/mine", "sd15", base_size=640), 640),
        (ModelEntry("sd15", "org/sd15", "sd15"), 512),
        (ModelEntry("sdxl", "org/sdxl", "sdxl"), 1024),
        (ModelEntry("sd2", "org/sd2", "sd2"), 768),
        (ModelEntry("tiny", "tiny:sd15", "sd15"), 64),
        (ModelEntry("tiny-sdxl", "tiny:sdxl", "sdxl"), 64),
    ],
)
def test_base_size_of(entry: ModelEntry, size: int) -> None:
    """The registry's base_size, else the family's usual size (64 for the tiny models)."""
    assert base_size_of(entry) == size
