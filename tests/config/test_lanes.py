"""One lane vocabulary (engine.protocol.Lane) from the settings file to the prompt flags and the queue summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.jobs import Kind, Lane, Origin, RenderParams
from bot.requests.preparation import Prepared
from bot.requests.prompt import parse_prompt
from bot.scheduling.reports import queue_summary
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.errors import ConfigError
from config.settings import Settings, load_settings

FOX = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)


@pytest.mark.parametrize("lane", list(Lane))
def test_default_lane_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lane: Lane) -> None:
    """A TOML ``default_lane = "fast"`` (or any lane name) becomes that lane."""
    toml = tmp_path / "bot.toml"
    toml.write_text(f'default_lane = "{lane.value}"\n')
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    assert load_settings(_env_file=None).default_lane is lane


def test_default_lane_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """IMAGINE_DEFAULT_LANE=relax becomes the relax lane; the default is fast."""
    assert Settings(_env_file=None).default_lane is Lane.FAST  # type: ignore[call-arg]
    monkeypatch.setenv("IMAGINE_DEFAULT_LANE", "relax")
    assert load_settings(_env_file=None).default_lane is Lane.RELAX


def test_a_bad_lane_says_what_to_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown lane is refused with the three names to choose from."""
    toml = tmp_path / "bot.toml"
    toml.write_text('default_lane = "speedy"\n')
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert "default_lane" in str(caught.value)
    assert "Input should be 'turbo', 'fast' or 'relax'" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "lane"), [("fox --fast", Lane.FAST), ("fox --relax", Lane.RELAX), ("fox --turbo", Lane.TURBO)]
)
def test_lane_flags_give_lanes(raw: str, lane: Lane) -> None:
    """The prompt's lane flags give the lane itself, not a string."""
    assert parse_prompt(raw).lane is lane


async def test_queue_summary_lists_every_lane_in_order(tmp_path: Path) -> None:
    """The summary counts queued jobs per lane, every lane present, in order of service."""
    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path)  # type: ignore[call-arg]
    store = await Store.open(tmp_path / "imagine.db")
    try:
        scheduler = Scheduler(store, settings)
        await scheduler.load()
        await scheduler.admit(1, [Prepared(Kind.IMAGINE, "fox", FOX)], origin=Origin(), lane=Lane.RELAX)
        summary = await queue_summary(store, paused=False)
    finally:
        await store.close()
    assert list(summary.queued.items()) == [(Lane.TURBO, 0), (Lane.FAST, 0), (Lane.RELAX, 1)]
    assert all(type(lane) is Lane for lane in summary.queued)
