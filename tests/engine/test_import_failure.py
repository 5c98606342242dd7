"""An engine whose libraries do not import is reported as one line with the cause and what to do."""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from engine.import_failure import TORCH_FLOOR, describe_import_failure, release, root_cause
from tests.ahead import Command, Ran, ahead, child_environment

ROOT = Path(__file__).resolve().parents[2]


def _generate(tmp_path: Path, shadow: Path) -> Command:
    """``python -m bot generate`` on the tiny model with ``shadow`` ahead of the installed packages."""
    environment = child_environment(
        PYTHONPATH=os.pathsep.join([str(shadow), str(ROOT)]),
        IMAGINE_MODEL="tiny",
        IMAGINE_DATA_DIR=str(tmp_path / "data"),
    )
    return Command(
        [sys.executable, "-m", "bot", "generate", "a red fox", "-o", str(tmp_path / "fox.png")], tmp_path, environment
    )


def _old_torch(shadow: Path) -> None:
    """Installed-package metadata that says torch 2.5.1, found before the real torch's: transformers reads the
    version from there, turns PyTorch off and fails on import exactly as it does on an old base image."""
    info = shadow / "torch-2.5.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1\n", encoding="utf-8")


def _broken_diffusers(shadow: Path) -> None:
    """A stray ``diffusers`` package that fails on import, found before the installed one."""
    (shadow / "diffusers").mkdir(parents=True)
    (shadow / "diffusers" / "__init__.py").write_text(
        "raise ImportError(\"cannot import name 'cached_download' from 'huggingface_hub'\")\n", encoding="utf-8"
    )


def _generate_with_shadow(folder: Path, params: dict[str, Any]) -> list[Command]:
    shadow = folder / "shadow"
    params["make_shadow"](shadow)
    return [_generate(folder, shadow)]


@pytest.mark.slow
@ahead(_generate_with_shadow)
@pytest.mark.parametrize(
    ("make_shadow", "fragments"),
    [
        (_old_torch, ["torch 2.5.1 is too old for transformers", "name 'nn' is not defined", 'torch>=2.6"']),
        (_broken_diffusers, ["cannot import name 'cached_download'", "diffusers/__init__.py", "reinstall"]),
    ],
    ids=["old-torch", "broken-diffusers"],
)
def test_import_failure_reaches_the_owner_as_one_line(
    ran: Ran, make_shadow: Callable[[Path], None], fragments: list[str]
) -> None:
    """The engine really fails to import; the worker's error is one line naming the cause, no traceback."""
    (completed,) = ran.results
    assert completed.returncode == 1, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, completed.stderr
    assert errors[0].startswith("error: the engine cannot import its libraries: "), errors[0]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in completed.stderr
    assert "exited" not in completed.stderr


def _build_check(folder: Path, params: dict[str, Any]) -> list[Command]:
    shadow = folder / "shadow"
    shadow.mkdir()
    if params["old_torch"]:
        _old_torch(shadow)
    environment = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_VERBOSITY"}
    environment["PYTHONPATH"] = os.pathsep.join([str(shadow), str(ROOT)])
    return [Command([sys.executable, "-m", "engine.import_failure"], folder, environment)]


@pytest.mark.slow
@ahead(_build_check)
@pytest.mark.parametrize("old_torch", [False, True], ids=["fitting", "old-torch"])
def test_the_image_build_check(ran: Ran, old_torch: bool) -> None:
    """``python -m engine.import_failure`` (a step of the Docker build) passes here and fails on an old torch."""
    (completed,) = ran.results
    output = (completed.stdout + completed.stderr).strip().splitlines()
    assert len(output) == 1, output
    if old_torch:
        assert completed.returncode == 1
        assert output[0].startswith("error: the engine cannot import its libraries: torch 2.5.1 is too old")
    else:
        assert completed.returncode == 0
        assert output[0].startswith("the engine's libraries import: torch ")


def test_torch_floor_is_the_one_in_pyproject() -> None:
    """The engine's idea of the oldest usable torch is pyproject.toml's floor."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (torch,) = [Requirement(text) for text in project["dependencies"] if Requirement(text).name == "torch"]
    floors = [spec.version for spec in torch.specifier if spec.operator == ">="]
    assert floors == [".".join(str(part) for part in TORCH_FLOOR)]


@pytest.mark.parametrize(
    ("version", "expected"),
    [("2.5.1", (2, 5, 1)), ("2.5.1+cu124", (2, 5, 1)), ("2.6.0a0+git1234", (2, 6, 0)), ("2.13.0+cpu", (2, 13, 0))],
)
def test_release_reads_the_leading_numbers(version: str, expected: tuple[int, ...]) -> None:
    """Local and pre-release suffixes do not hide the release numbers."""
    assert release(version) == expected
    assert (release(version) >= TORCH_FLOOR) == (expected[:2] >= TORCH_FLOOR)


def test_a_missing_library_is_named() -> None:
    """A library that is not installed at all is named, with the way to install it."""
    with pytest.raises(ModuleNotFoundError) as caught:
        importlib.import_module("compel_not_installed_here")
    missing = caught.value
    wrapped = RuntimeError("Failed to import diffusers.loaders (look up to see its traceback)")
    wrapped.__cause__ = missing
    assert root_cause(wrapped) is missing
    line = describe_import_failure(wrapped)
    assert "\n" not in line
    assert "No module named 'compel_not_installed_here'" in line and "pip install -e ." in line
