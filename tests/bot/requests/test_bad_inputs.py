"""The bad-input corpus through the shell path (``generate --image/--mask``) and hostile prompts: a clear error,
no job, no file outside data/."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.errors import PromptError
from bot.requests.request_options import TaskOptions
from config.settings import Settings
from tests.conftest import make_settings, submit_prompt

BAD = Path(__file__).resolve().parents[2] / "data" / "bad"


@pytest.fixture
async def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings: Settings = make_settings(tmp_path / "data", database_path=tmp_path / "imagine.db")
    opened = await ImagineService.open(settings)
    yield opened
    await opened.close()


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("not_an_image.png", "not an image this bot can read"),
        ("truncated.png", "damaged or truncated"),
        ("truncated.jpg", "damaged or truncated"),
        ("bomb.png", "far too many pixels"),
        ("animated.gif", "animated images are not supported"),
        ("empty.png", "empty (0 bytes)"),
    ],
)
async def test_bad_images_from_the_shell(service: ImagineService, name: str, fragment: str) -> None:
    """Each corpus file named with --image is refused with the file and the reason."""
    with pytest.raises(PromptError) as caught:
        await service.submit_shell_request(Actor.console(), "a fox", TaskOptions(image=BAD / name))
    assert fragment in str(caught.value)
    assert name in str(caught.value)
    assert not (service.settings.data_dir / "uploads").exists() or not any(
        (service.settings.data_dir / "uploads").iterdir()
    )


async def test_odd_but_valid_images_are_accepted_and_copied_under_data(service: ImagineService) -> None:
    """CMYK, 16-bit and palette files are converted; the engine only ever sees a copy under data/uploads."""
    for name in ("cmyk.jpg", "sixteen_bit.png", "palette.png"):
        submitted = await service.submit_shell_request(Actor.console(), "a fox", TaskOptions(image=BAD / name))
        assert Path(submitted.job.params.init_image).resolve().is_relative_to(service.settings.data_dir.resolve())


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("x" * 10_000, "limit is 1500"),
        ("a fox --ar 1:0", "--ar W:H"),
        ("a fox --cfg nan", "--cfg X"),
        ("a fox --steps -5", "--steps N"),
        ("a fox --seed 1e99", "--seed N"),
        ("a fox --repeat 10000", "out of range"),
        ("a {red, {blue fox", "without its `}`"),
        ("a red} fox", "without its `{`"),
        ("{a,b,c} {d,e,f} {g,h,i}", "more than 8"),
    ],
)
async def test_hostile_prompts(service: ImagineService, prompt: str, fragment: str) -> None:
    """Huge, malformed and out-of-range prompts are refused before anything is stored."""
    with pytest.raises(PromptError, match=None) as caught:
        await service.prepare(Actor.console(), prompt)
    assert fragment in str(caught.value)


async def test_sql_metacharacters_and_bidi_text_are_just_text(service: ImagineService) -> None:
    """A prompt full of SQL and right-to-left characters is stored and read back verbatim (cleaned of bidi)."""
    prompt = "a fox'); DROP TABLE jobs; -- \u202eevil\u202c \" OR 1=1"
    submitted = await submit_prompt(service, Actor.console(), prompt)
    job = await service.scheduler.get(submitted.job.id)
    assert "DROP TABLE jobs" in job.prompt
    assert "\u202e" not in job.prompt
    assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 1
