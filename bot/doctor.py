"""``python -m bot doctor``: what this installation runs on and what is wrong with it, in plain words.

The bot process never imports torch, so the device part runs ``python -m engine.probe`` in a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import Settings
from engine.model_sources import source_kind, source_problem

PROBE_TIMEOUT_S = 180.0


@dataclass
class Report:
    """Lines to print and the problems found (an empty list means healthy)."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_registry(settings: Settings) -> Report:
    """Each model's and LoRA's source, checked without loading anything."""
    report = Report()
    for name, spec in sorted(settings.registry.items()):
        kind = source_kind(spec.source)
        problem = source_problem(spec.source, spec.config)
        marker = "*" if name == settings.model else " "
        status = f"problem: {problem}" if problem else ("ok" if kind != "hub" else _hub_status(spec.source))
        report.lines.append(f" {marker} model {name} ({spec.family}, {kind}: {spec.source}): {status}")
        if problem:
            report.problems.append(f"model {name}: {problem}")
    for name, lora in sorted(settings.loras.items()):
        exists = Path(lora.path).expanduser().is_file()
        report.lines.append(f"   lora {name}: {lora.path}: {'ok' if exists else 'missing'}")
        if not exists:
            report.problems.append(f"lora {name}: the file {lora.path} does not exist")
    return report


def _hub_status(repo_id: str) -> str:
    """Whether a hub model is already in the Hugging Face cache (then it loads offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return "a hub id (huggingface_hub is missing)"
    cached = try_to_load_from_cache(repo_id, "model_index.json")
    if isinstance(cached, str):
        return "ok (in the Hugging Face cache)"
    return "not downloaded yet: fetched from the hub on first use (needs the network)"


def check_engine(settings: Settings) -> Report:
    """Run the engine probe in a child process and describe what it found."""
    report = Report()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "engine.probe"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
        info = json.loads(completed.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, OSError, json.JSONDecodeError, IndexError) as error:
        report.problems.append(f"the engine probe failed ({type(error).__name__}): is torch installed?")
        return report
    report.lines.append(
        f"python {info['python']}, torch {info['torch']}, diffusers {info['diffusers']}, "
        f"transformers {info['transformers']}"
    )
    device = info["device"] if settings.device == "auto" else settings.device
    report.lines.append(f"device: {device} (auto would pick {info['device']}), {info['cpu_threads']} CPU threads")
    if "gpu" in info:
        report.lines.append(f"gpu: {info['gpu']}, {info['gpu_free_gb']} GiB free of {info['gpu_total_gb']} GiB")
    elif settings.device == "cuda":
        report.problems.append("device is set to cuda but no CUDA GPU is visible; set device = 'auto' or fix drivers")
    report.lines.append(
        "optional packages: "
        + ", ".join(f"{name} {info.get(name) or 'missing'}" for name in ("compel", "peft", "bitsandbytes"))
    )
    if settings.memory.quantize != "none" and not info["cuda"]:
        report.problems.append(f"memory.quantize = {settings.memory.quantize} needs a CUDA GPU; set it to none")
    if settings.memory.quantize != "none" and not info.get("bitsandbytes"):
        report.problems.append("memory.quantize needs bitsandbytes: pip install 'imaginebot[quant]'")
    if settings.loras and not info.get("peft"):
        report.problems.append("LoRAs are configured but peft is missing: pip install peft")
    if device == "cpu" and settings.model not in ("tiny", "tiny-sdxl"):
        report.lines.append("note: rendering on the CPU is slow for real models (minutes per image)")
    return report


def run_doctor(settings: Settings, *, probe_engine: bool = True) -> tuple[int, str]:
    """The exit code (0 healthy, 1 problems) and the text to print."""
    lines = [f"imaginebot doctor: data_dir {settings.data_dir.resolve()}, model {settings.model}"]
    reports = [check_registry(settings)]
    if probe_engine:
        reports.insert(0, check_engine(settings))
    problems: list[str] = []
    for report in reports:
        lines.extend(report.lines)
        problems.extend(report.problems)
    if problems:
        lines.append("problems:")
        lines.extend(f"  - {problem}" for problem in problems)
    else:
        lines.append("no problems found")
    return (1 if problems else 0), "\n".join(lines)
