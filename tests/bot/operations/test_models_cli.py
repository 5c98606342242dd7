"""``python -m bot models list|pull`` and the torch-free check of whether a model is on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config.model_registry import ModelSpec
from engine.model_sources import hub_snapshot, model_is_present
from tests.ahead import Command, Interaction, Ran, ahead
from tests.bot.operations.test_cli import cli_command

MINE_TOML = """\
model = "tiny"
[models.mine]
source = "{folder}"
[models.art]
source = "someone/art-model"
"""


def _toml(tmp_path: Path, text: str) -> dict[str, str]:
    toml = tmp_path / "bot.toml"
    toml.write_text(text)
    return {"IMAGINE_CONFIG": str(toml), "IMAGINE_DATA_DIR": str(tmp_path / "data")}


def _table(stdout: str) -> dict[str, list[str]]:
    """Rows of ``models list`` by model name, split on runs of two or more spaces."""
    import re

    rows = {}
    for line in stdout.splitlines()[1:]:
        cells = [cell for cell in re.split(r"\s{2,}", line.strip().lstrip("*").strip()) if cell]
        if len(cells) >= 5:
            rows[cells[0]] = cells
    return rows


def _list_with_a_folder_model(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    mine = folder / "mine"
    mine.mkdir()
    (mine / "model_index.json").write_text("{}")
    return [cli_command("models", "list", cwd=folder, env=_toml(folder, MINE_TOML.format(folder=mine)))]


@ahead(_list_with_a_folder_model)
def test_models_list_shows_source_family_members_and_disk(ran: Ran) -> None:
    """Each model with its family, whether members may pick it, whether it is on disk, and its source."""
    folder = ran.folder / "mine"
    (completed,) = ran.results
    assert completed.returncode == 0, completed.stderr
    rows = _table(completed.stdout)
    assert rows["tiny"] == ["tiny", "sd15", "yes", "built on first use", "tiny: tiny:sd15"]
    assert rows["mine"] == ["mine", "sd15", "yes", "yes", f"folder: {folder}"]
    assert rows["art"][:4] == ["art", "sd15", "yes", "no (python -m bot models pull art)"]
    assert rows["sdxl"][:4] == ["sdxl", "sdxl", "no", "no (python -m bot models pull sdxl)"]
    assert rows["sd15"][2] == "no" and rows["tiny-sdxl"][2] == "no"
    assert "* the default model" in completed.stdout


def _pull_then_list(folder: Path, _params: dict[str, object]) -> list[Command]:
    env = {"IMAGINE_MODEL": "tiny", "IMAGINE_DATA_DIR": str(folder / "data")}
    return [
        cli_command("models", "pull", "tiny-sdxl", cwd=folder, env=env),
        cli_command("models", "list", cwd=folder, env=env),
    ]


@pytest.mark.slow
@ahead(_pull_then_list)
def test_models_pull_builds_a_tiny_model(ran: Ran) -> None:
    """pull of a tiny model builds it in the data folder (in a child process); list then shows it on disk."""
    pulled, listed = ran.results
    assert pulled.returncode == 0, pulled.stderr
    assert "model tiny-sdxl: tiny sdxl model ready at" in pulled.stdout
    assert (ran.folder / "data" / "models" / "tiny-sdxl" / "model_index.json").is_file()
    assert _table(listed.stdout)["tiny-sdxl"][3].startswith("yes (full precision, ")  # no fp16 variant built


def _pull_from_an_unreachable_hub(folder: Path, params: dict[str, Any]) -> list[Command | Interaction]:
    env = _toml(folder, 'model = "tiny"\n[models.art]\nsource = "someone/art-model"\n')
    if not params["offline"]:
        env.update({"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"})  # nothing listens on port 9
    return [cli_command("models", "pull", "art", cwd=folder, env=env, timeout=120)]


@ahead(_pull_from_an_unreachable_hub)
@pytest.mark.parametrize("offline", [True, False])
def test_models_pull_of_an_unreachable_hub_model_is_one_line(ran: Ran, offline: bool) -> None:
    """With HF_HUB_OFFLINE=1, or with no route to the hub, pull fails with one clear line and exit 1."""
    (completed,) = ran.results
    assert completed.returncode == 1
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, completed.stderr
    expected = "HF_HUB_OFFLINE is set" if offline else "cannot reach the Hugging Face hub"
    assert expected in errors[0] and "someone/art-model" in errors[0]
    assert "Traceback" not in completed.stderr


def _pull_a_missing_folder(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    env = _toml(folder, MINE_TOML.format(folder=folder / "missing"))
    return [cli_command("models", "pull", "mine", cwd=folder, env=env)]


@ahead(_pull_a_missing_folder)
def test_models_pull_checks_a_local_folder(ran: Ran) -> None:
    """A local source has nothing to download: pull says whether it is complete."""
    (completed,) = ran.results
    assert completed.returncode == 2  # nothing to download: the folder or the configuration must change
    assert "error: model mine:" in completed.stderr and "is not a folder" in completed.stderr


def _fake_hub_cache(cache: Path, repo_id: str, *, with_weights: bool) -> Path:
    """A Hugging Face cache entry laid out as huggingface_hub writes it (refs/main -> snapshots/<commit>)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for folder, files in {
        "unet": ["config.json", *(["diffusion_pytorch_model.safetensors"] if with_weights else [])],
        "tokenizer": ["vocab.json"],
        "scheduler": ["scheduler_config.json"],
    }.items():
        (snapshot / folder).mkdir(parents=True)
        for name in files:
            (snapshot / folder / name).write_text("{}")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "safety_checker": [None, None],
    }
    (snapshot / "model_index.json").write_text(json.dumps(index))
    return snapshot


@pytest.mark.parametrize(("with_weights", "present"), [(True, True), (False, False)])
def test_model_is_present_reads_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_weights: bool, present: bool
) -> None:
    """A cached hub model is present only when every component it lists is there, weights included."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = _fake_hub_cache(tmp_path / "hub", "someone/art-model", with_weights=with_weights)
    spec = ModelSpec(source="someone/art-model")
    assert model_is_present(spec) is present
    assert hub_snapshot("someone/art-model") == (snapshot if present else None)
    assert model_is_present(ModelSpec(source="someone/other-model")) is False
    assert model_is_present(ModelSpec(source="tiny:sd15")) is True


def test_model_is_present_does_not_import_torch() -> None:
    """The bot may call it before charging: it never imports torch, diffusers or transformers."""
    code = (
        "import sys\n"
        "from config.model_registry import BUILTIN_MODELS\n"
        "from engine.model_sources import model_is_present\n"
        "print([model_is_present(spec) for spec in BUILTIN_MODELS.values()])\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.splitlines()[-1] == "[]"
