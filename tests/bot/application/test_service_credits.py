"""The service charges at enqueue, returns cost and balance, honours lane flags, and refunds on cancel."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.errors import InsufficientCreditsError
from bot.jobs import Lane, Origin, Status
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from tests.conftest import submit_prompt


def _member(user_id: int) -> Actor:
    return Actor(user_id, Origin(source="cli"))


async def open_service(tmp_path: Path) -> ImagineService:
    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path)  # type: ignore[call-arg]
    engine = EngineSupervisor(engine_config(settings))  # never spawned: these tests do not render
    return await ImagineService.open(settings, engine=engine)


async def test_enqueue_reports_cost_balance_and_lane_flag(tmp_path: Path) -> None:
    """--turbo in the prompt picks the lane; the result carries cost and balance; cancel refunds."""
    service = await open_service(tmp_path)
    try:
        submitted = await submit_prompt(service, _member(7), "a fox --turbo")
        assert submitted.job.lane is Lane.TURBO
        assert submitted.cost == 1 and submitted.balance == 99
        assert submitted.position == 1
        cancelled = await service.cancel(submitted.job.id, "member")
        assert cancelled.status is Status.CANCELLED
        assert await service.ledger.balance(7) == 100
    finally:
        await service.close()


async def test_console_generates_without_credits(tmp_path: Path) -> None:
    """User 0 is on the unlimited tier: nothing is charged."""
    service = await open_service(tmp_path)
    try:
        submitted = await submit_prompt(service, Actor.console(), "a fox --ar 3:2")
        assert submitted.cost == 0
    finally:
        await service.close()


async def test_refusal_message_offers_relax(tmp_path: Path) -> None:
    """A member without credits is told the cost, the balance and about --relax; relax still works."""
    service = await open_service(tmp_path)
    try:
        await service.ledger.set_balance(9, 0, actor="mod", reason="test")
        with pytest.raises(InsufficientCreditsError, match="--relax"):
            await submit_prompt(service, _member(9), "a fox")
        relaxed = await submit_prompt(service, _member(9), "a fox --relax")
        assert relaxed.cost == 0 and relaxed.job.lane is Lane.RELAX
    finally:
        await service.close()
