"""A control job through the service's door: the control image is received like any upload, the job is charged once
at its own multiplier, and a refused request charges nothing and keeps no file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.errors import PromptError
from bot.jobs import Kind, Origin
from bot.requests.request_options import ImageInput, RequestOptions
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from tests.conftest import make_settings


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), "white").save(buffer, "PNG")
    return buffer.getvalue()


async def _service(tmp_path: Path) -> ImagineService:
    settings = make_settings(
        tmp_path, enabled_models=["tiny", "tiny-sdxl"], credits={"unit_pixels": 64 * 64, "unit_steps": 1}
    )
    engine = EngineSupervisor(engine_config(settings))  # never spawned: nothing renders here
    return await ImagineService.open(settings, engine=engine)


async def _debits(service: ImagineService, user_id: int) -> list[tuple[int | None, int]]:
    rows = await service.store.fetch_all(
        "SELECT job_id, delta FROM ledger WHERE user_id = ? AND kind = 'debit' ORDER BY id", (user_id,)
    )
    return [(row[0], row[1]) for row in rows]


async def test_a_control_job_is_charged_once_at_its_own_multiplier(tmp_path: Path) -> None:
    """64x64 x 4 steps x 4 images = 16 units, times 1.5 for ControlNet: 24 credits, debited once; the stored
    upload is the job's control image."""
    service = await _service(tmp_path)
    member = Actor(7, Origin(source="cli"))
    try:
        await service.ledger.set_balance(7, 100, actor="mod", reason="test")
        announced = RequestOptions(control=ImageInput.announced(), control_mode="scribble")
        prepared = await service.prepare(member, "a fox --cw 1.2", announced)
        received = await service.receive_image(_png())
        prepared = service.attach_images(prepared, None, None, received)
        admitted = await service.submit(member, prepared, uploads=[received.staged])
        job = admitted.jobs[0].job
        assert (job.kind, admitted.cost, admitted.balance) == (Kind.CONTROL, 24, 76)
        assert (job.params.control_mode, job.params.control_weight) == ("scribble", 1.2)
        assert Path(job.params.control_image) == received.staged.path and received.staged.path.is_file()
        assert await _debits(service, 7) == [(job.id, -24)]
        assert Path(job.params.control_image) in await service.scheduler.active_inputs()
    finally:
        await service.close()


@pytest.mark.parametrize(
    ("prompt", "mode", "fragment"),
    [
        ("a fox --model tiny-sdxl --controlnet tiny-controlnet", None, "is for sd15 models"),
        ("a fox --cw 3", None, "out of range"),
        ("a fox", "depth", "needs a depth estimator"),
    ],
)
async def test_a_refused_control_request_charges_nothing(
    tmp_path: Path, prompt: str, mode: str | None, fragment: str
) -> None:
    """Refused in preparation, before any download or charge: no job, no debit."""
    service = await _service(tmp_path)
    member = Actor(8, Origin(source="cli"))
    try:
        with pytest.raises(PromptError, match=fragment):
            await service.prepare(member, prompt, RequestOptions(control=ImageInput.announced(), control_mode=mode))
        assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0
        assert await _debits(service, 8) == []
    finally:
        await service.close()
