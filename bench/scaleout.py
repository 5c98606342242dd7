"""``python -m bench.scaleout [--skip-ray] [--oversubscribed] [--jobs 16] [--steps 8] [--repeats 3]``: one queue
served by one engine against two.

Each case is a service with its own database and engines. Every engine loads its model and renders a warm-up job
before any clock starts (start-up is not measured). A round queues :data:`JOBS` tiny-model jobs (64×64, four
images each) at once, each from a member of its own (a member's jobs run one at a time), and measures the wall
time from the first submit until every job has completed. The cases' rounds alternate, so a busy spell of the
machine weighs on each; the median round counts.

Cases, local engine processes (``engine.devices = ["cpu"] * n``): ``one`` (one engine, torch on every core, what
a one-engine bot runs), ``one_1_thread`` (one engine, one torch thread) and ``two`` (two engines, ``cores / 2``
threads each). With Ray (``engine.backend = "ray"`` on a local cluster this benchmark starts) the same three, as
engine actors. ``throughput_ratio`` = t(one) / t(two); ``ratio_vs_1_thread`` = t(one_1_thread) / t(two) (the
fairer baseline on a busy machine, where a two-thread engine waits for whichever thread the other processes
delay).

Threads: the engine has no thread setting of its own. A local engine is spawned with the bot's environment, so
the benchmark sets ``OMP_NUM_THREADS`` (torch's intra-op threads) around each case's start; a Ray actor asks for
that many ``CPU`` and Ray sets ``OMP_NUM_THREADS`` to the CPUs an actor holds (the cluster declares as many logical
CPUs as all the Ray cases hold at once; only one case renders at a time). ``--oversubscribed`` adds two local
engines on torch's default threads (every core each).

Per case the median round also shows what else used the CPU: the bot's process (its event loop, SQLite, recording
results; for Ray also writing the images it receives), each engine process, each Ray actor (the stream of
messages and image bytes), the whole machine while the round ran (``machine_busy``, 0 to 1) and just before it
(``background_busy``: other programs on the machine). Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import quiet, tiny_settings

JOBS = 16
STEPS = 8
"""Denoising steps per job: a 64×64 job of four images then takes about 0.7 s on an idle 2-core CPU."""
REPEATS = 3
PROMPT = "a red fox in the snow, picture {seed} --steps {steps} --seed {seed}"
TARGET = 1.6
RAY_NAMESPACE = "imaginebot-bench"
BACKGROUND_SAMPLE_S = 1.0


@dataclass
class Case:
    """One configuration: how many engines and the torch threads each gets (None: torch's default, every core)."""

    name: str
    engines: int
    threads: int | None
    service: Any = None
    sent: SentTo | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)


# --- CPU accounting ----------------------------------------------------------------------------------------


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    ticks = [float(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    total = sum(ticks)  # user … steal (guest time is already counted in user)
    return (total - idle) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The machine's busy share (0 to 1) between two :func:`machine_cpu_s` readings."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1e-9)


def own_cpu_s() -> float:
    """CPU seconds this process used so far, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int | None) -> float:
    """CPU seconds process ``pid`` used so far (0 when it cannot be read)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")


def omp_threads(pid: int | None) -> str:
    """``OMP_NUM_THREADS`` process ``pid`` started with ("default": unset, torch then takes every core)."""
    if pid is None:
        return "unknown"
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return "unknown"
    for entry in environ:
        if entry.startswith(b"OMP_NUM_THREADS="):
            return entry.split(b"=", 1)[1].decode()
    return "default"


def process_ids(engine_pid: int | str | None) -> tuple[int | None, int | None]:
    """(engine process, Ray actor process) of an engine's ``pid``: a local engine's is its process id; a Ray
    engine's reads ``… actor pid N, engine pid M`` (this benchmark's cluster runs on this machine)."""
    if isinstance(engine_pid, int) or engine_pid is None:
        return engine_pid, None
    actor = re.search(r"actor pid (\d+)", engine_pid)
    engine = re.search(r"engine pid (\d+)", engine_pid)
    return (int(engine.group(1)) if engine else None, int(actor.group(1)) if actor else None)


# --- one round ---------------------------------------------------------------------------------------------


class SentTo:
    """Counts the jobs each engine of a service is handed (every hand-over, retries included)."""

    def __init__(self, engines: Sequence[Any]) -> None:
        self.by_engine: Counter[int] = Counter()
        self.by_job: Counter[int] = Counter()
        for index, engine in enumerate(engines):
            self._watch(index, engine)

    def _watch(self, index: int, engine: Any) -> None:
        original = engine.send_batch

        async def counted(tasks: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
            for task in tasks:
                self.by_engine[index] += 1
                self.by_job[task.job_id] += 1
            return await original(tasks, *args, **kwargs)

        engine.send_batch = counted

    def reset(self) -> None:
        self.by_engine.clear()
        self.by_job.clear()


async def run_round(case: Case, jobs: int, steps: int, first_member: int) -> dict[str, Any]:
    """Queue ``jobs`` jobs at once in ``case``'s service, one per new member, and run them all; what it took.
    Raises RuntimeError unless every job completed, handed to an engine once."""
    from bot.actors import Actor
    from bot.jobs import Origin, Status

    service, sent = case.service, case.sent
    assert sent is not None
    members = [Actor(first_member + n, Origin(source="cli")) for n in range(jobs)]
    prepared = [
        (await service.prepare(member, PROMPT.format(seed=first_member + n, steps=steps)))[:1]
        for n, member in enumerate(members)
    ]
    pids = [process_ids(engine.pid) for engine in service.engines.engines]
    sent.reset()
    quiet_from = machine_cpu_s()
    await asyncio.sleep(BACKGROUND_SAMPLE_S)  # nothing of ours runs: what the machine's other programs use
    engines_cpu = [process_cpu_s(engine) for engine, _ in pids]
    actors_cpu = [process_cpu_s(actor) for _, actor in pids]
    bot_cpu = own_cpu_s()
    machine = machine_cpu_s()
    started = time.perf_counter()
    submitted = [(await service.submit(member, batch)).jobs[0] for member, batch in zip(members, prepared, strict=True)]
    await service.engines.run_until_idle()
    elapsed = time.perf_counter() - started
    machine_after = machine_cpu_s()
    for entry in submitted:
        job = await service.scheduler.get(entry.job.id)
        if job.status is not Status.COMPLETED:
            raise RuntimeError(f"{case.name}: job {job.id} ended {job.status.value}: {job.error}")
    handed_again = sorted(job for job, count in sent.by_job.items() if count != 1)
    if handed_again or len(sent.by_job) != jobs:
        raise RuntimeError(f"{case.name}: every job should reach an engine once; not so for {handed_again}")
    params = prepared[0][0].params
    return {
        "size": f"{params.width}x{params.height}",
        "images_per_job": params.images,
        "steps": params.steps,
        "seconds": elapsed,
        "per_engine": [sent.by_engine[index] for index in range(len(pids))],
        "bot_cpu_s": own_cpu_s() - bot_cpu,
        "engines_cpu_s": [process_cpu_s(engine) - cpu for (engine, _), cpu in zip(pids, engines_cpu, strict=True)],
        "actors_cpu_s": [process_cpu_s(actor) - cpu for (_, actor), cpu in zip(pids, actors_cpu, strict=True)],
        "machine_busy": busy_share(machine, machine_after),
        "background_busy": busy_share(quiet_from, machine),
        "torch_threads": [omp_threads(engine) for engine, _ in pids],
    }


def summary(case: Case, jobs: int, ray: bool) -> dict[str, Any]:
    """The case's median round and its measures."""
    median = sorted(case.rounds, key=lambda measured: measured["seconds"])[len(case.rounds) // 2]
    seconds = median["seconds"]
    result: dict[str, Any] = {
        "engines": case.engines,
        "jobs": jobs,
        "size": median["size"],
        "images_per_job": median["images_per_job"],
        "steps": median["steps"],
        "seconds": round(seconds, 3),
        "rounds_s": [round(measured["seconds"], 3) for measured in case.rounds],
        "rounds_background_busy": [round(measured["background_busy"], 3) for measured in case.rounds],
        "jobs_per_s": round(jobs / seconds, 3),
        "per_engine_jobs": median["per_engine"],
        "torch_threads": median["torch_threads"],
        "bot_cpu_share": round(median["bot_cpu_s"] / seconds, 3),
        "engine_cpu_share": [round(cpu / seconds, 3) for cpu in median["engines_cpu_s"]],
        "machine_busy": round(median["machine_busy"], 3),
        "background_busy": round(median["background_busy"], 3),
    }
    if ray:
        result["actor_cpu_share"] = [round(cpu / seconds, 3) for cpu in median["actors_cpu_s"]]
    return result


async def measure(cases: list[Case], jobs: int, steps: int, repeats: int, first_member: int) -> int:
    """Warm every case up, then ``repeats`` rounds of each, alternating; the next free member id."""
    member = first_member
    for case in cases:
        engines = case.service.engines.engines
        case.sent = SentTo(engines)
        await run_round(case, 2 * len(engines), steps, member)  # each engine renders once at this size
        member += 2 * len(engines)
    for _ in range(repeats):
        for case in cases:
            case.rounds.append(await run_round(case, jobs, steps, member))
            member += jobs
    return member


# --- the services ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def environment(name: str, value: str | None) -> Iterator[None]:
    """``os.environ[name]`` set (or unset) inside the block, as it was after."""
    before = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


async def open_case(stack: contextlib.AsyncExitStack, case: Case, settings: Any) -> None:
    """``case``'s service, closed with ``stack``, once every engine has loaded its model."""
    from bot.application.service import ImagineService

    case.service = await ImagineService.open(settings)
    stack.push_async_callback(case.service.close)
    threads = None if case.threads is None else str(case.threads)
    with environment("OMP_NUM_THREADS", threads):  # a local engine is spawned with the bot's environment
        await asyncio.gather(*(engine.wait_ready() for engine in case.service.engines.engines))


def local_cases(cores: int, oversubscribed: bool) -> list[Case]:
    cases = [Case("one", 1, cores), Case("one_1_thread", 1, 1), Case("two", 2, max(1, cores // 2))]
    if oversubscribed:
        cases.append(Case("two_default_threads", 2, None))
    return cases


def ray_cases(cores: int) -> list[Case]:
    return [Case("one", 1, cores), Case("one_1_thread", 1, 1), Case("two", 2, max(1, cores // 2))]


@contextlib.contextmanager
def local_ray_cluster(cpus: int) -> Iterator[str]:
    """A Ray cluster on this machine declaring ``cpus`` logical CPUs for the block; its address. Started without
    ``OMP_NUM_THREADS``, so Ray sets it per actor from the CPUs the actor holds."""
    import ray

    with environment("OMP_NUM_THREADS", None):
        context = ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            namespace=RAY_NAMESPACE,
            log_to_driver=False,
            logging_level="WARNING",
            object_store_memory=200 * 2**20,
        )
    try:
        yield context.address_info["address"]
    finally:
        ray.shutdown()


async def measure_local(cases: list[Case], jobs: int, steps: int, repeats: int) -> dict[str, dict[str, Any]]:
    """Each case with its local engine processes on this machine's CPU; each case's summary by name."""
    async with contextlib.AsyncExitStack() as stack:
        for case in cases:
            await open_case(stack, case, tiny_settings(engine={"devices": ["cpu"] * case.engines}))
        await measure(cases, jobs, steps, repeats, 1_000)
    return {case.name: summary(case, jobs, ray=False) for case in cases}


async def run_local(cores: int, jobs: int, steps: int, repeats: int, oversubscribed: bool) -> dict[str, Any]:
    return ratios(await measure_local(local_cases(cores, oversubscribed), jobs, steps, repeats))


async def run_ray(cores: int, jobs: int, steps: int, repeats: int) -> dict[str, Any]:
    cases = ray_cases(cores)
    with local_ray_cluster(sum(case.engines * (case.threads or cores) for case in cases)) as address:
        async with contextlib.AsyncExitStack() as stack:
            for case in cases:
                each = {"CPU": float(case.threads or cores)}
                engine = {
                    "backend": "ray",
                    "ray_address": address,
                    "ray_namespace": RAY_NAMESPACE,
                    "ray_resources": each,
                    "ray_engines": case.engines,
                }
                await open_case(stack, case, tiny_settings(engine=engine))
            await measure(cases, jobs, steps, repeats, 100_000)
    measured = {case.name: summary(case, jobs, ray=True) for case in cases}
    for case in cases:
        measured[case.name]["ray_resources"] = {"CPU": float(case.threads or cores)}
    return ratios(measured)


def ratios(measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The cases with ``throughput_ratio`` (one / two) and ``ratio_vs_1_thread`` (one_1_thread / two)."""
    two = measured["two"]["seconds"]
    result: dict[str, Any] = dict(measured)
    result["throughput_ratio"] = round(measured["one"]["seconds"] / two, 3)
    result["ratio_vs_1_thread"] = round(measured["one_1_thread"]["seconds"] / two, 3)
    if "two_default_threads" in measured:
        result["oversubscribed_ratio"] = round(
            measured["one"]["seconds"] / measured["two_default_threads"]["seconds"], 3
        )
    return result


async def main(
    jobs: int = JOBS,
    steps: int = STEPS,
    repeats: int = REPEATS,
    *,
    skip_ray: bool = False,
    oversubscribed: bool = False,
) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    local = await run_local(cores, jobs, steps, repeats, oversubscribed)
    result: dict[str, Any] = {"benchmark": "scaleout", "cores": cores, "target": f">= {TARGET}", "local": local}
    result["ray"] = None if skip_ray else await run_ray(cores, jobs, steps, repeats)
    result["throughput_ratio"] = local["throughput_ratio"]
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=JOBS, help="jobs queued at once per round")
    parser.add_argument("--steps", type=int, default=STEPS, help="denoising steps per job")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="measured rounds per case (the median counts)")
    parser.add_argument("--skip-ray", action="store_true", help="only the local engine processes")
    parser.add_argument("--oversubscribed", action="store_true", help="also two local engines on every core each")
    return parser.parse_args(argv)


if __name__ == "__main__":
    quiet()
    arguments = parse_args()
    print(
        json.dumps(
            asyncio.run(
                main(
                    arguments.jobs,
                    arguments.steps,
                    arguments.repeats,
                    skip_ray=arguments.skip_ray,
                    oversubscribed=arguments.oversubscribed,
                )
            )
        )
    )
