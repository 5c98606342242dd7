"""Engines on Ray hosts: a local Ray cluster of its own (a head and a second node, each offering one engine slot)
runs the real engine in actors that share no folder with the bot; renders come back as files under the bot's
images folder, a killed actor fails its jobs as a crash, and a node that joins makes room for one more engine.
Through the service: jobs spread over two Ray engines, a killed actor's job finishes on the other, and a node that
joins gets an engine that takes the work still waiting."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import ray
from PIL import Image
from ray.cluster_utils import Cluster

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.errors import EngineCrashedError
from bot.events import EventKind, JobEvent
from bot.jobs import Origin, Status
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from bot.running.ray_engine import RayEngineRun, actor_options, local_done
from bot.running.ray_engines import RayEngines, engines_for
from engine.protocol import Progress, RenderTask, TaskDone, TaskKind
from tests.bot.running.pool_support import SentTo, serving, until_ended
from tests.conftest import ENGINE_TIMEOUT_S, make_settings, submit_prompt

pytestmark = pytest.mark.slow

SLOT = "imaginebot_engine"
"""The custom resource each test node offers once: one engine per node."""
NODE = {"num_cpus": 1, "resources": {SLOT: 1}, "object_store_memory": 100 * 2**20}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A Ray cluster on this machine for the module: a head and one more node, one engine slot each."""
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    cluster.add_node(**NODE)
    ray.init(address=cluster.address, namespace="imaginebot-tests", log_to_driver=False)
    cluster.wait_for_nodes()
    print(f"Ray cluster of two nodes started in {time.perf_counter() - started:.1f} s")
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def bot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bot's data folder: no engine sees it."""
    return tmp_path_factory.mktemp("bot")


@pytest.fixture(scope="module")
def engines(cluster: Cluster, bot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """Two engines on the cluster, each with a data folder of its own; yields those folders (for
    :func:`_supervisor`, which starts them once, in the module's first test that needs them)."""
    folders = [tmp_path_factory.mktemp(f"host{index}") for index in range(2)]
    yield folders
    for supervisor in _SUPERVISORS.values():
        supervisor.stop()
    _SUPERVISORS.clear()


_SUPERVISORS: dict[int, EngineSupervisor] = {}


def _supervisor(index: int, folders: list[Path], bot_dir: Path) -> EngineSupervisor:
    if index not in _SUPERVISORS:
        for other, folder in enumerate(folders):  # both start together: their imports overlap
            if other not in _SUPERVISORS:
                start_run = functools.partial(RayEngineRun, resources={SLOT: 1}, data_dir=str(folder))
                config = engine_config(make_settings(bot_dir))
                _SUPERVISORS[other] = EngineSupervisor(config, start_timeout_s=ENGINE_TIMEOUT_S, start_run=start_run)
                _SUPERVISORS[other].spawn()
    return _SUPERVISORS[index]


def _task(job_id: int, bot_dir: Path, *, steps: int = 2, **fields: object) -> RenderTask:
    output = bot_dir / "images" / str(job_id)
    return RenderTask(job_id, "a fox", "", 64, 64, steps, 5.0, (job_id, job_id + 1), "euler", str(output), **fields)


def _job_files(folder: Path) -> list[Path]:
    """Image files left under an engine host's scratch folders."""
    return [path for path in (folder / "ray-scratch").rglob("*") if path.suffix in (".png", ".jpg")]


async def _until(condition: Callable[[], bool], what: str, limit_s: float = 60.0, *, every_s: float = 0.2) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(every_s)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"GPU": 1.0}, {"num_cpus": 0, "num_gpus": 1.0}),
        ({"CPU": 1.0}, {"num_cpus": 1.0}),
        ({"GPU": 0.5, SLOT: 1.0}, {"num_cpus": 0, "num_gpus": 0.5, "resources": {SLOT: 1.0}}),
    ],
)
def test_actor_options(resources: dict[str, float], expected: dict[str, object]) -> None:
    """CPU and GPU become Ray's own options (no CPU unless asked), anything else a custom resource."""
    assert actor_options(resources) == {**expected, "max_concurrency": 4}


@pytest.mark.parametrize(
    ("available", "each", "engines"),
    [
        ({"GPU": 4.0, "CPU": 32.0}, {"GPU": 1.0}, 4),
        ({"GPU": 3.0}, {"GPU": 2.0}, 1),
        ({"GPU": 4.0, "CPU": 2.0}, {"GPU": 1.0, "CPU": 1.0}, 2),
        ({"CPU": 8.0}, {"GPU": 1.0}, 0),
        ({"GPU": 0.3 * 10}, {"GPU": 0.3}, 10),
    ],
)
def test_engines_for(available: dict[str, float], each: dict[str, float], engines: int) -> None:
    """Whole engines only, limited by the scarcest resource."""
    assert engines_for(available, each) == engines


@pytest.mark.parametrize(
    ("remote_path", "local_name"),
    [("/scratch/1-7/output/0.png", "0.png"), ("../../outside/0.png", "0.png"), ("C:/x/0.png", "0.png")],
)
def test_a_remote_result_is_written_inside_its_folder(tmp_path: Path, remote_path: str, local_name: str) -> None:
    """A result's files land in the task's own folder under their file names, whatever folder the host named; a
    file beside them (a sweep's compact copy) too; the result handed on carries paths, no bytes."""
    remote = TaskDone(7, (remote_path,), (1,), 64, 64, 0.1, (b"png",), "/scratch/grid.jpg", b"jpg")
    done = local_done(remote, tmp_path / "7", (("sweep.jpg", b"compact"),))
    assert done.paths == (str(tmp_path / "7" / local_name),)
    assert done.grid_path == str(tmp_path / "7" / "grid.jpg")
    assert (done.png_bytes, done.grid_bytes) == (None, None)
    assert sorted(path.name for path in (tmp_path / "7").iterdir()) == sorted([local_name, "grid.jpg", "sweep.jpg"])
    assert (tmp_path / "7" / "sweep.jpg").read_bytes() == b"compact"


@pytest.mark.parametrize(
    "remote",
    [
        TaskDone(7, ("/scratch/0.png",), (1,), 64, 64, 0.1, None, "/scratch/grid.jpg", b"jpg"),
        TaskDone(7, ("/scratch/..",), (1,), 64, 64, 0.1, (b"png",), "/scratch/grid.jpg", b"jpg"),
        TaskDone(7, ("/scratch/0.png",), (1,), 64, 64, 0.1, (b"png",), "/scratch/grid.jpg", None),
    ],
)
def test_a_remote_result_without_its_bytes_or_with_a_bad_name_is_refused(tmp_path: Path, remote: TaskDone) -> None:
    """No bytes, or a file name no folder can hold: ValueError (the job fails) rather than a result naming
    missing files."""
    with pytest.raises(ValueError, match="the engine"):
        local_done(remote, tmp_path / "7", ())


async def test_two_hosts_render_txt2img_and_img2img_into_the_bots_folder(engines: list[Path], bot_dir: Path) -> None:
    """Each engine renders a txt2img and an img2img (its source image travels as bytes); the files land under the
    bot's images folder as valid PNGs and a grid, and the hosts keep no copy."""
    source = bot_dir / "uploads" / "source.png"
    source.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (200, 40, 40)).save(source)
    supervisors = [_supervisor(index, engines, bot_dir) for index in range(2)]
    ready = await asyncio.gather(*(supervisor.wait_ready() for supervisor in supervisors))
    assert all(message.model_name == "tiny" for message in ready)
    assert len({str(supervisor.pid) for supervisor in supervisors}) == 2
    batches = [
        [
            _task(100 + 10 * index, bot_dir),
            _task(101 + 10 * index, bot_dir, kind=TaskKind.IMG2IMG, init_image=str(source), strength=0.5),
        ]
        for index in range(2)
    ]
    results = await asyncio.gather(
        *(supervisor.render_batch(batch) for supervisor, batch in zip(supervisors, batches, strict=True))
    )
    for batch, replies in zip(batches, results, strict=True):
        for task, done in zip(batch, replies, strict=True):
            assert isinstance(done, TaskDone), done
            assert done.png_bytes is None and done.grid_bytes is None
            assert [Path(path) for path in done.paths] == [Path(task.output_dir) / f"{n}.png" for n in range(2)]
            assert Path(done.grid_path) == Path(task.output_dir) / "grid.jpg"
            for path in (*done.paths, done.grid_path):
                with Image.open(path) as image:
                    image.verify()
            with Image.open(done.paths[0]) as image:
                assert image.size == (64, 64)
                assert ("Denoising strength" in image.info["parameters"]) == (task.kind is TaskKind.IMG2IMG)
    assert all(_job_files(folder) == [] for folder in engines)
    assert not list(bot_dir.glob("ray-scratch"))


async def test_killed_actor_fails_its_jobs_as_a_crash_and_a_new_one_takes_over(
    engines: list[Path], bot_dir: Path
) -> None:
    """The actor dies at the job's first step (``ray.kill``, as a host that vanishes): the job fails with
    EngineCrashedError, and the next job starts a fresh actor that renders it (and removes the dead one's scratch
    folder)."""
    supervisor = _supervisor(1, engines, bot_dir)
    await supervisor.wait_ready()
    run = supervisor._run
    assert isinstance(run, RayEngineRun)
    scratches = engines[1] / "ray-scratch"
    (killed_scratch,) = scratches.iterdir()

    def kill_at_first_step(progress: Progress) -> None:
        ray.kill(run.actor)

    with pytest.raises(EngineCrashedError):
        await supervisor.render_batch([_task(200, bot_dir, steps=30)], on_progress=kill_at_first_step)
    assert not supervisor.alive
    assert supervisor.crashes_in_a_row == 1
    (done,) = await supervisor.render_batch([_task(201, bot_dir)])
    assert isinstance(done, TaskDone)
    assert supervisor._run is not run
    assert Path(done.paths[0]).is_file()
    assert not killed_scratch.exists()  # the new actor removed it
    assert len(list(scratches.iterdir())) == 1


async def test_a_node_that_joins_makes_room_for_one_more_engine(cluster: Cluster, bot_dir: Path) -> None:
    """``wanted()`` counts the engine slots of the cluster: one more when a node joins, one less when it leaves."""
    settings = make_settings(
        bot_dir, engine={"backend": "ray", "ray_address": cluster.address, "ray_resources": {SLOT: 1}}
    )
    provider = RayEngines(settings)
    try:
        before = provider.wanted()
        assert before == 2
        node = cluster.add_node(**NODE)
        await _until(lambda: provider.wanted() == before + 1, "the new node's slot")
        cluster.remove_node(node)
        await _until(lambda: provider.wanted() == before, "the removed node's slot to go")
        fixed = RayEngines(make_settings(bot_dir, engine={"backend": "ray", "ray_engines": 3}))
        assert fixed.wanted() == 3
    finally:
        provider.close()
    assert ray.is_initialized()  # the module joined the cluster itself: the provider leaves it joined


# --- the service: jobs from one queue on Ray engines ---------------------------------------------------------

MEMBERS = [Actor(4343 + n, Origin(source="cli")) for n in range(4)]
"""Members with a job each (a member's jobs run one at a time)."""
POOL_SLOT = "imaginebot_pool"
"""The engine slot of the nodes the pool's own provider counts (the module's first engines hold the others)."""


@pytest.fixture
async def shared(
    engines: list[Path], bot_dir: Path, tmp_path: Path
) -> AsyncIterator[tuple[ImagineService, SentTo, list[JobEvent]]]:
    """A service whose pool runs on the module's two Ray engines (a data folder of its own: the hosts see none)."""
    supervisors = [_supervisor(index, engines, bot_dir) for index in range(2)]
    await asyncio.gather(*(supervisor.wait_ready() for supervisor in supervisors))
    settings = make_settings(tmp_path / "data", database_path=tmp_path / "imagine.db")
    async with serving(settings, supervisors) as served:
        yield served


async def _first_progress(events: list[JobEvent], job_id: int) -> None:
    def started() -> bool:
        return any(event.job.id == job_id and event.kind is EventKind.PROGRESS for event in events)

    await _until(started, f"job {job_id}'s first step", ENGINE_TIMEOUT_S, every_s=0.01)


async def _completed_with_images(service: ImagineService, job_id: int) -> None:
    job = await service.scheduler.get(job_id)
    assert job.status is Status.COMPLETED, job.error
    images = await service.scheduler.images(job_id)
    assert len(images) == 4
    for image in images:
        assert Path(image.path).is_relative_to(service.settings.images_dir)
        with Image.open(image.path) as opened:
            opened.verify()


async def test_jobs_spread_over_two_ray_engines(shared: tuple[ImagineService, SentTo, list[JobEvent]]) -> None:
    """Four jobs queued together: both Ray engines render some, each job once; the images are the bot's files."""
    service, sent, _ = shared
    job_ids = [(await submit_prompt(service, MEMBERS[n], f"a fox number {n} --steps 8")).job.id for n in range(4)]
    await until_ended(service, job_ids)
    for job_id in job_ids:
        await _completed_with_images(service, job_id)
    assert {sent.by_job[job_id][0] for job_id in job_ids} == {0, 1}, dict(sent.by_job)
    assert all(len(sent.by_job[job_id]) == 1 for job_id in job_ids)


async def test_a_job_whose_actor_is_killed_finishes_on_the_other_engine(
    shared: tuple[ImagineService, SentTo, list[JobEvent]],
) -> None:
    """Kill the actor rendering a job (as its host vanishing): the job is given back and completes on the other
    Ray engine."""
    service, sent, events = shared
    job_id = (await submit_prompt(service, MEMBERS[0], "a slow fox --steps 30")).job.id
    await _first_progress(events, job_id)
    victim = sent.by_job[job_id][0]
    run = service.engines.engines[victim]._run
    assert isinstance(run, RayEngineRun)
    ray.kill(run.actor)
    await until_ended(service, [job_id])
    await _completed_with_images(service, job_id)
    assert (await service.scheduler.get(job_id)).attempts == 2
    assert sent.by_job[job_id] == [victim, 1 - victim]


async def test_a_node_that_joins_gets_an_engine_that_takes_waiting_work(cluster: Cluster, tmp_path: Path) -> None:
    """The pool starts with the one engine its nodes have room for; while that engine renders a long job with the
    next one behind it, a node joins: a second engine starts there and takes the job still waiting (the long job,
    still rendering, is then cancelled)."""
    first = cluster.add_node(**{**NODE, "resources": {POOL_SLOT: 1}})
    settings = make_settings(
        tmp_path / "data",
        database_path=tmp_path / "imagine.db",
        max_steps=150,
        engine={"backend": "ray", "ray_address": cluster.address, "ray_resources": {POOL_SLOT: 1}, "ray_poll_s": 0.2},
    )
    service = await ImagineService.open(settings)
    joined = None
    try:
        assert len(service.engines.slots) == 1
        sent = SentTo(service.engines.engines)
        events: list[JobEvent] = []
        service.events.subscribe(events.append)
        service.start()
        long, behind, waiting = [
            (await submit_prompt(service, member, f"a fox {what}")).job.id
            for member, what in zip(
                MEMBERS[:3], ("--steps 150", "in the rain --steps 2", "in the snow --steps 2"), strict=True
            )
        ]
        await _first_progress(events, long)
        joined = cluster.add_node(**{**NODE, "resources": {POOL_SLOT: 1}})
        await _until(lambda: len(service.engines.slots) == 2, "an engine for the new node", every_s=0.05)
        sent.watch(1, service.engines.engines[1])
        await until_ended(service, [waiting])
        await _completed_with_images(service, waiting)
        assert (sent.by_job[long], sent.by_job[behind], sent.by_job[waiting]) == ([0], [0], [1])
        assert (await service.scheduler.get(long)).status is Status.RUNNING  # the new engine did not wait for it
        await service.cancel(long, "test")
        await until_ended(service, [long, behind])
        await _completed_with_images(service, behind)
    finally:
        await service.close()
        for node in (first, joined):
            if node is not None:
                cluster.remove_node(node)
