"""``python -m bench.gpu_flow --tiny``: the SD3.5/FLUX.1 GPU benchmark's code path on the CPU with the tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu_flow import CASES, RESULT_KEYS
from bench.gpu_flow_models import FLUX_TRANSFORMER, SD35_MEDIUM_TRANSFORMER, T5_XXL, component_parameters

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_run_prints_one_json_object_with_every_case(tmp_path: Path) -> None:
    """Unquantized cases render and report their keys; quantized ones say why they were skipped on the CPU."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.gpu_flow", "--tiny", "--runs", "1", "--models", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert (result["benchmark"], result["skipped"], result["tiny"], result["device"]) == (
        "gpu_flow",
        False,
        True,
        "cpu",
    )
    assert set(result["results"]) == {case.name for case in CASES}
    for case in CASES:
        got = result["results"][case.name]
        if case.quantize != "none" or case.quantize_text_encoders != "none":
            assert got == {"skipped": "bitsandbytes quantization needs a CUDA GPU"}
            continue
        assert set(RESULT_KEYS) <= set(got), got
        assert got["size"] == 64 and got["seconds_per_image"] > 0
        assert "transformer" in got["components_gib"] and "vae" in got["components_gib"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("sd35-medium", {"transformer": 2.24, "text_encoder_3": 4.76, "text_encoder_2": 0.69, "text_encoder": 0.12}),
        ("flux-dev", {"transformer": 11.90, "text_encoder_2": 4.76, "text_encoder": 0.12}),
    ],
)
def test_full_size_architectures_have_the_published_parameter_counts(kind: str, expected: dict[str, float]) -> None:
    """On the meta device the configs give SD3.5-medium's 2.2 B and FLUX.1's 11.9 B transformer, T5-XXL's 4.8 B."""
    counts = component_parameters(kind)
    assert {name: round(counts[name] / 1e9, 2) for name in expected} == expected


def test_configs_are_the_published_ones() -> None:
    """Spot checks against the models' config.json: depth, width and text width."""
    assert (SD35_MEDIUM_TRANSFORMER["num_layers"], SD35_MEDIUM_TRANSFORMER["caption_projection_dim"]) == (24, 1536)
    assert (FLUX_TRANSFORMER["num_layers"], FLUX_TRANSFORMER["num_single_layers"]) == (19, 38)
    assert (T5_XXL["d_model"], T5_XXL["num_layers"], T5_XXL["d_ff"]) == (4096, 24, 10240)
