"""Only the start-up model may come from the hub: any other hub model loads from the local cache or is refused
before anything is evicted (conftest sets HF_HUB_OFFLINE=1, so nothing here can reach the network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.pipelines import ModelCache, ModelLoadError, cache_only
from engine.protocol import EngineConfig, ModelEntry

TINY = ModelEntry("tiny", "tiny:sd15", "sd15")
SDXL = ModelEntry("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "sdxl")
SD15 = ModelEntry("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd15")


@pytest.mark.parametrize(
    ("startup", "entry", "expected"),
    [
        ("sd15", SD15, False),  # the configured default is fetched at start-up as before
        ("sd15", SDXL, True),
        ("tiny", SD15, True),
        ("tiny", TINY, False),
        ("sd15", ModelEntry("mine", "/models/mine", "sd15"), False),
    ],
)
def test_cache_only(startup: str, entry: ModelEntry, expected: bool) -> None:
    """A hub model other than the start-up one must come from the cache; local and tiny models never download."""
    config = EngineConfig(startup, "", "sd15", "data", models=(TINY, SDXL, SD15))
    assert cache_only(entry, config) is expected


def test_a_member_request_for_an_uncached_hub_model_is_refused_without_evicting(tmp_path: Path) -> None:
    """Asking for sdxl while tiny is loaded: a ModelLoadError that says how to pull it; tiny stays loaded."""
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(tmp_path), models=(TINY, SDXL), max_loaded_models=1)
    cache = ModelCache(config)
    loaded = cache.get("tiny")
    with pytest.raises(ModelLoadError) as caught:
        cache.get("sdxl")
    message = str(caught.value)
    assert "is not downloaded on this machine" in message
    assert "python -m bot models pull sdxl" in message
    assert cache.loaded_names == ["tiny"]
    assert cache.get("tiny") is loaded
