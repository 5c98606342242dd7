"""``python -m bench.scaleout [--skip-ray] [--oversubscribed] [--jobs 16] [--steps 8] [--repeats 3]``: one queue
served by one engine against two.

Each case is a service with its own database and engines. Every engine loads its model and renders a warm-up job
before any clock starts (start-up is not measured). A round queues :data:`JOBS` tiny-model jobs (64×64, four
images each) at once, each from a member of its own (a member's jobs run one at a time), and measures the wall
time from the first submit until every job has completed. The cases' rounds alternate, so a busy spell of the
machine weighs on each; the median round counts (``*_best``: the fastest round).

An engine here stands for a GPU: each gets the same share of the CPU, half its cores as torch threads (one on a
2-core CPU). Cases, as local engine processes (``engine.devices = ["cpu"] * n``) and, unless ``--skip-ray``, as
Ray engine actors (``engine.backend = "ray"``) on a local Ray cluster this benchmark starts:

- ``one``: one engine; ``two``: two engines. ``throughput_ratio`` = t(one) / t(two) (2.0: perfect scale-out).
- ``one_all_cores``: one engine with every core as torch threads, what a one-engine bot on this CPU runs by
  default; ``ratio_vs_all_cores`` = t(one_all_cores) / t(two): what a CPU-only owner gains from a second engine.
- ``two_all_cores`` (``--oversubscribed``, local only): two engines with every core each, torch's default.

Threads: the engine has no thread setting of its own. A local engine is spawned with the bot's environment, so
the benchmark sets ``OMP_NUM_THREADS`` (torch's intra-op threads) around each case's start; a Ray actor asks for
that many ``CPU`` and Ray sets ``OMP_NUM_THREADS`` to the CPUs an actor holds (the cluster declares as many logical
CPUs as all its cases hold at once; only one case renders at a time).

CPU, in cores used over the median round (``cpu_cores``): ``bot`` (this process: the event loop, SQLite,
recording results, for Ray also its driver threads and writing the images it receives), ``engines``, ``actors``
(Ray: the stream of messages and image bytes), ``helpers`` (the rest of this process's descendants: Ray's GCS,
raylet and idle workers), ``others`` (every other program on the machine: the machine is shared).
``engine_cpu_s_per_job`` is the rendering's own cost, whatever else runs. Prints one JSON object as its last line.
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
"""Denoising steps per job: a 64×64 job of four images then takes about 0.7 s on an idle 2-core CPU (two torch
threads), 1.2 s on one core."""
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
    rounds: list[Round] = field(default_factory=list)


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


def process_cpu_s(pid: int) -> float:
    """CPU seconds process ``pid`` used so far (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, …)."""
    found: list[int] = []
    waiting = [pid]
    while waiting:
        parent = waiting.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            waiting += children
    return found


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


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds so far: the machine (busy, total), this process, and each of its descendants."""

    machine: tuple[float, float]
    bot: float
    processes: dict[int, float]

    @classmethod
    def now(cls) -> CpuReading:
        processes = {pid: process_cpu_s(pid) for pid in descendants(os.getpid())}
        return cls(machine_cpu_s(), own_cpu_s(), processes)

    def used(self, later: CpuReading, pid: int | None) -> float:
        """CPU seconds ``pid`` used from this reading to ``later`` (one started meanwhile: all it used)."""
        if pid is None:
            return 0.0
        return later.processes.get(pid, 0.0) - self.processes.get(pid, 0.0)


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


@dataclass(frozen=True)
class Round:
    """What one round of jobs took."""

    seconds: float
    size: str
    images_per_job: int
    steps: int
    per_engine: list[int]
    torch_threads: list[str]
    bot_cpu_s: float
    engines_cpu_s: list[float]
    actors_cpu_s: list[float]
    helpers_cpu_s: float
    machine_busy: float
    """Share of the whole machine busy while the round ran, 0 to 1."""
    background_busy: float
    """Share of the machine busy in the second before the round (none of our processes working)."""

    def others_cores(self, cores: int) -> float:
        """Cores that programs not of this benchmark used while the round ran."""
        ours = self.bot_cpu_s + sum(self.engines_cpu_s) + sum(self.actors_cpu_s) + self.helpers_cpu_s
        return max(0.0, self.machine_busy * cores - ours / self.seconds)


async def run_round(case: Case, jobs: int, steps: int, first_member: int) -> Round:
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
    await asyncio.sleep(BACKGROUND_SAMPLE_S)  # nothing of ours works: what the machine's other programs use
    before = CpuReading.now()
    started = time.perf_counter()
    submitted = [(await service.submit(member, batch)).jobs[0] for member, batch in zip(members, prepared, strict=True)]
    await service.engines.run_until_idle()
    elapsed = time.perf_counter() - started
    after = CpuReading.now()
    for entry in submitted:
        job = await service.scheduler.get(entry.job.id)
        if job.status is not Status.COMPLETED:
            raise RuntimeError(f"{case.name}: job {job.id} ended {job.status.value}: {job.error}")
    handed_again = sorted(job for job, count in sent.by_job.items() if count != 1)
    if handed_again or len(sent.by_job) != jobs:
        raise RuntimeError(f"{case.name}: every job should reach an engine once; not so for {handed_again}")
    ours = {pid for pair in pids for pid in pair}
    params = prepared[0][0].params
    return Round(
        seconds=elapsed,
        size=f"{params.width}x{params.height}",
        images_per_job=params.images,
        steps=params.steps,
        per_engine=[sent.by_engine[index] for index in range(len(pids))],
        torch_threads=[omp_threads(engine) for engine, _ in pids],
        bot_cpu_s=after.bot - before.bot,
        engines_cpu_s=[before.used(after, engine) for engine, _ in pids],
        actors_cpu_s=[before.used(after, actor) for _, actor in pids],
        helpers_cpu_s=sum(before.used(after, pid) for pid in after.processes if pid not in ours),
        machine_busy=busy_share(before.machine, after.machine),
        background_busy=busy_share(quiet_from, before.machine),
    )


def median_round(rounds: list[Round]) -> Round:
    return sorted(rounds, key=lambda measured: measured.seconds)[len(rounds) // 2]


def summary(case: Case, jobs: int, cores: int, ray: bool) -> dict[str, Any]:
    """The case's median round and its measures."""
    median = median_round(case.rounds)
    seconds = median.seconds

    def cores_used(cpu_s: float) -> float:
        return round(cpu_s / seconds, 3)

    cpu: dict[str, Any] = {
        "bot": cores_used(median.bot_cpu_s),
        "engines": [cores_used(used) for used in median.engines_cpu_s],
    }
    if ray:
        cpu["actors"] = [cores_used(used) for used in median.actors_cpu_s]
    cpu["helpers"] = cores_used(median.helpers_cpu_s)
    cpu["others"] = round(median.others_cores(cores), 3)
    return {
        "engines": case.engines,
        "torch_threads": median.torch_threads,
        "jobs": jobs,
        "size": median.size,
        "images_per_job": median.images_per_job,
        "steps": median.steps,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(jobs / seconds, 3),
        "per_engine_jobs": median.per_engine,
        "engine_cpu_s_per_job": round(sum(median.engines_cpu_s) / jobs, 3),
        "cpu_cores": cpu,
        "machine_busy": round(median.machine_busy, 3),
        "rounds_s": [round(measured.seconds, 3) for measured in case.rounds],
        "rounds_others_cores": [round(measured.others_cores(cores), 3) for measured in case.rounds],
    }


def ratios(cases: Sequence[Case]) -> dict[str, float]:
    """``throughput_ratio`` (one / two; ``_best``: fastest rounds), ``ratio_vs_all_cores`` (one_all_cores / two) and,
    when it ran, ``oversubscribed_ratio`` (one_all_cores / two_all_cores)."""
    median = {case.name: median_round(case.rounds).seconds for case in cases}
    best = {case.name: min(measured.seconds for measured in case.rounds) for case in cases}
    result = {
        "throughput_ratio": round(median["one"] / median["two"], 3),
        "throughput_ratio_best": round(best["one"] / best["two"], 3),
        "ratio_vs_all_cores": round(median["one_all_cores"] / median["two"], 3),
    }
    if "two_all_cores" in median:
        result["oversubscribed_ratio"] = round(median["one_all_cores"] / median["two_all_cores"], 3)
    return result


async def measure(cases: list[Case], jobs: int, steps: int, repeats: int, first_member: int) -> None:
    """Warm every case up, then ``repeats`` rounds of each, alternating."""
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


def standard_cases(cores: int, *, oversubscribed: bool = False) -> list[Case]:
    """``one``, ``two`` (half the cores each), ``one_all_cores`` and, with ``oversubscribed``, ``two_all_cores``."""
    half = max(1, cores // 2)
    cases = [Case("one", 1, half), Case("two", 2, half), Case("one_all_cores", 1, cores)]
    if oversubscribed:
        cases.append(Case("two_all_cores", 2, None))
    return cases


async def measure_local(cases: list[Case], jobs: int, steps: int, repeats: int) -> dict[str, dict[str, Any]]:
    """Each case with its local engine processes on this machine's CPU; each case's summary by name."""
    cores = os.cpu_count() or 1
    async with contextlib.AsyncExitStack() as stack:
        for case in cases:
            await open_case(stack, case, tiny_settings(engine={"devices": ["cpu"] * case.engines}))
        await measure(cases, jobs, steps, repeats, 1_000)
    return {case.name: summary(case, jobs, cores, ray=False) for case in cases}


def ray_resources(case: Case, cores: int) -> dict[str, float]:
    return {"CPU": float(case.threads or cores)}


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


async def measure_ray(cases: list[Case], jobs: int, steps: int, repeats: int) -> dict[str, dict[str, Any]]:
    """Each case with its Ray engine actors on a local cluster; each case's summary by name."""
    cores = os.cpu_count() or 1
    declared = sum(case.engines * int(ray_resources(case, cores)["CPU"]) for case in cases)
    with local_ray_cluster(declared) as address:
        async with contextlib.AsyncExitStack() as stack:
            for case in cases:
                engine = {
                    "backend": "ray",
                    "ray_address": address,
                    "ray_namespace": RAY_NAMESPACE,
                    "ray_resources": ray_resources(case, cores),
                    "ray_engines": case.engines,
                }
                await open_case(stack, case, tiny_settings(engine=engine))
            await measure(cases, jobs, steps, repeats, 100_000)
    return {
        case.name: {**summary(case, jobs, cores, ray=True), "ray_resources": ray_resources(case, cores)}
        for case in cases
    }


async def main(
    jobs: int = JOBS,
    steps: int = STEPS,
    repeats: int = REPEATS,
    *,
    skip_ray: bool = False,
    oversubscribed: bool = False,
) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {"benchmark": "scaleout", "cores": cores, "target": f">= {TARGET}"}
    cases = standard_cases(cores, oversubscribed=oversubscribed)
    result["local"] = {**await measure_local(cases, jobs, steps, repeats), **ratios(cases)}
    if skip_ray:
        result["ray"] = None
    else:
        cases = standard_cases(cores)
        result["ray"] = {**await measure_ray(cases, jobs, steps, repeats), **ratios(cases)}
    result["throughput_ratio"] = result["local"]["throughput_ratio"]
    result["ray_throughput_ratio"] = None if skip_ray else result["ray"]["throughput_ratio"]
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
    outcome = asyncio.run(
        main(
            arguments.jobs,
            arguments.steps,
            arguments.repeats,
            skip_ray=arguments.skip_ray,
            oversubscribed=arguments.oversubscribed,
        )
    )
    print(json.dumps(outcome))
