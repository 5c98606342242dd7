"""The dispatcher's batches on a real SQLite queue: only jobs the engine renders in one pipeline call go together."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.jobs import Job, Kind, Lane, Origin, RenderParams
from bot.requests.preparation import Prepared
from bot.running.worker import render_task_for
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.policy import TierSpec
from config.settings import Settings
from engine.protocol import batch_key

FOX = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)
UPLOAD = "/data/uploads/a.png"


@pytest.fixture
async def scheduler(tmp_path: Path) -> AsyncIterator[Scheduler]:
    tier = TierSpec(allowance=0, refill="never", max_running=5, max_queued=50, unlimited=True)
    tiers = {"free": tier, "unlimited": tier}
    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path, tiers=tiers)  # type: ignore[call-arg]
    store = await Store.open(tmp_path / "imagine.db")
    opened = Scheduler(store, settings)
    await opened.load()
    yield opened
    await store.close()


async def put(scheduler: Scheduler, user_id: int, kind: Kind, params: RenderParams) -> int:
    admission = await scheduler.admit(user_id, [Prepared(kind, "fox", params)], origin=Origin(), lane=Lane.FAST)
    return admission.jobs[0].job.id


def engine_keys(jobs: list[Job], images_dir: Path) -> set[object]:
    return {batch_key(render_task_for(job, images_dir)) for job in jobs}


async def test_a_batch_holds_only_what_the_engine_keeps_together(scheduler: Scheduler, tmp_path: Path) -> None:
    """A negative prompt or a LoRA tag splits a batch; a reroll joins imagine jobs (both are txt2img)."""
    first = await put(scheduler, 1, Kind.IMAGINE, FOX)
    await put(scheduler, 2, Kind.IMAGINE, dataclasses.replace(FOX, negative_prompt="blur"))
    await put(scheduler, 3, Kind.IMAGINE, dataclasses.replace(FOX, prompt="fox <lora:ink:0.7>"))
    reroll = await put(scheduler, 4, Kind.REROLL, dataclasses.replace(FOX, seed=5))
    last = await put(scheduler, 5, Kind.IMAGINE, dataclasses.replace(FOX, prompt="owl"))
    jobs = await scheduler.dispatch(max_batch=4)
    assert [job.id for job in jobs] == [first, reroll, last]
    (key,) = engine_keys(jobs, tmp_path)
    assert key is not None


@pytest.mark.parametrize("kind", [Kind.IMG2IMG, Kind.UPSCALE, Kind.VARIATION])
async def test_jobs_the_engine_runs_alone_go_alone(scheduler: Scheduler, tmp_path: Path, kind: Kind) -> None:
    """Identical image jobs of several members are dispatched one at a time."""
    params = dataclasses.replace(FOX, init_image=UPLOAD)
    ids = [await put(scheduler, user_id, kind, params) for user_id in (1, 2, 3)]
    batches = [await scheduler.dispatch(max_batch=4) for _ in ids]
    assert [[job.id for job in batch] for batch in batches] == [[job_id] for job_id in ids]
    assert all(engine_keys(batch, tmp_path) == {None} for batch in batches)
