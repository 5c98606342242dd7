"""Moderator actions are core methods: the core itself decides who may moderate from the roles an actor carries,
writes the audit row, and returns plain data, whichever surface asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.actors import Actor, MemberRoles
from bot.application.service import ImagineService
from bot.errors import ImagineError, JobNotFoundError, NotModeratorError
from bot.jobs import Status
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from tests.conftest import submit_prompt

GUILD, CHANNEL = 500, 600


NO_ROLES = MemberRoles()


def member(user_id: int, roles: MemberRoles | None = NO_ROLES) -> Actor:
    return Actor.discord(user_id, guild_id=GUILD, channel_id=CHANNEL, roles=roles)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ImagineService]:
    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path, moderator_roles=["Helpers"])  # type: ignore[call-arg]
    opened = await ImagineService.open(settings, engine=EngineSupervisor(engine_config(settings)))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.mark.parametrize(
    ("actor", "allowed"),
    [
        (member(1, MemberRoles(manage_guild=True)), True),
        (member(1, MemberRoles(administrator=True)), True),
        (member(1, MemberRoles(is_owner=True)), True),
        (member(1, MemberRoles(role_names=("@everyone", "helpers"))), True),
        (member(1, MemberRoles(role_names=("@everyone", "Members"))), False),
        (member(1, None), False),
        (Actor.discord(1, guild_id=None, channel_id=CHANNEL, roles=MemberRoles(manage_guild=True)), False),
        (Actor.console(), True),
    ],
)
async def test_who_may_moderate(service: ImagineService, actor: Actor, allowed: bool) -> None:
    """Manage Server, Administrator, the owner or a configured role; never without a server; always the console."""
    assert service.admin.may_moderate(actor) is allowed


async def test_every_moderator_action_refuses_a_member(service: ImagineService) -> None:
    """A member without rights gets NotModeratorError from every action, and nothing changes."""
    plain = member(2)
    submitted = await submit_prompt(service, member(3), "a fox")
    attempts = [
        service.admin.block(plain, ["fox"]),
        service.admin.unblock(plain, ["fox"]),
        service.admin.blocked(plain),
        service.admin.set_channel(plain, CHANNEL, allowed=False),
        service.admin.change_credits(plain, "give", 2, 1000, "self-service"),
        service.admin.set_tier(plain, 2, "free"),
        service.admin.set_banned(plain, 3, True, "mine"),
        service.admin.queue(plain),
        service.admin.cancel(plain, submitted.job.id),
        service.admin.pause(plain),
        service.admin.resume(plain),
        service.admin.stats(plain),
    ]
    for attempt in attempts:
        with pytest.raises(NotModeratorError, match="only moderators can use this"):
            await attempt
    assert (await service.scheduler.get(submitted.job.id)).status is Status.QUEUED
    assert await service.ledger.balance(2) == 0
    assert not service.scheduler.paused
    assert await service.store.fetch_value("SELECT COUNT(*) FROM audit") == 0


async def test_actions_change_state_and_write_the_audit(service: ImagineService) -> None:
    """A moderator's changes happen and each leaves one audit row naming the moderator and the server."""
    moderator = member(9, MemberRoles(role_names=("Helpers",)))
    assert await service.admin.block(moderator, ["gore"], "rules") == ["gore"]
    assert await service.admin.blocked(moderator) == ["gore"]
    assert await service.admin.change_credits(moderator, "give", 4, 50, "event prize") == 150
    account = await service.admin.set_tier(moderator, 4, "free", "reset")
    assert account.balance == 150
    await service.admin.set_banned(moderator, 4, True, "spam")
    await service.admin.pause(moderator, "maintenance")
    assert service.scheduler.paused
    await service.admin.resume(moderator)
    assert not service.scheduler.paused
    rows = await service.store.fetch_all("SELECT action, actor_id, guild_id FROM audit ORDER BY id")
    assert [tuple(row) for row in rows] == [
        ("blocklist.add", 9, GUILD),
        ("credits.give", 9, GUILD),
        ("tier.set", 9, GUILD),
        ("ban", 9, GUILD),
        ("queue.pause", 9, GUILD),
        ("queue.resume", 9, GUILD),
    ]


async def test_a_moderator_cannot_ban_themselves(service: ImagineService) -> None:
    """The self-ban refusal is the core's, so every surface gets it."""
    moderator = member(9, MemberRoles(manage_guild=True))
    with pytest.raises(ImagineError, match="cannot ban yourself"):
        await service.admin.set_banned(moderator, 9, True, "oops")


async def test_server_rules_need_a_server(service: ImagineService) -> None:
    """The console may moderate, but blocklists and channel rules belong to a server."""
    with pytest.raises(ImagineError, match="belong to a Discord server"):
        await service.admin.block(Actor.console(), ["gore"])


async def test_admin_cancel_refunds_and_lists_the_queue(service: ImagineService) -> None:
    """The queue listing shows queued jobs; a moderator's cancel refunds the member."""
    moderator = member(9, MemberRoles(manage_guild=True))
    submitted = await submit_prompt(service, member(5), "a fox")
    listing = await service.admin.queue(moderator)
    assert [job.id for job in listing.queued] == [submitted.job.id]
    assert listing.summary.total_queued == 1
    cancelled = await service.admin.cancel(moderator, submitted.job.id, "off topic")
    assert cancelled.status is Status.CANCELLED
    assert await service.ledger.balance(5) == 100


async def test_an_account_is_read_without_creating_it(service: ImagineService) -> None:
    """A member not seen yet has no account (and gets none); a known one shows its newest ledger rows."""
    owner = Actor.console()
    unknown = await service.admin.account(owner, 77)
    assert unknown.member is None and unknown.entries == ()
    assert await service.store.fetch_value("SELECT COUNT(*) FROM users WHERE user_id = 77") == 0
    await service.admin.change_credits(owner, "give", 78, 5, "welcome")
    known = await service.admin.account(owner, 78, limit=1)
    assert known.member is not None and known.member.balance == 105
    assert [(entry.delta, entry.actor, entry.reason) for entry in known.entries] == [(5, "console", "welcome")]
    with pytest.raises(NotModeratorError):
        await service.admin.account(member(2), 78)


async def test_a_moderator_sees_and_cancels_only_their_servers_jobs(service: ImagineService) -> None:
    """Another server's jobs are not listed and cannot be cancelled (answered as if they did not exist); the
    console sees every job. The summary's counts stay the whole GPU's."""
    ours = await submit_prompt(service, member(5), "a fox")
    theirs = await submit_prompt(service, Actor.discord(6, guild_id=GUILD + 1, channel_id=CHANNEL + 1), "a cat")
    moderator = member(9, MemberRoles(manage_guild=True))
    listing = await service.admin.queue(moderator)
    assert [job.id for job in listing.queued] == [ours.job.id]
    assert listing.summary.total_queued == 2
    with pytest.raises(JobNotFoundError):
        await service.admin.cancel(moderator, theirs.job.id)
    assert (await service.scheduler.get(theirs.job.id)).status is Status.QUEUED
    everything = await service.admin.queue(Actor.console())
    assert [job.id for job in everything.queued] == [ours.job.id, theirs.job.id]
    assert (await service.admin.cancel(Actor.console(), theirs.job.id)).status is Status.CANCELLED
