"""The image safety check in the engine: diffusers' real StableDiffusionSafetyChecker (tiny, random weights, built
in code) flags images above its concept threshold, and a rendered task that asks for a check reports each image's
verdict with its files."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from PIL import Image

from engine.protocol import EngineConfig, RenderTask, TaskDone, TaskFailed
from engine.safety import FLAG_REASON, SafetyCheckError, SafetyCheckers, load_safety_checker
from tests.builders.tiny_safety import FLAG_ALL, FLAG_NONE, build_tiny_safety_checker
from tests.engine.rendering import run_group_here

BLACK = Image.new("RGB", (64, 48), (0, 0, 0))
WHITE = Image.new("RGB", (64, 48), (255, 255, 255))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("safety")


@pytest.fixture(scope="module")
def flag_all(root: Path) -> Path:
    return build_tiny_safety_checker(root / "flag-all", threshold=FLAG_ALL)


@pytest.fixture(scope="module")
def flag_none(root: Path) -> Path:
    return build_tiny_safety_checker(root / "flag-none", threshold=FLAG_NONE)


def test_the_checker_is_diffusers_own_class_loaded_from_its_folder(flag_all: Path) -> None:
    """The folder loads through from_pretrained as diffusers' StableDiffusionSafetyChecker with its thresholds."""
    checker = load_safety_checker(str(flag_all), "cpu", torch.float32)
    assert type(checker.model) is StableDiffusionSafetyChecker
    assert torch.all(checker.model.concept_embeds_weights == FLAG_ALL)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (FLAG_ALL, (FLAG_REASON, FLAG_REASON)),
        (FLAG_NONE, ("", "")),
    ],
)
def test_the_concept_threshold_decides(root: Path, threshold: float, expected: tuple[str, ...]) -> None:
    """Below every similarity each image is flagged with the reason; above every one none is."""
    folder = build_tiny_safety_checker(root / f"threshold-{threshold}", threshold=threshold)
    assert load_safety_checker(str(folder), "cpu", torch.float32).check([BLACK, WHITE]) == expected


def test_each_image_gets_its_own_verdict(root: Path) -> None:
    """A concept aimed at the white image flags it and leaves the black one, in the order they were given."""
    folder = build_tiny_safety_checker(root / "aimed", threshold=0.9, aim_at=WHITE)
    checker = load_safety_checker(str(folder), "cpu", torch.float32)
    assert checker.check([BLACK, WHITE, BLACK]) == ("", FLAG_REASON, "")


def test_a_pipeline_folder_with_safety_checker_and_feature_extractor_loads(root: Path) -> None:
    """A Stable Diffusion pipeline folder keeps them in safety_checker/ and feature_extractor/."""
    folder = build_tiny_safety_checker(root / "pipeline", threshold=FLAG_ALL, pipeline_layout=True)
    assert load_safety_checker(str(folder), "cpu", torch.float32).check([BLACK]) == (FLAG_REASON,)


@pytest.mark.parametrize(
    ("classifier", "fragment"),
    [
        ("", "no [safety] classifier is configured"),
        ("/nowhere/safety-checker", "folder /nowhere/safety-checker does not exist"),
    ],
)
def test_a_classifier_that_cannot_load_says_what_to_fix(root: Path, classifier: str, fragment: str) -> None:
    """The error names the setting to change."""
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(root), device="cpu", safety_classifier=classifier)
    with pytest.raises(SafetyCheckError, match=re.escape(fragment)):
        SafetyCheckers().get(config)


def test_a_folder_that_is_not_a_checker_is_a_clear_error(tmp_path: Path) -> None:
    """An empty folder fails with what [safety] classifier must point at."""
    with pytest.raises(SafetyCheckError, match=r"point \[safety\] classifier at a StableDiffusionSafetyChecker"):
        load_safety_checker(str(tmp_path), "cpu", torch.float32)


class _Inbox:
    def is_cancelled(self, job_id: int) -> bool:
        return False


class _Conn:
    def send(self, message: Any) -> None:
        pass


def _task(root: Path, job_id: int, *, check: bool) -> RenderTask:
    task = RenderTask(job_id, "a fox", "", 64, 48, 2, 5.0, (1, 2), "euler", str(root / "images" / str(job_id)))
    return dataclasses.replace(task, safety_check=check)


def _render(config: EngineConfig, tasks: list[RenderTask]) -> list[TaskDone | TaskFailed]:
    from engine.pipelines import ModelCache

    root = Path(config.data_dir).resolve()
    return run_group_here(ModelCache(config), config, tasks, _Inbox(), _Conn(), root)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_rendered_task_reports_each_image_flagged_with_its_files(root: Path, flag_all: Path) -> None:
    """Of one batch, the task that asks for a check gets a verdict per image (its files written all the same); the
    one that does not gets none."""
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(root), max_batch=2, safety_classifier=str(flag_all))
    checked, unchecked = _render(config, [_task(root, 1, check=True), _task(root, 2, check=False)])
    assert isinstance(checked, TaskDone) and isinstance(unchecked, TaskDone)
    assert checked.safety == (FLAG_REASON, FLAG_REASON)
    assert all(Path(path).is_file() for path in checked.paths) and Path(checked.grid_path).is_file()
    assert unchecked.safety == ()


@pytest.mark.slow
def test_a_task_whose_check_cannot_run_fails_instead_of_going_out_unchecked(root: Path) -> None:
    """No classifier configured: the job fails with the reason, never reported as if it passed."""
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(root))
    (failed,) = _render(config, [_task(root, 3, check=True)])
    assert isinstance(failed, TaskFailed)
    assert failed.reason == "internal" and "safety check could not run" in failed.message
