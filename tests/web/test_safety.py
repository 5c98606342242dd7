"""The image safety check on the web: web requests are checked when it is on (the web has no age-restricted
channel), the native API marks each flagged image and the job's verdict, the web UI blurs flagged images, and a
withheld job comes back failed and refunded."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.core import ImageResult, ImagineService, Job, JobFiles, Kind, Lane, Origin, RenderParams, Status
from bot.image_safety import JobSafety, SafetyState
from config.settings import Settings
from tests.safety_engine import flagging_data_dir, flagging_engine, safety_settings
from tests.web.native import balance, create, wait_for_job
from web.job_views import job_out
from web.pages import TEMPLATES, job_view


def _job(safety: JobSafety) -> tuple[Job, list[ImageResult]]:
    params = RenderParams("a fox", "", "tiny", 64, 64, 4, 5.0, 7)
    job = Job(1, 5, Kind.IMAGINE, Status.COMPLETED, Lane.FAST, "a fox", params, Origin(source="web"), 0.0)
    job = dataclasses.replace(job, safety=safety, grid_path="/data/images/1/grid.jpg")
    images = [ImageResult(1, index, f"/data/images/1/{index}.png", 7 + index, 64, 64) for index in range(4)]
    return job, images


@pytest.mark.parametrize(
    ("safety", "flags", "text"),
    [
        (JobSafety(SafetyState.FLAGGED, "NSFW content", (1, 3)), [False, True, False, True], "flagged:NSFW content"),
        (JobSafety(SafetyState.PASSED), [False] * 4, "passed"),
        (JobSafety(SafetyState.SKIPPED, "nsfw-channel"), [False] * 4, "skipped:nsfw-channel"),
    ],
)
def test_the_api_marks_each_flagged_image(safety: JobSafety, flags: list[bool], text: str) -> None:
    """Each image says whether it was flagged; the job says the verdict."""
    job, images = _job(safety)
    out = job_out(job, images)
    assert [image.flagged for image in out.images] == flags
    assert out.safety == text


def test_the_job_card_blurs_flagged_images_and_says_why() -> None:
    """Flagged images carry the class the stylesheet blurs; the card names the reason."""
    job, images = _job(JobSafety(SafetyState.FLAGGED, "NSFW content", (2,)))
    html = TEMPLATES.get_template("_job.html").module.job_card(job_view(JobFiles(job, tuple(images))))  # type: ignore[attr-defined]
    tags = [part.split(">")[0] for part in str(html).split("<img")[1:]]
    assert ['class="flagged"' in tag for tag in tags] == [False, False, True, False]
    assert "Flagged by the image safety check (NSFW content)" in str(html)


@pytest.fixture
def settings(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Settings:
    """The flagging engine's data folder and this test's database; the [safety] action a test parametrizes (spoiler
    unless it does)."""
    action = getattr(request, "param", "spoiler")
    return safety_settings(flagging_data_dir(tmp_path_factory), tmp_path / "imagine.db", action=action)


@pytest.fixture
async def service(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ImagineService]:
    """The application core on the flagging engine, its worker running."""
    service = await ImagineService.open(settings, engine=flagging_engine(tmp_path_factory))
    service.start()
    try:
        yield service
    finally:
        await service.close()


@pytest.mark.slow
async def test_a_web_job_is_checked_and_its_flagged_images_are_marked(
    client: httpx.AsyncClient, member_key: str
) -> None:
    """spoiler: the job completes; every image the checker flagged is marked, and the images are still served."""
    response = await create(client, member_key, prompt="a red fox --seed 7")
    assert response.status_code == 202, response.text
    done = await wait_for_job(client, member_key, response.json()["jobs"][0]["id"], limit_s=120)
    assert done["status"] == "completed", done["error"]
    assert done["safety"] == "flagged:NSFW content"
    assert [image["flagged"] for image in done["images"]] == [True] * 4


@pytest.mark.slow
@pytest.mark.parametrize("settings", ["withhold"], indirect=True)
async def test_a_withheld_web_job_fails_and_is_refunded(client: httpx.AsyncClient, member_key: str) -> None:
    """withhold: failed with the reason, no image, the charge back."""
    before = await balance(client, member_key)
    response = await create(client, member_key, prompt="a red fox --seed 7")
    assert response.status_code == 202, response.text
    done = await wait_for_job(client, member_key, response.json()["jobs"][0]["id"], limit_s=120)
    assert done["status"] == "failed" and "withheld by the image safety check" in done["error"]
    assert done["images"] == [] and done["safety"] == "flagged:NSFW content"
    assert await balance(client, member_key) == before
