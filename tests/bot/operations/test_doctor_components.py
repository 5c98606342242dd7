"""doctor's per-component GPU weights: each part of a model at the configured dtype and quantization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.operations.component_memory import PUBLISHED_PARAMETERS, component_line
from bot.operations.doctor import check_engine
from config.model_registry import ModelSpec
from config.settings import load_settings
from engine.memory_advice import component_bytes
from engine.model_sources import component_parameters
from engine.tiny import ensure_tiny_model

GIB = 2**30
FLUX = PUBLISHED_PARAMETERS["flux"]


@pytest.mark.parametrize(
    ("family", "dtype", "quantize", "text", "expected"),
    [
        (
            "flux",
            "bf16",
            "none",
            "none",
            {"transformer": (23_802_000_000, "bf16"), "text_encoder_2": (9_524_000_000, "bf16")},
        ),
        (
            "flux",
            "bf16",
            "4bit",
            "8bit",
            {"transformer": (5_950_500_000, "4bit"), "text_encoder_2": (4_762_000_000, "8bit")},
        ),
        (
            "flux",
            "fp32",
            "8bit",
            "none",
            {"transformer": (11_901_000_000, "8bit"), "text_encoder_2": (19_048_000_000, "fp32")},
        ),
        (
            "flux",
            "torch.float16",
            "none",
            "4bit",
            {"vae": (168_000_000, "fp16"), "text_encoder_2": (2_381_000_000, "4bit")},
        ),
        (
            "sd3",
            "bf16",
            "4bit",
            "4bit",
            {
                "transformer": (1_121_500_000, "4bit"),
                "text_encoder_3": (2_381_000_000, "4bit"),
                "text_encoder_2": (1_390_000_000, "bf16"),
            },
        ),
        ("sdxl", "fp16", "4bit", "8bit", {"unet": (1_283_500_000, "4bit"), "text_encoder_2": (1_390_000_000, "fp16")}),
    ],
)
def test_component_bytes(family: str, dtype: str, quantize: str, text: str, expected: dict[str, Any]) -> None:
    """The denoiser at its quantization, T5 at the text encoders', the rest at the dtype (CLIP is never quantized)."""
    sizes = component_bytes(PUBLISHED_PARAMETERS[family], dtype, family, quantize, text)
    assert {name: sizes[name] for name in expected} == expected


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    ensure_tiny_model("flux", folder)
    return folder


def test_a_model_on_disk_is_sized_from_its_files(models_dir: Path) -> None:
    """A built tiny FLUX.1 folder: each component's parameters from its safetensors headers, at 4 bytes in fp32."""
    spec = ModelSpec(source="tiny:flux", family="flux")
    counts = component_parameters(models_dir / "tiny-flux", None)
    line = component_line("tiny-flux", spec, models_dir, "fp32", "none", "none")
    # the tiny VAE is its largest part
    assert line.startswith("   model tiny-flux GPU weights (sizes from its files): vae ")
    assert "text_encoder_2 T5-XXL" in line and "text_encoder CLIP-L" in line and "vae" in line
    total = sum(counts.values()) * 4
    assert line.endswith(f"; {total / 2**20:.0f} MiB in all")


def test_a_tiny_model_not_built_is_unknown(tmp_path: Path) -> None:
    """Without its folder a tiny model has no sizes to show."""
    line = component_line("tiny-sd3", ModelSpec(source="tiny:sd3", family="sd3"), tmp_path, "fp32", "none", "none")
    assert line == "   model tiny-sd3 GPU weights: unknown until it is built or downloaded"


PROBE = {
    "python": "3.11",
    "torch": "2.13.0",
    "diffusers": "0.42.1",
    "transformers": "5.24.0",
    "device": "cuda",
    "cpu_threads": 16,
    "cuda": True,
    "bf16": True,
    "gpu": "NVIDIA RTX 4090",
    "gpu_free_gb": 23.1,
    "gpu_total_gb": 23.6,
    "bitsandbytes": "0.48.0",
}


def test_doctor_lists_each_component_of_a_quantized_flux(tmp_path: Path) -> None:
    """On a bf16 GPU with a 4-bit transformer and an 8-bit T5, doctor prints each part's size, largest first."""
    settings = load_settings(
        _env_file=None,
        data_dir=tmp_path,
        model="flux-dev",
        memory={"quantize": "4bit", "quantize_text_encoders": "8bit"},
    )
    report = check_engine(settings, (PROBE, None))
    line = next(line for line in report.lines if "model flux-dev GPU weights" in line)
    assert line == (
        "   model flux-dev GPU weights (published sizes): transformer 5.5 GiB (4bit), text_encoder_2 T5-XXL 4.4 GiB "
        "(8bit), text_encoder CLIP-L 235 MiB (bf16), vae 160 MiB (bf16); 10.4 GiB in all"
    )
    assert report.problems == []


def test_doctor_refuses_text_encoder_quantization_without_cuda(tmp_path: Path) -> None:
    """memory.quantize_text_encoders on a machine without CUDA is a problem naming the setting."""
    settings = load_settings(_env_file=None, data_dir=tmp_path, model="tiny", memory={"quantize_text_encoders": "8bit"})
    probe = {**PROBE, "device": "cpu", "cuda": False, "bf16": False}
    probe.pop("gpu")
    report = check_engine(settings, (probe, None))
    assert "memory.quantize_text_encoders = 8bit needs a CUDA GPU; set it to none" in report.problems
