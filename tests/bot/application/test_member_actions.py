"""Member actions and the one way into the queue, called as any surface would: with an Actor, getting plain data."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.errors import ImagineError, JobNotFoundError
from bot.jobs import Lane, Status
from bot.requests.preparation import prepare_imagine
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from tests.conftest import submit_prompt

GUILD, CHANNEL = 500, 600


def member(user_id: int) -> Actor:
    return Actor.discord(user_id, guild_id=GUILD, channel_id=CHANNEL)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ImagineService]:
    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path)  # type: ignore[call-arg]
    opened = await ImagineService.open(settings, engine=EngineSupervisor(engine_config(settings)))
    try:
        yield opened
    finally:
        await opened.close()


async def test_overview_lists_own_jobs_with_positions(service: ImagineService) -> None:
    """Balance, tier and each unfinished job with its place; other members' jobs are not listed."""
    await submit_prompt(service, member(2), "someone else's fox")
    first = await submit_prompt(service, member(1), "a fox")
    second = await submit_prompt(service, member(1), "a cat")
    overview = await service.member.overview(member(1))
    assert overview.balance == 98 and overview.tier == "free" and not overview.banned
    assert [(place.job.id, place.position) for place in overview.jobs] == [(first.job.id, 2), (second.job.id, 3)]


async def test_cancel_own_newest_and_refuse_others(service: ImagineService) -> None:
    """No id cancels the newest own job; another member's job and an ended job are refused with the same texts."""
    mine = await submit_prompt(service, member(1), "a fox")
    theirs = await submit_prompt(service, member(2), "a cat")
    with pytest.raises(ImagineError, match="only cancel your own jobs"):
        await service.member.cancel(member(1), theirs.job.id)
    cancelled = await service.member.cancel(member(1))
    assert cancelled.id == mine.job.id and cancelled.status is Status.CANCELLED
    with pytest.raises(ImagineError, match="already cancelled"):
        await service.member.cancel(member(1), mine.job.id)
    with pytest.raises(ImagineError, match="no queued or running jobs"):
        await service.member.cancel(member(1))
    assert (await service.scheduler.get(theirs.job.id)).status is Status.QUEUED


async def test_preferences_round_trip(service: ImagineService) -> None:
    """A lane switch is stored and read back; prompts then use it."""
    await service.member.update_preferences(member(1), lane=Lane.RELAX)
    assert (await service.member.preferences(member(1))).lane is Lane.RELAX
    submitted = await submit_prompt(service, member(1), "a fox")
    assert submitted.job.lane is Lane.RELAX


async def test_submit_refuses_jobs_not_prepared_for_the_actor(service: ImagineService) -> None:
    """A door that skips the core's preparation (and so moderation) cannot queue: nothing is stored or charged."""
    unmoderated = prepare_imagine(service.settings, "a fox")
    with pytest.raises(ValueError, match="prepare"):
        await service.submit(member(1), unmoderated)
    prepared = await service.prepare(member(2), "a fox")
    with pytest.raises(ValueError, match="prepare"):
        await service.submit(member(1), prepared)  # prepared for someone else (their server's rules)
    forged = [dataclasses.replace(item, moderated_for=member(1)) for item in unmoderated]
    assert (await service.submit(member(1), forged)).jobs  # the stamp is a contract between core methods
    assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 1


async def test_preparation_moderates_every_prompt(service: ImagineService) -> None:
    """The blocklist applies inside preparation, also to a permutation and to a button's stored prompt."""
    moderator = Actor.discord(9, guild_id=GUILD, channel_id=CHANNEL, roles=None)
    await service.moderation.block(GUILD, ["gore"], actor_id=moderator.user_id)
    with pytest.raises(ImagineError, match="blocked"):
        await service.prepare(member(1), "a {fox, gore} scene")
    assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0


async def test_a_job_is_shown_to_its_member_and_the_console_only(service: ImagineService) -> None:
    """The member and the console see a job with its images; to another member it does not exist (ids are
    sequential: whether another member's job exists is not told)."""
    submitted = await submit_prompt(service, member(1), "a fox")
    assert (await service.member.job(member(1), submitted.job.id)).job.id == submitted.job.id
    files = await service.member.job(Actor.console(), submitted.job.id)
    assert files.images == ()  # not rendered: no images yet
    with pytest.raises(JobNotFoundError, match="does not exist"):
        await service.member.job(member(2), submitted.job.id)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"steps": "100000"}, "`--steps 100000` is out of range"),
        ({"steps": "many"}, "`--steps many` is not valid"),
        ({"aspect": "50:1"}, "`--ar 50:1` is too extreme"),
        ({"sampler": "warp-speed"}, "`--sampler warp-speed` is not a sampler on this server"),
        ({"model": "secret-model"}, "`--model secret-model` is not a model on this server"),
        ({"lane": "vip"}, "`vip` is not a lane: use turbo, fast or relax"),
    ],
)
async def test_preferences_obey_the_rules_of_their_flags(
    service: ImagineService, changes: dict[str, str], fragment: str
) -> None:
    """A /settings value is checked like the flag it stands for (a crafted select may send anything), and nothing
    is stored when it is refused."""
    with pytest.raises(ImagineError, match=re.escape(fragment)):
        await service.member.update_preferences(member(1), **changes)
    assert await service.store.fetch_value("SELECT COUNT(*) FROM preferences") == 0


async def test_a_stored_preference_that_the_rules_no_longer_allow_is_refused(service: ImagineService) -> None:
    """Steps stored under a higher limit do not outlive it: the request names the setting to change."""
    await service.member.update_preferences(member(1), steps="40", aspect="6:4")
    stored = await service.member.preferences(member(1))
    assert (stored.steps, stored.aspect) == (40, "3:2")  # stored as the rule reads it
    service.settings = service.settings.model_copy(update={"max_steps": 30})
    with pytest.raises(ImagineError, match=re.escape("your default steps `40` (from /settings) is not available")):
        await service.prepare(member(1), "a fox")
    [prepared] = await service.prepare(member(1), "a fox --steps 20")  # a flag still wins
    assert prepared.params.steps == 20
