"""A model's ``fuse_lora`` (an LCM-LoRA): where it may come from, whether it is on this machine, and that loading
the model merges it into the weights (the same pixels as the LoRA loaded per job, and no LoRA layers left)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from config.model_registry import ModelSpec
from engine import pull
from engine.model_sources import LORA_WEIGHTS_FILE, fuse_lora_cached, fuse_lora_problem, model_is_present
from engine.pipelines import ModelLoadError, load_entry
from engine.protocol import EngineConfig, ModelEntry
from engine.samplers import make_scheduler
from engine.tiny import ensure_tiny_model
from tests.builders.tiny_lora import build_tiny_lora

HUB_LORA = "someone/lcm-lora-tiny"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fused")


@pytest.fixture(scope="module")
def lora_file(root: Path) -> Path:
    """A random LoRA for the tiny SD1.5's UNet."""
    return build_tiny_lora(ensure_tiny_model("sd15", root / "models"), root / "lora", seed=3)


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache of this test's own."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_lora(cache: Path, repo_id: str, lora_file: Path) -> Path:
    """Put ``lora_file`` in the cache as ``repo_id``'s LoRA, laid out as huggingface_hub writes it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "1" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    return Path(shutil.copyfile(lora_file, snapshot / LORA_WEIGHTS_FILE))


def _config(root: Path, startup: str = "tiny") -> EngineConfig:
    return EngineConfig(startup, "tiny:sd15", "sd15", str(root))


def _render(pipeline: object) -> np.ndarray:
    """Two images in 4 LCM steps at CFG 1, as an LCM-LoRA model renders."""
    pipeline.scheduler = make_scheduler("lcm", pipeline.scheduler.config)  # type: ignore[attr-defined]
    output = pipeline(  # type: ignore[operator]
        ["a red fox"] * 2,
        num_inference_steps=4,
        guidance_scale=1.0,
        width=64,
        height=64,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in (5, 6)],
        output_type="np",
    )
    return np.asarray(output.images)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", None),
        ("latent-consistency/lcm-lora-sdv1-5", None),
        ("org/repo.v2", None),
        ("./loras/missing.safetensors", "its fuse_lora file ./loras/missing.safetensors does not exist"),
        ("~/nowhere/lcm.safetensors", "its fuse_lora file ~/nowhere/lcm.safetensors does not exist"),
        ("lcm-lora-sdv1-5", "neither a local file (./, / or ~) nor a hub id (org/repo)"),
        ("a/b/c.safetensors", "neither a local file"),
        ("org/repo with space", "neither a local file"),
    ],
)
def test_fuse_lora_problem(value: str, problem: str | None) -> None:
    """A local LoRA must exist; anything else must look like a hub id ``org/repo``."""
    found = fuse_lora_problem(value)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_local_folder_is_not_a_lora_file(tmp_path: Path) -> None:
    """A folder where the LoRA file should be is named as such."""
    assert "is a folder, not a LoRA file" in str(fuse_lora_problem(str(tmp_path)))


def test_a_model_is_present_only_with_its_fused_lora(hub_cache: Path, lora_file: Path, tmp_path: Path) -> None:
    """A tiny model is always present; with a fused LoRA, only once the LoRA is on this machine too."""
    assert model_is_present(ModelSpec(source="tiny:sd15", fuse_lora=HUB_LORA)) is False
    cached = _cache_lora(hub_cache, HUB_LORA, lora_file)
    assert model_is_present(ModelSpec(source="tiny:sd15", fuse_lora=HUB_LORA)) is True
    assert fuse_lora_cached(HUB_LORA) == cached
    assert model_is_present(ModelSpec(source="tiny:sd15", fuse_lora=str(lora_file))) is True
    assert model_is_present(ModelSpec(source="tiny:sd15", fuse_lora=str(tmp_path / "gone.safetensors"))) is False


@pytest.mark.slow  # loads and renders three tiny models in this process
def test_a_fused_lora_renders_as_the_lora_loaded_per_job_and_leaves_no_lora_layers(root: Path, lora_file: Path) -> None:
    """Fusing at load gives the pixels of the same LoRA applied per job, differs from the base model, and leaves
    plain layers (nothing per job to load or unload)."""
    base = load_entry(ModelEntry("tiny", "tiny:sd15", "sd15"), _config(root)).pipeline
    plain = _render(base)
    base.load_lora_weights(str(lora_file))
    per_job = _render(base)
    fused = load_entry(ModelEntry("tiny-lcm", "tiny:sd15", "sd15", fuse_lora=str(lora_file)), _config(root))
    pixels = _render(fused.pipeline)
    np.testing.assert_allclose(pixels, per_job, atol=1e-5)
    assert np.abs(pixels - plain).max() > 0.01
    assert not [name for name, _module in fused.pipeline.unet.named_modules() if "lora" in name]


@pytest.mark.slow  # loads and renders three tiny models in this process
def test_a_cached_hub_lora_is_fused_without_the_network(
    root: Path, lora_file: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub LoRA in the cache loads with HF_HUB_OFFLINE set, for a model that is not the start-up one."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _cache_lora(hub_cache, HUB_LORA, lora_file)
    from_hub = load_entry(ModelEntry("tiny-lcm", "tiny:sd15", "sd15", fuse_lora=HUB_LORA), _config(root))
    from_file = load_entry(ModelEntry("tiny-lcm", "tiny:sd15", "sd15", fuse_lora=str(lora_file)), _config(root))
    np.testing.assert_array_equal(_render(from_hub.pipeline), _render(from_file.pipeline))


@pytest.mark.parametrize(
    ("startup", "fragment"),
    [
        ("tiny", "its LoRA someone/lcm-lora-tiny is not downloaded on this machine; run `python -m bot models pull"),
        ("tiny-lcm", "HF_HUB_OFFLINE is set so nothing can be fetched"),
    ],
)
def test_an_uncached_hub_lora_says_what_to_run(
    root: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch, startup: str, fragment: str
) -> None:
    """Only the start-up model may fetch its LoRA (here offline: it says so); any other says to pull it."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    entry = ModelEntry("tiny-lcm", "tiny:sd15", "sd15", fuse_lora=HUB_LORA)
    with pytest.raises(ModelLoadError, match="model 'tiny-lcm'") as caught:
        load_entry(entry, _config(root, startup=startup))
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("fuse_lora", "family", "fragment"),
    [
        ("./missing-lcm.safetensors", "sd15", "its fuse_lora file ./missing-lcm.safetensors does not exist; fix"),
        ("LORA", "sdxl", "does not fit this model"),
    ],
)
def test_a_lora_that_is_missing_or_of_another_family_is_a_clear_error(
    root: Path, lora_file: Path, fuse_lora: str, family: str, fragment: str
) -> None:
    """A missing file names the setting; an SD1.5 LoRA on an SDXL model says which family it must be for."""
    value = str(lora_file) if fuse_lora == "LORA" else fuse_lora
    entry = ModelEntry("mine", f"tiny:{family}", family, fuse_lora=value)
    with pytest.raises(ModelLoadError) as caught:
        load_entry(entry, _config(root))
    assert fragment in str(caught.value)
    assert family != "sdxl" or "is it a LoRA for the sdxl family?" in str(caught.value)


def test_pull_checks_a_local_lora_and_finds_a_cached_one(
    lora_file: Path, hub_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``models pull`` of a model with a fused LoRA: a local one is checked, a cached hub one is not fetched again."""
    assert pull.pull_fuse_lora("mine", str(lora_file)) == pull.EXIT_OK
    assert pull.pull_fuse_lora("mine", str(tmp_path / "gone.safetensors")) == pull.EXIT_USAGE
    assert "fix [models.mine] fuse_lora" in capsys.readouterr().err
    _cache_lora(hub_cache, HUB_LORA, lora_file)
    assert pull.pull_fuse_lora("mine", HUB_LORA) == pull.EXIT_OK
    assert "is on this machine" in capsys.readouterr().out


def test_pull_of_an_uncached_hub_lora_offline_fails_in_one_line(
    hub_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline, a LoRA that is not cached cannot be fetched: one line says why."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert pull.pull_fuse_lora("mine", HUB_LORA) == pull.EXIT_FAILED
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE is set" in err and len(err.strip().splitlines()) == 1
