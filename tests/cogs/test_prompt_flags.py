"""Through Discord: a multi-prompt with --chaos and --stop is priced for the steps it runs, shown before it runs,
and renders four images each at its own CFG scale on the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import simcord
from PIL import Image

from config.settings import Settings
from engine.metadata import read_parameters
from engine.prompt_weights import chaos_cfg
from tests.conftest import posts, scene, step_priced_settings, wait_until


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """One credit per 64x64 image step, so the price shows the steps that run."""
    return step_priced_settings(data_dir, tmp_path / "imagine.db", ["tiny"])


@pytest.mark.slow
async def test_a_weighted_prompt_with_chaos_and_stop(discord_env: simcord.Env) -> None:
    """4 images x (50% of 4 steps) = 8 credits, in the private queued message and the ledger; the grid is posted
    and each image's metadata has the CFG scale --chaos gave its seed. A bad weight is refused privately, free."""
    _guild, channel, ann = scene(discord_env, "ann")
    prompt = "a lamp:: a red glow::2 --chaos 50 --stop 50 --seed 3"

    refused = await ann.slash(channel, "imagine", prompt="a lamp:: glow::-2")
    assert refused.ephemeral and refused.response is not None
    assert "the weights of the prompt's parts add up to -1" in refused.response.content
    assert await discord_env.bot.service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0

    result = await ann.slash(channel, "imagine", prompt=prompt)

    assert result.response is not None
    assert "cost 8 credits (balance 992)" in result.response.content
    store = discord_env.bot.service.store
    assert await store.fetch_value("SELECT SUM(delta) FROM ledger WHERE kind = 'debit'") == -8
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid post")
    job_id = await store.fetch_value("SELECT id FROM jobs")
    job = await discord_env.bot.service.scheduler.get(job_id)
    assert (job.status, job.params.stop, job.params.chaos) == ("completed", 50, 50)
    assert job.params.weighted_prompts == (("a lamp", 1.0), ("a red glow", 2.0))
    images = await discord_env.bot.service.scheduler.images(job_id)
    assert [image.seed for image in images] == [3, 4, 5, 6]
    cfgs = []
    for image in images:
        with Image.open(image.path) as single:
            assert single.size == (64, 64)
        text = read_parameters(Path(image.path).read_bytes()) or ""
        assert text.startswith("a lamp:: a red glow::2\n")
        cfgs.append(f"CFG scale: {chaos_cfg(5.0, 50, image.seed):g},")
        assert cfgs[-1] in text
    assert len(set(cfgs)) == 4
