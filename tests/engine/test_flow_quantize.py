"""Which component bitsandbytes quantizes per family, and the CPU refusal of the quantization settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.flow_quantize import bnb_kwargs, quantization_plan, quantization_problem
from engine.pipelines import ModelLoadError, load_entry
from engine.protocol import EngineConfig, MemoryOptions, ModelEntry


@pytest.mark.parametrize(
    ("family", "quantize", "text", "plan"),
    [
        ("sd15", "none", "none", {}),
        ("sd15", "4bit", "none", {"unet": "4bit"}),
        ("sdxl", "8bit", "4bit", {"unet": "8bit"}),
        ("sd3", "4bit", "none", {"transformer": "4bit"}),
        ("sd3", "none", "8bit", {"text_encoder_3": "8bit"}),
        ("sd3", "4bit", "8bit", {"transformer": "4bit", "text_encoder_3": "8bit"}),
        ("flux", "4bit", "8bit", {"transformer": "4bit", "text_encoder_2": "8bit"}),
        ("flux", "8bit", "4bit", {"transformer": "8bit", "text_encoder_2": "4bit"}),
        ("flux", "none", "none", {}),
    ],
)
def test_quantization_plan(family: str, quantize: str, text: str, plan: dict[str, str]) -> None:
    """The denoiser follows memory.quantize, the T5 encoder memory.quantize_text_encoders; a UNet family has no T5."""
    assert quantization_plan(family, quantize, text) == plan


def test_unknown_mode_is_refused() -> None:
    """A mode that is not none/8bit/4bit names the setting."""
    with pytest.raises(ValueError, match=r"memory\.quantize_text_encoders"):
        quantization_plan("flux", "none", "2bit")


def test_bnb_kwargs() -> None:
    """4-bit is NF4 computing in the engine's dtype, 8-bit is LLM.int8()."""
    assert bnb_kwargs("4bit", "bf16") == {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_compute_dtype": "bf16",
    }
    assert bnb_kwargs("8bit", "bf16") == {"load_in_8bit": True}


@pytest.mark.parametrize(
    ("options", "device", "bnb", "problem"),
    [
        (MemoryOptions(), "cpu", False, ""),
        (MemoryOptions(quantize="4bit"), "cpu", True, "memory.quantize='4bit' needs a CUDA GPU"),
        (
            MemoryOptions(quantize_text_encoders="8bit"),
            "cpu",
            True,
            "memory.quantize_text_encoders='8bit' needs a CUDA GPU (bitsandbytes), but this engine runs on cpu; "
            "set memory.quantize_text_encoders to none",
        ),
        (
            MemoryOptions(quantize="4bit", quantize_text_encoders="8bit"),
            "mps",
            True,
            "set memory.quantize and memory.quantize_text_encoders to none",
        ),
        (MemoryOptions(quantize_text_encoders="4bit"), "cuda", False, "pip install 'imaginebot[quant]'"),
        (MemoryOptions(quantize="4bit", quantize_text_encoders="8bit"), "cuda", True, ""),
    ],
)
def test_quantization_problem(options: MemoryOptions, device: str, bnb: bool, problem: str) -> None:
    """Quantization needs CUDA and bitsandbytes; the line names the settings to change."""
    found = quantization_problem(options, device, has_bitsandbytes=bnb)
    assert (problem in found) if problem else found == ""


@pytest.mark.parametrize("memory", [MemoryOptions(quantize_text_encoders="8bit"), MemoryOptions(quantize="4bit")])
def test_flux_engine_on_cpu_refuses_quantization_at_start(tmp_path: Path, memory: MemoryOptions) -> None:
    """Loading a FLUX.1 model on the CPU with a quantization setting fails with the one line to change."""
    config = EngineConfig(
        model_name="tiny-flux",
        model_source="tiny:flux",
        family="flux",
        models=(ModelEntry("tiny-flux", "tiny:flux", "flux"),),
        data_dir=str(tmp_path),
        device="cpu",
        memory=memory,
    )
    with pytest.raises(ModelLoadError, match=r"needs a CUDA GPU .*; set memory\.quantize\w* to none$"):
        load_entry(config.models[0], config)
