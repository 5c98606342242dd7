"""/describe in the core: its small price, refusals before any charge, its suggestions kept with the job and screened
by the server's blocklist, and running a suggestion as /imagine for whoever asks, charged as /imagine."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.errors import BannedError, ImagineError, InsufficientCreditsError, JobNotFoundError, QueuePausedError
from bot.jobs import Job, Kind, Lane, Status
from bot.requests.describe import DescribeUnavailableError, describe_problem, make_describe_id, parse_describe_id
from bot.requests.moderation import BlockedPromptError
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from engine.protocol import TaskDone
from tests.conftest import make_settings

GUILD = 10
CHANNEL = 20
SUGGESTIONS = ("a red fox in snow --ar 3:2", "a gory battle --ar 3:2", "a quiet lake --ar 3:2", "an owl --ar 3:2")


def member(user_id: int, *, channel: int = CHANNEL) -> Actor:
    return Actor.discord(user_id, guild_id=GUILD, channel_id=channel)


def png(size: tuple[int, int] = (96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "orange").save(buffer, "PNG")
    return buffer.getvalue()


async def open_service(settings: Settings) -> ImagineService:
    engine = EngineSupervisor(engine_config(settings))  # never spawned: the engine's part is the worker's record
    return await ImagineService.open(settings, engine=engine)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ImagineService]:
    service = await open_service(make_settings(tmp_path, describe={"source": "tiny:blip"}))
    try:
        yield service
    finally:
        await service.close()


async def ask(service: ImagineService, actor: Actor, *, lane: Lane | None = None) -> Job:
    """Ask for a description as a surface does: prepare, receive the image, attach, submit."""
    prepared = await service.describe.prepare(actor)
    received = await service.receive_image(png())
    admitted = await service.submit(
        actor, [service.describe.attach(prepared, received)], lane=lane, uploads=[received.staged]
    )
    return admitted.jobs[0].job


async def described(service: ImagineService, actor: Actor, suggestions: tuple[str, ...] = SUGGESTIONS) -> Job:
    """A completed describe job: asked for, dispatched, and recorded by the worker as the engine reports it."""
    job = await ask(service, actor)
    [running] = await service.scheduler.dispatch()
    done = TaskDone(running.id, ("0.png",), running.params.seeds, 96, 64, 0.5, grid_path="grid.jpg")
    await service.worker._record(running, replace(done, suggestions=suggestions))
    return await service.scheduler.get(job.id)


async def test_a_describe_costs_one_credit_in_fast_and_nothing_in_relax(service: ImagineService) -> None:
    """One unit of work times describe's 0.5, rounded up to the minimum cost: 1 credit; relax is free."""
    job = await ask(service, member(1))
    assert job.kind is Kind.DESCRIBE and job.cost == 1
    assert job.params.describe_model == "tiny:blip" and job.params.images == 1
    assert Path(job.params.init_image).is_file()
    assert await service.ledger.balance(1) == 99
    relaxed = await ask(service, member(1), lane=Lane.RELAX)
    assert relaxed.cost == 0
    assert await service.ledger.balance(1) == 99


async def test_a_step_priced_server_still_prices_it_as_one_unit(tmp_path: Path) -> None:
    """Whatever the owner's unit, a describe is one unit of it (here one 64x64 step): 1 credit."""
    settings = make_settings(
        tmp_path, describe={"source": "tiny:blip"}, credits={"unit_pixels": 64 * 64, "unit_steps": 1}
    )
    service = await open_service(settings)
    try:
        assert (await ask(service, member(2))).cost == 1
    finally:
        await service.close()


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("", "turned off"),
        ("nobody/no-such-captioner", "python -m engine.describe pull nobody/no-such-captioner"),
        ("/nowhere/captioner", "folder is missing"),
        ("tiny:nope", "not one this bot can build"),
    ],
)
async def test_a_server_that_cannot_describe_refuses_before_any_charge(
    tmp_path: Path, source: str, fragment: str
) -> None:
    """No job, no debit, a message that says what the owner must do."""
    service = await open_service(make_settings(tmp_path, describe={"source": source}))
    try:
        with pytest.raises(DescribeUnavailableError, match=fragment):
            await service.describe.prepare(member(3))
        assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0
        assert await service.store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0
    finally:
        await service.close()


async def test_banned_members_and_a_paused_queue_are_refused_before_the_image(service: ImagineService) -> None:
    """The cheap refusals come first: nothing is received or charged."""
    await service.ledger.set_banned(4, True, actor="mod")
    with pytest.raises(BannedError):
        await service.describe.prepare(member(4))
    await service.scheduler.pause("test")
    with pytest.raises(QueuePausedError):
        await service.describe.prepare(member(5))


async def test_the_worker_keeps_the_suggestions_and_blocked_ones_are_hidden(service: ImagineService) -> None:
    """The suggestions come back in order; one with a word the server blocks is hidden, and so not offered."""
    job = await described(service, member(6))
    assert job.status is Status.COMPLETED
    await service.moderation.block(GUILD, ["gory"], actor_id=1)
    description = await service.describe.description(member(6), job.id)
    assert [item.prompt for item in description.suggestions] == [SUGGESTIONS[0], None, *SUGGESTIONS[2:]]
    assert [item.offered for item in description.suggestions] == [True, False, True, True]
    assert description.caption == "a red fox in snow"
    assert [item.prompt for item in (await service.describe.description_of(job)).suggestions][1] is None


async def test_a_suggestion_runs_as_imagine_for_whoever_presses(service: ImagineService) -> None:
    """Another member in the same channel gets an imagine job of that prompt, charged to them like /imagine."""
    job = await described(service, member(7))
    presser = member(8)
    prepared = await service.describe.prepare_imagine(presser, job.id, 2)
    admitted = await service.submit(presser, prepared)
    imagine = admitted.jobs[0].job
    assert imagine.kind is Kind.IMAGINE and imagine.user_id == 8
    assert imagine.prompt == SUGGESTIONS[2] and (imagine.params.width, imagine.params.height) == (72, 48)
    assert imagine.cost == admitted.cost == 1 and await service.ledger.balance(8) == 99
    again = await service.describe.prepare_imagine(presser, job.id, 2)
    with pytest.raises(ImagineError, match="already on its way"):
        await service.submit(presser, again)
    assert await service.ledger.balance(8) == 99


@pytest.mark.parametrize(
    ("actor", "index", "error", "fragment"),
    [
        (member(9), 1, BlockedPromptError, "blocked word `gory`"),
        (member(9, channel=CHANNEL + 1), 0, JobNotFoundError, "does not exist"),
        (member(9), 3, None, ""),
    ],
)
async def test_refusals_of_a_suggestion_come_before_any_charge(
    service: ImagineService, actor: Actor, index: int, error: type[Exception] | None, fragment: str
) -> None:
    """A blocked suggestion and a press from another channel are refused without a debit; a fine one is not."""
    job = await described(service, member(9))
    await service.moderation.block(GUILD, ["gory"], actor_id=1)
    debits = await service.store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'")
    if error is None:
        assert len(await service.describe.prepare_imagine(actor, job.id, index)) == 1
        return
    with pytest.raises(error, match=fragment):
        await service.describe.prepare_imagine(actor, job.id, index)
    assert await service.store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == debits


async def test_a_poor_member_pressing_a_suggestion_is_refused_and_not_charged(service: ImagineService) -> None:
    job = await described(service, member(10))
    await service.ledger.set_balance(11, 0, actor="mod", reason="test")
    prepared = await service.describe.prepare_imagine(member(11), job.id, 0)
    with pytest.raises(InsufficientCreditsError):
        await service.submit(member(11), prepared)
    assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs WHERE user_id = 11") == 0


async def test_a_suggestion_of_an_unfinished_or_other_job_is_refused(service: ImagineService) -> None:
    """Only a completed describe job has suggestions, and only those it has; an imagine job has none to press."""
    done = await described(service, member(13), SUGGESTIONS[:2])
    with pytest.raises(ImagineError, match="no suggestion 3"):
        await service.describe.prepare_imagine(member(13), done.id, 2)
    waiting = await ask(service, member(12))
    with pytest.raises(ImagineError, match="wait for it to finish"):
        await service.describe.prepare_imagine(member(12), waiting.id, 0)
    prepared = await service.prepare(member(12), "a fox")
    imagine = (await service.submit(member(12), prepared)).jobs[0].job
    with pytest.raises(JobNotFoundError):
        await service.describe.prepare_imagine(member(12), imagine.id, 0)


@pytest.mark.parametrize(("job_id", "index"), [(0, 0), (1, 3), (9_223_372_036_854_775_807, 2)])
def test_button_ids_round_trip_within_discords_limit(job_id: int, index: int) -> None:
    custom_id = make_describe_id(job_id, index)
    assert len(custom_id) <= 100
    assert parse_describe_id(custom_id) == (job_id, index)


@pytest.mark.parametrize("custom_id", ["ibd:1:4", "ibd:x:1", "ib:U:1:0", "ibd:1:0:0", "ibd:-1:0"])
def test_other_ids_are_not_suggestion_buttons(custom_id: str) -> None:
    assert parse_describe_id(custom_id) is None


def test_the_default_model_must_be_pulled_first(tmp_path: Path) -> None:
    """BLIP base is the default; offline and not in the cache, the owner is told the command that fetches it."""
    problem = describe_problem(make_settings(tmp_path))
    assert problem is not None and "python -m engine.describe pull Salesforce/blip-image-captioning-base" in problem
