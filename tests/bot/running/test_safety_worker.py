"""The image safety check through the service, the worker and a real engine whose checker flags every image: the
decision is kept on the job, an age-restricted channel is not checked, and a withheld job fails, is refunded once
and leaves no file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.errors import JobNotFoundError
from bot.image_safety import JobSafety, SafetyState
from bot.jobs import Job, Status
from bot.scheduling.ledger import EntryKind
from config.settings import Settings
from tests.conftest import submit_prompt
from tests.safety_engine import flagging_data_dir, flagging_engine, safety_settings

pytestmark = pytest.mark.slow

MEMBER = 5150
FLAGGED_ALL = JobSafety(SafetyState.FLAGGED, "NSFW content", (0, 1, 2, 3))


@pytest.fixture
async def open_service(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Callable[..., object]]:
    """Opens the service on this test's database and the flagging engine, with the [safety] settings asked for."""
    engine = flagging_engine(tmp_path_factory)
    opened: list[ImagineService] = []

    async def open_with(**safety: object) -> ImagineService:
        settings: Settings = safety_settings(flagging_data_dir(tmp_path_factory), tmp_path / "imagine.db", **safety)  # type: ignore[arg-type]
        service = await ImagineService.open(settings, engine=engine)
        opened.append(service)
        return service

    yield open_with
    for service in opened:
        await service.close()


async def _run(service: ImagineService, actor: Actor, prompt: str = "a red fox") -> Job:
    submitted = await submit_prompt(service, actor, prompt)
    await asyncio.wait_for(service.worker.run_until_idle(), 120)
    return await service.scheduler.get(submitted.job.id)


async def _column(service: ImagineService, job_id: int) -> tuple[str, str]:
    row = await service.store.fetch_one("SELECT safety, safety_flagged FROM jobs WHERE id = ?", (job_id,))
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize(
    "actor",
    [Actor.console(), Actor.web(MEMBER, guild_id=7, key_id="k1"), Actor.discord(MEMBER, guild_id=7, channel_id=8)],
    ids=["cli", "web", "discord"],
)
async def test_a_checked_job_keeps_its_flags_and_its_images(open_service: Callable[..., object], actor: Actor) -> None:
    """spoiler: the command line, the web and a Discord channel are checked; the flagged job completes with its
    verdict and flagged images kept on its row, its images on disk."""
    service = await open_service(action="spoiler")  # type: ignore[misc]
    job = await _run(service, actor)
    assert job.status is Status.COMPLETED, job.error
    assert job.safety == FLAGGED_ALL
    assert await _column(service, job.id) == ("flagged:NSFW content", "0,1,2,3")
    assert all(Path(image.path).is_file() for image in await service.scheduler.images(job.id))


async def test_an_age_restricted_channel_is_not_checked(open_service: Callable[..., object]) -> None:
    """withhold would stop a flagged job: the job from a channel marked NSFW completes, recorded as skipped."""
    service = await open_service(action="withhold")  # type: ignore[misc]
    job = await _run(service, Actor.discord(MEMBER, guild_id=7, channel_id=9, nsfw=True))
    assert job.status is Status.COMPLETED, job.error
    assert await _column(service, job.id) == ("skipped:nsfw-channel", "")


async def test_with_the_check_off_nothing_is_checked(open_service: Callable[..., object]) -> None:
    """enabled = false: the engine is not asked, the job stays unchecked."""
    service = await open_service(enabled=False, action="withhold")  # type: ignore[misc]
    job = await _run(service, Actor.web(MEMBER, guild_id=7, key_id="k1"))
    assert job.status is Status.COMPLETED, job.error
    assert await _column(service, job.id) == ("unchecked", "")


async def test_a_withheld_job_fails_is_refunded_once_and_leaves_no_file(open_service: Callable[..., object]) -> None:
    """withhold: the job fails with the reason, its charge comes back in one refund, and its files are deleted."""
    service = await open_service(action="withhold")  # type: ignore[misc]
    actor = Actor.web(MEMBER, guild_id=7, key_id="k1")
    before = (await service.ledger.member(MEMBER)).balance
    job = await _run(service, actor)
    assert job.status is Status.FAILED
    assert job.error is not None and "withheld by the image safety check" in job.error
    assert "images 1, 2, 3 and 4 were flagged (NSFW content)" in job.error
    assert job.safety == FLAGGED_ALL
    entries = [entry for entry in await service.ledger.entries(MEMBER, limit=50) if entry.job_id == job.id]
    assert sorted(entry.kind for entry in entries) == [EntryKind.DEBIT, EntryKind.REFUND]
    assert job.cost > 0 and (await service.ledger.balance(MEMBER)) == before
    assert await service.scheduler.images(job.id) == []
    assert not (service.settings.images_dir / str(job.id)).exists()
    with pytest.raises(JobNotFoundError):  # ended: no second failure, so no second refund
        await service.scheduler.fail(job.id, "again")
