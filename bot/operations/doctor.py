"""``python -m bot doctor``: what this installation runs on and what is wrong with it, in plain words.

The bot process never imports torch, so the device part runs ``python -m engine.probe`` in a child process (once,
whatever the number of engines). The engines the configuration starts are resolved the way ``run`` resolves them:
this machine's GPUs as the driver lists them (``nvidia-smi``, ``CUDA_VISIBLE_DEVICES``), or the Ray cluster it will
join (doctor does not contact it).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.operations.component_memory import component_lines
from bot.running.engine_devices import EngineDevice, local_engine_devices
from config.model_registry import ModelSpec
from config.settings import Settings
from config.sources import misnamed_token_variables, sources_text
from engine.model_sources import lora_problem, model_is_present, source_kind, source_problem
from engine.protocol import MemoryOptions
from engine.speed import plan_speed, resolve_dtype

PROBE_TIMEOUT_S = 180.0


@dataclass
class Report:
    """Lines to print and the problems found (an empty list means healthy)."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_token(settings: Settings) -> Report:
    """A bot token must be configured for ``run`` (its value is never shown)."""
    report = Report()
    from bot.discord_surface.discord_token import token_shape_problem

    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        report.lines.append("discord token: missing")
        report.problems.append(
            "no Discord token: put IMAGINE_DISCORD_TOKEN=<token> in .env (or the environment); get one at "
            "https://discord.com/developers/applications -> your app -> Bot -> Reset Token"
        )
        report.problems.extend(misnamed_token_variables())
        return report
    shape = token_shape_problem(settings.discord_token.get_secret_value())
    report.lines.append("discord token: set" if shape is None else "discord token: set, not a bot token's shape")
    if shape is not None:
        report.problems.append(shape)
    return report


def check_registry(settings: Settings) -> Report:
    """Each model's and LoRA's source, checked without loading anything; which models members may pick."""
    report = Report()
    members = set(settings.member_models)
    for name, spec in sorted(settings.registry.items()):
        kind = source_kind(spec.source)
        problem = source_problem(spec.source, spec.config)
        marker = "*" if name == settings.model else " "
        if problem:
            status = f"problem: {problem}"
        else:
            status = _hub_status(name, spec, default=name == settings.model) if kind == "hub" else "ok"
        use = "members" if name in members else "owner only"
        report.lines.append(f" {marker} model {name} ({spec.family}, {kind}: {spec.source}, {use}): {status}")
        if problem:
            report.problems.append(f"model {name}: {problem}")
        elif name in members and name != settings.model and not model_is_present(spec):
            report.problems.append(f"model {name} is offered to members but not downloaded: run `{_pull(name)}`")
    for name, lora in sorted(settings.loras.items()):
        problem = lora_problem(lora.path)
        report.lines.append(f"   lora {name}: {lora.path}: {'ok' if problem is None else 'missing'}")
        if problem is not None:
            report.problems.append(f"lora {name}: {problem}")
    return report


def _hub_status(name: str, spec: ModelSpec, *, default: bool) -> str:
    """Whether a hub model is already in the Hugging Face cache (then it loads offline)."""
    if model_is_present(spec):
        return "ok (in the Hugging Face cache)"
    if default:
        return f"not downloaded yet: fetched when the engine starts (needs the network), or now with `{_pull(name)}`"
    return f"not downloaded: `{_pull(name)}` (only the default model is fetched by the engine)"


def _pull(name: str) -> str:
    return f"python -m bot models pull {name}"


def probe_machine() -> tuple[dict[str, Any] | None, str | None]:
    """Run the engine probe in a child process: what it found, or why it failed."""
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "engine.probe"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
        return json.loads(completed.stdout.strip().splitlines()[-1]), None
    except (subprocess.TimeoutExpired, OSError, json.JSONDecodeError, IndexError) as error:
        return None, f"the engine probe failed ({type(error).__name__}): is torch installed?"


def check_engine(settings: Settings, probed: tuple[dict[str, Any] | None, str | None] | None = None) -> Report:
    """Describe what the engine probe found (``probed``: :func:`probe_machine`'s answer; run now when None)."""
    report = Report()
    info, failure = probe_machine() if probed is None else probed
    if info is None:
        report.problems.append(failure or "the engine probe failed: is torch installed?")
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
    report.lines.append(speed_line(settings, device, bool(info.get("bf16"))))
    report.lines.extend(component_lines(settings, resolve_dtype(settings.dtype, device, bool(info.get("bf16")))))
    report.lines.append(
        "optional packages: "
        + ", ".join(f"{name} {info.get(name) or 'missing'}" for name in ("compel", "peft", "bitsandbytes"))
    )
    if settings.memory.quantize != "none" and not info["cuda"]:
        report.problems.append(f"memory.quantize = {settings.memory.quantize} needs a CUDA GPU; set it to none")
    if settings.memory.quantize != "none" and not info.get("bitsandbytes"):
        report.problems.append("memory.quantize needs bitsandbytes: pip install 'imaginebot[quant]'")
    if settings.memory.quantize_text_encoders != "none" and not info["cuda"]:
        report.problems.append(
            f"memory.quantize_text_encoders = {settings.memory.quantize_text_encoders} needs a CUDA GPU; set it to none"
        )
    if settings.loras and not info.get("peft"):
        report.problems.append("LoRAs are configured but peft is missing: pip install peft")
    if device == "cpu" and settings.model not in ("tiny", "tiny-sdxl"):
        report.lines.append("note: rendering on the CPU is slow for real models (minutes per image)")
    return report


def speed_line(settings: Settings, device: str, bf16: bool) -> str:
    """What the engine will turn on for the default model on ``device`` (``bf16``: the card computes it), e.g.
    ``speed (model sd15 on cuda): bf16, sdpa, tf32, channels_last, fused qkv``."""
    family = settings.registry[settings.model].family
    dtype = resolve_dtype(settings.dtype, device, bf16)
    labels = plan_speed(MemoryOptions(**settings.memory.model_dump()), family, device, dtype).labels()
    compiling = "; the engine compiles at start-up (warm-up)" if settings.memory.compile else ""
    return f"speed (model {settings.model} on {device}): {', '.join(labels)}{compiling}"


def check_engines(settings: Settings, probe: Mapping[str, Any] | None = None) -> Report:
    """The engines ``run`` will start: this machine's devices (``engine.backend = "local"``), each GPU's memory when
    the probe read it, or the Ray cluster to join (``"ray"``), without contacting it."""
    if settings.engine.backend == "ray":
        return _ray_engines(settings)
    report = Report()
    try:
        devices = local_engine_devices(settings.engine.devices, settings.device)
    except ValueError as error:
        report.lines.append(f"engines: none can start: {error}")
        report.problems.append(f'{error}; list only those in engine.devices, or write devices = "auto"')
        return report
    report.lines.extend(engine_device_lines(devices, probe))
    return report


def engine_device_lines(devices: Sequence[EngineDevice], probe: Mapping[str, Any] | None = None) -> list[str]:
    """``engines: 2 (cuda:0, cuda:1)``, then a line per engine when there are several (or one on another GPU than
    the first), with its card's name and memory from ``probe`` (the engine probe's answer, None without it)."""
    auto = probe.get("device") if probe is not None else None
    labels = [auto if device.label == "auto" and auto else device.label for device in devices]
    lines = [f"engines: {len(devices)} ({', '.join(labels)})"]
    if len(devices) == 1 and _gpu_position(labels[0]) in (None, 0):
        return lines
    gpus: list[Mapping[str, Any]] = list(probe.get("gpus", ())) if probe is not None else []
    for index, (device, label) in enumerate(zip(devices, labels, strict=True)):
        line = f"  engine {index}: {label}"
        if device.visible:
            line += f" (CUDA_VISIBLE_DEVICES={device.visible})"
        position = _gpu_position(label)
        if position is not None and position < len(gpus):
            gpu = gpus[position]
            line += f", {gpu['name']}, {gpu['free_gb']} GiB free of {gpu['total_gb']} GiB"
        lines.append(line)
    return lines


def _gpu_position(label: str) -> int | None:
    """N of ``cuda:N`` (the N-th GPU this process sees), else None."""
    kind, _, index = label.partition(":")
    return int(index) if kind == "cuda" and index.isdigit() else None


def _ray_engines(settings: Settings) -> Report:
    """Whether ray is installed (an optional extra), the cluster to join and what each engine asks of it."""
    report = Report()
    engine = settings.engine
    asks = ", ".join(f"{name} {amount:g}" for name, amount in engine.ray_resources.items())
    count = (
        "as many as the cluster has resources for"
        if engine.ray_engines == "auto"
        else f"{engine.ray_engines} engine{'s' if engine.ray_engines != 1 else ''}"
    )
    where = engine.ray_address
    if where == "auto":
        where += " (the cluster `ray start` runs on this machine)"
    report.lines.append(
        f"engines: Ray at {where}, namespace {engine.ray_namespace}: {count}, each asking {asks}; "
        "doctor does not contact the cluster (`ray status` shows it)"
    )
    if importlib.util.find_spec("ray") is None:
        report.lines.append("ray: missing")
        report.problems.append("engine.backend = \"ray\" needs ray: pip install 'imaginebot[ray]'")
        return report
    try:
        version = importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        version = "installed"
    report.lines.append(f"ray: {version}")
    return report


def run_doctor(settings: Settings, *, probe_engine: bool = True) -> tuple[int, str]:
    """The exit code (0 healthy, 1 problems) and the text to print."""
    lines = [f"imaginebot doctor: data_dir {settings.data_dir.resolve()}, model {settings.model}", *sources_text()]
    probed = probe_machine() if probe_engine else None
    reports = [check_engines(settings, probed[0] if probed else None), check_token(settings), check_registry(settings)]
    if probed is not None:
        reports.insert(0, check_engine(settings, probed))
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
