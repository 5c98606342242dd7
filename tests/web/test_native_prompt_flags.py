"""The native API takes the same prompt text as /imagine: a multi-prompt with --chaos, --stop and --q is priced for
the steps it runs and renders; a bad flag is a 422 that names it and costs nothing."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from config.settings import Settings
from engine.prompt_weights import chaos_cfg
from tests.conftest import step_priced_settings
from tests.web.conftest import bearer
from tests.web.native import balance, create, wait_for_job


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """One credit per 64x64 image step, so the price shows the steps that run."""
    return step_priced_settings(data_dir, tmp_path / "imagine.db", ["tiny"])


@pytest.mark.slow
async def test_a_weighted_prompt_with_chaos_stop_and_quality(client: httpx.AsyncClient, member_key: str) -> None:
    """--q 2 makes 8 steps, --stop 50 runs and charges 4: 4 images x 4 steps = 16 credits; each image's metadata
    has the CFG scale --chaos gave its seed."""
    before = await balance(client, member_key)
    response = await create(client, member_key, prompt="a lamp:: a red glow::2 --chaos 50 --stop 50 --q 2 --seed 3")
    assert response.status_code == 202, response.text
    created = response.json()
    [job] = created["jobs"]
    assert created["cost"] == job["cost"] == 16 and created["balance"] == before - 16
    assert job["params"]["steps"] == 8
    done = await wait_for_job(client, member_key, job["id"])
    assert done["status"] == "completed"
    single = await client.get(done["images"][2]["url"], headers=bearer(member_key))
    with Image.open(io.BytesIO(single.content)) as image:
        text = image.text["parameters"]
    assert text.startswith("a lamp:: a red glow::2\n")
    assert f"CFG scale: {chaos_cfg(5.0, 50, 5):g}, Seed: 5," in text


async def test_a_bad_stop_is_refused_free(client: httpx.AsyncClient, member_key: str) -> None:
    """The parser's message names --stop and its range; nothing is charged or queued."""
    before = await balance(client, member_key)
    response = await create(client, member_key, prompt="a lamp --stop 5")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_prompt" and "--stop N with N from 10 to 100" in error["message"]
    assert await balance(client, member_key) == before
