"""``python -m bench.gpu``: the GPU truth. The full job path against the bare diffusers call on a CUDA GPU.

Full-size random-weight SD1.5, SDXL and SD-Turbo-architecture models (:mod:`bench.gpu_models`: built in code,
nothing downloaded, saved as diffusers folders and loaded through the registry like an owner's model). Prompt
``a red fox in the snow``, 4 images per job, Euler a, CFG 7, 20 steps (the turbo model: 1 step, CFG 0). Each case:

- ``bare_eager_s``: plain diffusers (``from_pretrained`` in the engine's dtype, nothing else) in this process;
- ``bare_s``: the same call on the model as the engine loads it (its speed settings), in this process;
- ``full_s``: an /imagine through the whole path (SQLite, worker, engine process, files written, job recorded);
- queues of jobs submitted at once, full path against as many bare calls (``throughput_ratio``);
- previews (every 5 steps) against none on the bare call; compile: start-up with the warm-up, first job, steady;
  ``4bit``/``8bit`` (when bitsandbytes is installed); peak GPU memory of the bare calls.

Latencies are medians after one warm-up. Without CUDA it prints a JSON line saying why it skipped; ``--rehearse``
runs the same steps on the CPU with the tiny models (a check of the script, not a measurement). ``--budget S`` skips
cases that would start after S seconds. Each case prints a JSON line as it ends (and appends it to
``$GPU_BENCH_OUT`` when set); the last line is one JSON object with all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bare import bare_call, bare_pipeline, bare_runs, preview_hook, with_sampler
from bench.common import quiet
from bench.gpu_controlnet import case_controlnet
from bench.gpu_ip_adapter import case_ip_adapter
from bench.gpu_models import build_model

PROMPT = "a red fox in the snow --seed {seed}"
STEPS = 20
RUNS = 3
QUEUE = 8


class Bench:
    """One run: where models live, what the machine is, the results so far."""

    def __init__(self, rehearse: bool, budget_s: float) -> None:
        self.rehearse = rehearse
        self.started = time.perf_counter()
        self.budget_s = budget_s
        self.root = Path(tempfile.mkdtemp(prefix="imagine-gpu-"))
        self.results: dict[str, Any] = {}

    def over_budget(self, name: str) -> bool:
        elapsed = time.perf_counter() - self.started
        if elapsed > self.budget_s:
            self.results[name] = {"skipped": f"over the time budget ({elapsed:.0f} s > {self.budget_s:g} s)"}
            return True
        return False

    def record(self, name: str, values: dict[str, Any]) -> None:
        values["elapsed_s"] = round(time.perf_counter() - self.started, 1)
        self.results[name] = values
        line = json.dumps({"case": name, **values})
        print(line, flush=True)
        out = os.environ.get("GPU_BENCH_OUT")
        if out:
            with open(out, "a") as file:
                file.write(line + "\n")

    def settings(self, kind: str, folder: Path, **overrides: Any) -> Any:
        from config.settings import Settings

        if kind == "turbo":
            from config.model_registry import turbo_model

            spec: dict[str, Any] = turbo_model(str(folder), "sd2").model_dump()
            spec["base_size"] = 64 if self.rehearse else 512
        else:
            spec = {
                "source": str(folder),
                "family": kind,
                "base_size": 64 if self.rehearse else (1024 if kind == "sdxl" else 512),
                "steps": 4 if self.rehearse else STEPS,
                "cfg": 7.0,
            }
        values: dict[str, Any] = {
            "model": "big",
            "models": {"big": spec},
            "data_dir": Path(tempfile.mkdtemp(prefix="data-", dir=self.root)),
            "log_level": "WARNING",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def peak_gib() -> float:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else 0.0


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


class Service:
    """The application core with its own engine process, as ``python -m bot`` runs it."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.service: Any = None
        self.start_s = 0.0

    async def __aenter__(self) -> Service:
        from bot.application.service import ImagineService

        started = time.perf_counter()
        self.service = await ImagineService.open(self.settings)
        try:
            ready = await self.service.engine.wait_ready()
        except BaseException:
            await self.service.close()
            raise
        self.start_s = time.perf_counter() - started
        self.speed = list(getattr(ready, "speed", ()))
        self.dtype = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(ready.dtype, ready.dtype)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.service.close()

    async def params(self, seed: int = 7) -> Any:
        from bot.actors import Actor

        [prepared] = await self.service.prepare(Actor.console(), PROMPT.format(seed=seed))
        return prepared.params

    async def jobs(self, count: int, first_seed: int = 1) -> float:
        """Seconds from submitting ``count`` jobs at once until every one is recorded as completed."""
        from bot.actors import Actor
        from bot.jobs import Status

        console = Actor.console()
        prepared = [(await self.service.prepare(console, PROMPT.format(seed=first_seed + i)))[0] for i in range(count)]
        started = time.perf_counter()
        submitted = (await self.service.submit(console, prepared)).jobs
        await self.service.worker.run_until_idle()
        elapsed = time.perf_counter() - started
        for job in submitted:
            done = await self.service.scheduler.get(job.job.id)
            assert done.status is Status.COMPLETED, done.error
        return elapsed

    async def latencies(self, runs: int) -> list[float]:
        await self.jobs(1, 1000)
        return [await self.jobs(1, 2000 + run) for run in range(runs)]


def engine_pipeline(settings: Any) -> Any:
    """The model as the engine loads it (speed settings included), in this process."""
    from bot.running.engine_config import engine_config
    from engine.pipelines import ModelCache

    return ModelCache(engine_config(settings)).get()


async def case_family(bench: Bench, kind: str, queue: int, runs: int) -> None:
    """Bare eager, bare as loaded, previews, full path latency and a queue, for one model kind."""
    import gc

    folder = build_model(kind, bench.root / "models", tiny=bench.rehearse)
    settings = bench.settings(kind, folder)
    async with Service(settings) as service:
        params = await service.params()
        full = await service.latencies(runs)
        full_queue = await service.jobs(queue, 100)
        start_s, speed, dtype = service.start_s, service.speed, service.dtype
    model = engine_pipeline(settings)
    pipe = with_sampler(model.pipeline, params.sampler)
    reset_peak()
    bare = bare_runs(pipe, params, runs)
    peak = peak_gib()
    hook, encoder = preview_hook(model.family)
    with_previews = bare_runs(pipe, params, runs, hook)
    encoder.close()
    bare_queue = sum(bare_call(pipe, params) for _ in range(queue))
    del model, pipe
    gc.collect()
    eager = bare_pipeline(folder, params.sampler, dtype)
    bare_eager = bare_runs(eager, params, runs)
    del eager
    gc.collect()
    _empty_cache()
    bench.record(
        kind,
        {
            "size": f"{params.width}x{params.height}",
            "steps": params.steps,
            "images": params.images,
            "engine_speed": speed,
            "engine_start_s": round(start_s, 2),
            "bare_eager_s": median(bare_eager),
            "bare_s": median(bare),
            "bare_previews_s": median(with_previews),
            "preview_cost": round(median(with_previews) / median(bare) - 1, 4),
            "full_s": median(full),
            "full_over_bare": round(median(full) / median(bare), 3),
            "full_over_bare_eager": round(median(full) / median(bare_eager), 3),
            "queue_jobs": queue,
            "queue_full_s": round(full_queue, 3),
            "queue_bare_s": round(bare_queue, 3),
            "throughput_ratio": round(bare_queue / full_queue, 3),
            "peak_gib": peak,
        },
    )


async def case_compile(bench: Bench, runs: int) -> None:
    """memory.compile: start-up with the warm-up, the first job, steady state; then a restart on the cache."""
    folder = build_model("sd15", bench.root / "models", tiny=bench.rehearse)
    settings = bench.settings("sd15", folder, memory={"compile": True})
    async with Service(settings) as service:
        first = await service.jobs(1, 1)
        steady = [await service.jobs(1, 10 + run) for run in range(runs)]
        start_s, speed = service.start_s, service.speed
    async with Service(settings) as again:  # the same data folder: inductor's cache is reused
        restart_s = again.start_s
    bench.record(
        "sd15_compile",
        {
            "engine_speed": speed,
            "engine_start_s": round(start_s, 2),
            "first_job_s": round(first, 3),
            "full_s": median(steady),
            "restart_start_s": round(restart_s, 2),
        },
    )


async def case_quantized(bench: Bench, runs: int) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        bench.results["sd15_quantized"] = {"skipped": "bitsandbytes is not installed"}
        return
    folder = build_model("sd15", bench.root / "models", tiny=bench.rehearse)
    values: dict[str, Any] = {}
    for mode in ("4bit", "8bit"):
        async with Service(bench.settings("sd15", folder, memory={"quantize": mode})) as service:
            values[f"full_{mode}_s"] = median(await service.latencies(runs))
            values[f"start_{mode}_s"] = round(service.start_s, 2)
    bench.record("sd15_quantized", values)


async def case_previews_off(bench: Bench, runs: int) -> None:
    folder = build_model("sd15", bench.root / "models", tiny=bench.rehearse)
    async with Service(bench.settings("sd15", folder, preview_every=0)) as service:
        bench.record("sd15_previews_off", {"full_s": median(await service.latencies(runs))})


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


async def main(rehearse: bool, budget_s: float, only: list[str]) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available() and not rehearse:
        return {"benchmark": "gpu", "skipped": True, "reason": "no CUDA device on this machine"}
    bench = Bench(rehearse, budget_s)
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("sd15", lambda: case_family(bench, "sd15", QUEUE, RUNS)),
        ("turbo", lambda: case_family(bench, "turbo", QUEUE, 5)),
        ("sd15_compile", lambda: case_compile(bench, RUNS)),
        ("sdxl", lambda: case_family(bench, "sdxl", 2, 2)),
        ("sd15_previews_off", lambda: case_previews_off(bench, RUNS)),
        ("sd15_quantized", lambda: case_quantized(bench, RUNS)),
        ("controlnet", lambda: case_controlnet(bench, RUNS)),
        ("ip_adapter", lambda: case_ip_adapter(bench, RUNS)),
    ]
    for name, run in cases:
        if only and name not in only:
            continue
        if bench.over_budget(name):
            continue
        try:
            await run()
        except Exception as error:  # one broken case must not cost the others' figures
            bench.results[name] = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps({"case": name, "error": bench.results[name]["error"]}), flush=True)
    return {
        "benchmark": "gpu",
        "skipped": False,
        "rehearsal": rehearse,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "results": bench.results,
        "seconds": round(time.perf_counter() - bench.started, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rehearse", action="store_true", help="run every step on the CPU with the tiny models")
    parser.add_argument("--budget", type=float, default=float("inf"), help="start no case after this many seconds")
    parser.add_argument("--only", nargs="*", default=[], help="cases to run (default: all)")
    arguments = parser.parse_args()
    quiet()
    print(json.dumps(asyncio.run(main(arguments.rehearse, arguments.budget, arguments.only))))
