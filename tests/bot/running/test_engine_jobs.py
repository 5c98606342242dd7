"""Image jobs through the service, worker and a real engine: retries after a crash, img2img, inpaint, sweeps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.errors import PromptError
from bot.events import EventKind, JobEvent
from bot.jobs import Kind, Origin, Status
from bot.requests.request_options import TaskOptions
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from engine.protocol import RenderTask, TaskDone, TaskFailed
from tests.conftest import submit_prompt

pytestmark = pytest.mark.slow


@pytest.fixture
async def service(settings: Settings, engine: EngineSupervisor) -> ImagineService:
    opened = await ImagineService.open(settings, engine=engine)
    yield opened  # type: ignore[misc]
    await opened.close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(path)
    return path


async def test_killed_engine_is_restarted_and_the_job_retried(service: ImagineService, engine: EngineSupervisor):
    """SIGKILL at the first step: the worker requeues the job, a fresh engine (after backoff) finishes it."""
    await engine.wait_ready()
    old_pid = engine.pid
    killed: list[int] = []

    def on_event(event: JobEvent) -> None:
        if event.kind is EventKind.PROGRESS and not killed:
            killed.append(event.step)
            engine.kill()

    service.events.subscribe(on_event)
    submitted = await submit_prompt(service, Actor.console(), "a fox --steps 10")  # about 1 s left after the kill
    await asyncio.wait_for(service.worker.run_until_idle(), 120)
    job = await service.scheduler.get(submitted.job.id)
    assert killed
    assert job.status is Status.COMPLETED
    assert job.attempts == 2
    assert engine.pid != old_pid


async def test_img2img_and_inpaint_jobs(service: ImagineService, source: Path, tmp_path: Path) -> None:
    mask = tmp_path / "mask.png"
    Image.new("L", (32, 32), 255).save(mask)
    console = Actor.console()
    img2img = await service.submit_shell_request(console, "a fox --seed 3", TaskOptions(image=source, strength=0.5))
    inpaint = await service.submit_shell_request(console, "a fox --seed 3", TaskOptions(image=source, mask=mask))
    assert (img2img.job.kind, inpaint.job.kind) == (Kind.IMG2IMG, Kind.INPAINT)
    assert inpaint.job.params.strength == 1.0
    jobs = [img2img, inpaint]
    await asyncio.wait_for(service.worker.run_until_idle(), 120)
    for submitted in jobs:
        job = await service.scheduler.get(submitted.job.id)
        assert job.status is Status.COMPLETED, job.error
        images = await service.scheduler.images(job.id)
        assert len(images) == 4
        assert "Denoising strength" in Image.open(images[0].path).info["parameters"]


async def test_sweep_job_gives_one_labelled_grid(service: ImagineService) -> None:
    submitted = await service.submit_shell_request(
        Actor.console(), "a red fox --seed 5", TaskOptions(model="tiny-sdxl", sweeps=("cfg=3,7", "prompt=red,blue"))
    )
    assert submitted.job.kind is Kind.SWEEP
    await asyncio.wait_for(service.worker.run_until_idle(), 120)
    job = await service.scheduler.get(submitted.job.id)
    assert job.status is Status.COMPLETED, job.error
    assert job.grid_path is not None and job.grid_path.endswith("sweep.png")
    assert len(await service.scheduler.images(job.id)) == 4
    with Image.open(job.grid_path) as grid:
        assert grid.width == 2 * 64
        assert "Model: tiny-sdxl" in grid.info["parameters"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (TaskOptions(model="nope"), "is not a model on this server"),
        (TaskOptions(mask=Path("m.png")), "--mask needs --image"),
        (TaskOptions(image=Path("/nonexistent.png")), "/nonexistent.png"),
        (TaskOptions(strength=0.5), "strength needs an image"),
        (TaskOptions(sweeps=("size=1,2",)), "axis 'size' is not one of"),
    ],
)
async def test_bad_options_are_prompt_errors(service: ImagineService, options: TaskOptions, fragment: str) -> None:
    with pytest.raises(PromptError, match=fragment):
        await service.submit_shell_request(Actor.console(), "a fox", options)
    assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0


async def test_render_batch_reports_each_task(engine: EngineSupervisor, data_dir: Path) -> None:
    """The batch API returns one result per task, a bad task failing alone."""
    tasks = [
        RenderTask(900 + i, "a fox", "", 64, 64, 2, 5.0, (i,), "euler", str(data_dir / "images" / f"b{i}"))
        for i in range(3)
    ]
    tasks[1] = RenderTask(901, "a fox", "", 60, 64, 2, 5.0, (1,), "euler", str(data_dir / "images" / "b1"))
    results = await engine.render_batch(tasks)
    assert [type(result) for result in results] == [TaskDone, TaskFailed, TaskDone]
    assert isinstance(results[1], TaskFailed) and "width=60" in results[1].message


async def test_engine_with_max_batch_renders_compatible_tasks_in_one_call(data_dir: Path) -> None:
    """With engine_max_batch 2, two compatible tasks progress step by step together (one pipeline call)."""
    from bot.running.engine_config import engine_config
    from tests.conftest import make_settings

    supervisor = EngineSupervisor(engine_config(make_settings(data_dir, engine_max_batch=2)), start_timeout_s=120)
    order: list[tuple[int, int]] = []
    tasks = [
        RenderTask(950 + i, f"fox {i}", "", 64, 64, 3, 5.0, (i,), "euler", str(data_dir / "images" / f"m{i}"))
        for i in range(2)
    ]
    try:
        results = await supervisor.render_batch(tasks, lambda p: order.append((p.job_id, p.step)))
    finally:
        supervisor.stop()
    await asyncio.sleep(0)
    assert all(isinstance(result, TaskDone) for result in results)
    assert order == [(950, 1), (951, 1), (950, 2), (951, 2), (950, 3), (951, 3)]


async def test_worker_hands_compatible_jobs_to_the_engine_together(service: ImagineService) -> None:
    """With scheduler.max_batch 2, two compatible jobs of two members are dispatched and rendered as one batch."""
    service.scheduler.policy = service.scheduler.policy.model_copy(update={"max_batch": 2})
    origin = Origin(source="cli")
    first = await submit_prompt(service, Actor(11, origin), "a fox --seed 1")
    second = await submit_prompt(service, Actor(12, origin), "a cat --seed 2")
    await asyncio.wait_for(service.worker.run_until_idle(), 120)
    jobs = [await service.scheduler.get(submitted.job.id) for submitted in (first, second)]
    assert [job.status for job in jobs] == [Status.COMPLETED, Status.COMPLETED]
    assert jobs[0].started_at == jobs[1].started_at  # claimed in one dispatch
