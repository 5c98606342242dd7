"""Jobs: render parameters as stored (also rows written by older versions) and the engine task built from a job."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bot.jobs import KIND_TO_ENGINE, LANE_ORDER, Job, Kind, Lane, Origin, RenderParams, Status, engine_task
from bot.requests.preparation import Prepared
from bot.running.worker import render_task_for
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.settings import Settings
from engine.protocol import Lane as ProtocolLane
from engine.protocol import RenderTask, TaskKind

PARAMS = RenderParams(
    prompt="a fox",
    negative_prompt="blur",
    model="tiny",
    width=64,
    height=48,
    steps=4,
    cfg=5.0,
    seed=7,
    images=2,
    sampler="ddim",
    tile=True,
    init_image="/data/uploads/a.png",
    mask_image="/data/uploads/m.png",
    strength=0.4,
    zoom=1.5,
    pan="left",
    upscale_factor=4.0,
    sweep=(("cfg", ("3", "5")),),
)

OLD_ROWS = [
    ('{"prompt": "fox", "negative": "blur, text", "model": "tiny", "width": 64, "height": 64, "steps": 4,'
     ' "cfg": 5.0, "seed": 1}', "blur, text"),
    ('{"prompt": "fox", "negative": "", "model": "tiny", "width": 64, "height": 64, "steps": 4, "cfg": 5.0,'
     ' "seed": 1, "images": 4, "sampler": "euler_a", "tile": false, "sweep": [["steps", ["4", "8"]]]}', ""),
]  # fmt: skip


def test_params_round_trip() -> None:
    """to_json then from_json gives the same parameters, sweep tuples included, under the new key."""
    text = PARAMS.to_json()
    assert "negative_prompt" in json.loads(text) and "negative" not in json.loads(text)
    assert RenderParams.from_json(text) == PARAMS


@pytest.mark.parametrize(("text", "negative"), OLD_ROWS)
def test_params_from_an_older_row(text: str, negative: str) -> None:
    """A row written with the old key ``negative`` reads as ``negative_prompt``."""
    params = RenderParams.from_json(text)
    assert params.negative_prompt == negative
    assert RenderParams.from_json(params.to_json()) == params


async def test_an_old_row_in_an_existing_database_is_dispatched(tmp_path: Path) -> None:
    """A queued job whose stored params use the old key is rebuilt, dispatched and rendered with its negative."""
    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path)  # type: ignore[call-arg]
    store = await Store.open(tmp_path / "imagine.db")
    try:
        scheduler = Scheduler(store, settings)
        await scheduler.load()
        admission = await scheduler.admit(1, [Prepared(Kind.IMAGINE, "fox", PARAMS)], origin=Origin(), lane=Lane.FAST)
        job_id = admission.jobs[0].job.id
        old = {key: value for key, value in json.loads(PARAMS.to_json()).items() if key != "negative_prompt"}
        old["negative"] = "old negative"
        await store.write(lambda db: db.execute("UPDATE jobs SET params = ? WHERE id = ?", (json.dumps(old), job_id)))
        restarted = Scheduler(store, settings)
        await restarted.load()
        (job,) = await restarted.dispatch(1)
        assert (job.id, job.status) == (job_id, Status.RUNNING)
        assert render_task_for(job, tmp_path).negative_prompt == "old negative"
    finally:
        await store.close()


def test_engine_task_copies_every_field() -> None:
    """The engine task is the job's parameters field for field, with the engine's kind and one seed per image."""
    task = engine_task(Kind.ZOOM, PARAMS, job_id=5, output_dir="/data/images/5")
    shared = {field.name for field in dataclasses.fields(RenderTask)} & {
        field.name for field in dataclasses.fields(RenderParams)
    }
    assert shared >= {"prompt", "negative_prompt", "width", "height", "steps", "cfg", "sampler", "model", "tile"}
    assert all(getattr(task, name) == getattr(PARAMS, name) for name in shared)
    assert (task.job_id, task.output_dir, task.kind, task.seeds) == (5, "/data/images/5", TaskKind.ZOOM, (7, 8))


def test_render_task_for_a_job_writes_under_its_id(tmp_path: Path) -> None:
    """The worker's task for a job is the job's engine task with files under images/<job id>."""
    job = Job(42, 1, Kind.REROLL, Status.RUNNING, Lane.RELAX, "a fox", PARAMS, Origin(), 0.0)
    expected = engine_task(Kind.REROLL, PARAMS, job_id=42, output_dir=str(tmp_path / "42"))
    assert render_task_for(job, tmp_path) == expected
    assert expected.kind is TaskKind.TXT2IMG


def test_every_job_kind_names_an_engine_kind() -> None:
    """Each job kind maps to a task kind the engine knows."""
    assert set(KIND_TO_ENGINE) == set(Kind)
    assert all(isinstance(kind, TaskKind) for kind in KIND_TO_ENGINE.values())


def test_lanes_are_the_protocols() -> None:
    """bot.jobs.Lane is the protocol's lane; its order of service is the enum's order."""
    assert Lane is ProtocolLane
    assert sorted(Lane, key=LANE_ORDER.__getitem__) == [Lane.TURBO, Lane.FAST, Lane.RELAX]
