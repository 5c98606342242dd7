"""Members are charged for a model's GPU time: a FLUX.1 or SD3.5 job through the real admission path."""

from __future__ import annotations

import pytest

from bot.jobs import Kind, Lane, Origin, RenderParams
from bot.requests.preparation import Prepared
from bot.scheduling.admission import admit_jobs
from bot.storage.store import Store
from config.model_registry import ModelSpec
from config.policy import TierSpec
from tests.bot.scheduling.common import NOW, settings_for

MODELS = {
    "flux-dev": ModelSpec(source="black-forest-labs/FLUX.1-dev", family="flux", steps=28, cfg=3.5, base_size=1024),
    "sd35": ModelSpec(source="stabilityai/stable-diffusion-3.5-medium", family="sd3", steps=28, base_size=1024),
    "flux-cheap": ModelSpec(source="black-forest-labs/FLUX.1-dev", family="flux", cost_multiplier=2.0),
    "sdxl": ModelSpec(source="stabilityai/stable-diffusion-xl-base-1.0", family="sdxl", base_size=1024),
}


@pytest.mark.parametrize(
    ("model", "steps", "cost"),
    [
        ("flux-dev", 28, 115),  # 4 images 1024², 28 steps: 22.4 units x 5.1
        ("flux-dev", 4, 17),  # a schnell-like 4-step job: 3.2 units x 5.1
        ("sd35", 28, 27),  # 22.4 units x 1.2
        ("flux-cheap", 28, 45),  # the entry's own multiplier: 22.4 x 2.0
        ("sdxl", 28, 23),  # SDXL costs its work: 22.4 x 1.0
    ],
)
async def test_member_is_charged_the_models_gpu_time(store: Store, model: str, steps: int, cost: int) -> None:
    """admit_jobs debits work x the model's default (or explicit) cost multiplier."""
    settings = settings_for(free=TierSpec(allowance=1000, max_running=5, max_queued=50))
    settings = settings.model_copy(update={"models": MODELS})
    params = RenderParams("fox", "", model, 1024, 1024, steps, 3.5, 1)
    prepared = [Prepared(Kind.IMAGINE, "fox", params)]
    admission = await store.write(
        lambda db: admit_jobs(db, settings, user_id=3, prepared=prepared, origin=Origin(), lane=Lane.FAST, now=NOW)
    )
    assert admission.cost == cost
    debits = await store.fetch_all("SELECT delta FROM ledger WHERE kind = 'debit'")
    assert [row[0] for row in debits] == [-cost]
