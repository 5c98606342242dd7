"""``python -m bench.gpu_flow``: seconds per image and peak GPU memory of full-size SD3.5-medium and FLUX.1 at 1024².

The models are the published architectures with random weights (``bench.gpu_flow_models``: built on the GPU in
bf16, saved once under ``--models`` (default ``data/bench-models``; FLUX.1 takes 33 GB of disk, SD3.5-medium 16
GB), nothing downloaded), loaded through the engine's own loading path (:func:`engine.pipelines.load_entry`, so
``memory.quantize`` and ``memory.quantize_text_encoders`` go through the code owners run). Each case loads its
model, renders one warm-up image, then ``--runs`` timed images (one image per call, the model's default steps and
guidance), and records:

- ``seconds_per_image``: the median of the timed calls (text encoding, every step, the VAE decode);
- ``peak_gib``: ``torch.cuda.max_memory_allocated`` over the timed calls; ``weights_gib``: allocated after load;
- ``components_gib``: each component's weights as loaded (quantized ones at their packed size); ``load_s``.

Cases: SD3.5-medium bf16 and with a 4-bit (NF4) transformer; FLUX.1-dev bf16, NF4 transformer, 8-bit T5, both
(the 12-16 GB recipe); FLUX.1-schnell's 4 steps (the same transformer compute as dev: the guidance embedding is a
few MLPs, so the dev folder stands in for it). A case that fails records its error and the others still run.

``--tiny`` runs the same code on the CPU with ``tiny:sd3`` / ``tiny:flux`` at 64² and 2 steps (quantized cases are
skipped there: bitsandbytes needs CUDA); the timings then mean nothing. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 2**30
SIZE = 1024
TINY_SIZE = 64


@dataclass(frozen=True)
class Case:
    """One measurement: a model, its steps and guidance, and the quantization settings."""

    name: str
    model: str
    steps: int
    guidance: float
    quantize: str = "none"
    quantize_text_encoders: str = "none"


CASES = (
    Case("sd35_medium_bf16", "sd35-medium", 28, 4.5),
    Case("sd35_medium_nf4", "sd35-medium", 28, 4.5, quantize="4bit"),
    Case("flux_dev_bf16", "flux-dev", 28, 3.5),
    Case("flux_dev_nf4", "flux-dev", 28, 3.5, quantize="4bit"),
    Case("flux_dev_t5_8bit", "flux-dev", 28, 3.5, quantize_text_encoders="8bit"),
    Case("flux_dev_nf4_t5_8bit", "flux-dev", 28, 3.5, quantize="4bit", quantize_text_encoders="8bit"),
    Case("flux_schnell_bf16", "flux-dev", 4, 0.0),
)
RESULT_KEYS = ("seconds_per_image", "peak_gib", "weights_gib", "components_gib", "load_s", "steps", "size")


def run_case(case: Case, folder: Path, data_dir: Path, device: str, runs: int, size: int, steps: int) -> dict[str, Any]:
    """Load ``case``'s model from ``folder`` through the engine and time ``runs`` images after one warm-up."""
    import torch

    from bench.gpu_flow_models import FAMILY_OF
    from engine.flow_offload import module_bytes
    from engine.pipelines import load_entry
    from engine.protocol import EngineConfig, MemoryOptions, ModelEntry

    family = FAMILY_OF[case.model]
    entry = ModelEntry(case.name, str(folder), family)
    memory = MemoryOptions(quantize=case.quantize, quantize_text_encoders=case.quantize_text_encoders)
    config = EngineConfig(
        model_name=case.name,
        model_source=str(folder),
        family=family,
        data_dir=str(data_dir),
        device=device,
        dtype="bf16" if device == "cuda" else "fp32",
        models=(entry,),
        memory=memory,
    )
    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    load_started = time.perf_counter()
    loaded = load_entry(entry, config)
    load_s = time.perf_counter() - load_started
    pipe = loaded.pipeline
    weights = torch.cuda.memory_allocated() / GIB if cuda else None
    components = {
        name: round(module_bytes(module) / GIB, 3)
        for name, module in pipe.components.items()
        if isinstance(module, torch.nn.Module)
    }

    def render(seed: int) -> float:
        started = time.perf_counter()
        pipe(
            "a lighthouse on a cliff at dusk, oil painting",
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=case.guidance,
            generator=torch.Generator().manual_seed(seed),
        )
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    render(0)  # warm-up: kernels picked, allocator grown
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = [render(seed) for seed in range(1, runs + 1)]
    peak = torch.cuda.max_memory_allocated() / GIB if cuda else None
    return {
        "seconds_per_image": round(statistics.median(seconds), 3),
        "peak_gib": round(peak, 2) if peak is not None else None,
        "weights_gib": round(weights, 2) if weights is not None else None,
        "components_gib": components,
        "load_s": round(load_s, 1),
        "steps": steps,
        "size": size,
    }


def main(tiny: bool, runs: int, models_dir: Path, only: list[str]) -> dict[str, Any]:
    """Every case (or those in ``only``); the JSON object the benchmark prints last."""
    import torch

    from bench.gpu_flow_models import build_flow_model

    cuda = torch.cuda.is_available() and not tiny
    if not cuda and not tiny:
        return {"benchmark": "gpu_flow", "skipped": True, "reason": "no CUDA device on this machine (try --tiny)"}
    device = "cuda" if cuda else "cpu"
    started = time.perf_counter()
    results: dict[str, Any] = {}
    data_dir = Path(tempfile.mkdtemp(prefix="gpu-flow-"))
    for case in CASES:
        if only and case.name not in only:
            continue
        if not cuda and (case.quantize != "none" or case.quantize_text_encoders != "none"):
            results[case.name] = {"skipped": "bitsandbytes quantization needs a CUDA GPU"}
            continue
        try:
            build_started = time.perf_counter()
            folder = build_flow_model(case.model, models_dir, tiny=tiny)
            build_s = round(time.perf_counter() - build_started, 1)
            size, steps = (TINY_SIZE, 2) if tiny else (SIZE, case.steps)
            results[case.name] = {**run_case(case, folder, data_dir, device, runs, size, steps), "build_s": build_s}
        except Exception as error:  # one broken case must not cost the others' figures
            results[case.name] = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps({"case": case.name, **results[case.name]}), flush=True)
    return {
        "benchmark": "gpu_flow",
        "skipped": False,
        "tiny": tiny,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny models on the CPU (rehearsal; no timings)")
    parser.add_argument("--runs", type=int, default=3, help="timed images per case after the warm-up")
    parser.add_argument("--models", type=Path, default=Path("data/bench-models"), help="where the models are saved")
    parser.add_argument("--only", nargs="*", default=[], help="cases to run (default: all)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    arguments.models.mkdir(parents=True, exist_ok=True)
    print(json.dumps(main(arguments.tiny, arguments.runs, arguments.models, arguments.only)))
