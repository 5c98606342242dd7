"""Multi-prompts, --chaos and --stop on the tiny SD1.5 and SDXL models, through the engine's own render path and the
real diffusers pipelines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.pipelines import ModelCache
from engine.prompt_weights import chaos_cfg
from engine.protocol import EngineConfig, ModelEntry, RenderTask
from engine.render import Hooks, Rendered, render_task

pytestmark = pytest.mark.slow  # renders

MODELS = (ModelEntry("tiny", "tiny:sd15", "sd15"), ModelEntry("tiny-sdxl", "tiny:sdxl", "sdxl"))
PIPELINES = {"tiny": "StableDiffusionPipeline", "tiny-sdxl": "StableDiffusionXLPipeline"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prompt-weights")


@pytest.fixture(scope="module")
def cache(root: Path) -> ModelCache:
    return ModelCache(EngineConfig("tiny", "tiny:sd15", "sd15", str(root), models=MODELS, max_loaded_models=2))


@pytest.fixture(params=["tiny", "tiny-sdxl"])
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Steps:
    """Hooks that record each reported (step, total)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.hooks = Hooks(lambda _job, step, total, _preview: self.seen.append((step, total)), lambda _job: False)


def _task(root: Path, **changes: object) -> RenderTask:
    task = RenderTask(1, "a cat", "", 64, 64, 4, 5.0, (7,), "euler_a", str(root / "out"))
    return dataclasses.replace(task, **changes)  # type: ignore[arg-type]


def _render(cache: ModelCache, task: RenderTask, steps: Steps | None = None) -> Rendered:
    return render_task(cache, task, (), (steps or Steps()).hooks)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def _difference(first: Image.Image, second: Image.Image) -> tuple[int, float]:
    """Largest and mean absolute difference of two images' pixels."""
    difference = np.abs(_pixels(first) - _pixels(second))
    return int(difference.max()), float(difference.mean())


def test_a_part_weighted_minus_half_renders_as_no_and_weights_change_the_picture(
    cache: ModelCache, root: Path, model: str
) -> None:
    """`a cat:: blur::-0.5` renders what `a cat --no blur` renders (SDXL's pooled embeddings are blended too);
    moving weight from one part to another changes the image (at CFG 20, where the random tiny text encoders
    show it)."""
    no = _render(cache, _task(root, model=model, negative_prompt="blur")).images[0]
    assert type(cache.get(model).pipeline).__name__ == PIPELINES[model]
    parts = (("a cat", 1.0), ("blur", -0.5))
    weighted = _render(cache, _task(root, model=model, prompt="a cat:: blur::-0.5", weighted_prompts=parts))
    assert _difference(no, weighted.images[0])[0] <= 1
    assert weighted.infos[0].prompt == "a cat:: blur::-0.5"  # the metadata keeps what was typed
    dogs = [
        _render(cache, _task(root, model=model, cfg=20.0, weighted_prompts=(("a cat", 1.0), ("a dog", weight))))
        for weight in (2.0, 0.5)
    ]
    more_dog, less_dog = dogs
    assert _difference(more_dog.images[0], less_dog.images[0])[0] > 5


def test_chaos_gives_each_image_its_own_cfg_reproducibly(cache: ModelCache, root: Path, model: str) -> None:
    """--chaos 100 at CFG 20: each image renders at its seed's jittered CFG (as it would alone at that CFG, not at
    its neighbour's), its metadata says which, and the same seed and chaos give the same pixels again."""
    task = _task(root, model=model, cfg=20.0, chaos=100, seeds=(7, 8))
    first = _render(cache, task)
    again = _render(cache, task)
    assert all(_difference(a, b)[0] == 0 for a, b in zip(first.images, again.images, strict=True))
    cfgs = [info.cfg for info in first.infos]
    assert cfgs == [chaos_cfg(20.0, 100, 7), chaos_cfg(20.0, 100, 8)]
    assert len({20.0, *cfgs}) == 3
    own = _render(cache, _task(root, model=model, cfg=cfgs[0], seeds=(7,))).images[0]
    neighbours = _render(cache, _task(root, model=model, cfg=cfgs[1], seeds=(7,))).images[0]
    assert _difference(first.images[0], own)[1] < 0.05 < _difference(first.images[0], neighbours)[1]


def test_stop_ends_at_its_share_of_the_steps_and_decodes(cache: ModelCache, root: Path) -> None:
    """--stop 50 of 4 steps runs 2 (progress says 2 of 2) and decodes an unfinished image; --stop 100 runs all."""
    stopped_steps, full_steps = Steps(), Steps()
    stopped = _render(cache, _task(root, stop=50), stopped_steps)
    full = _render(cache, _task(root), full_steps)
    assert stopped_steps.seen == [(1, 2), (2, 2)]
    assert full_steps.seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert stopped.images[0].size == (64, 64)
    assert _difference(stopped.images[0], full.images[0])[0] > 5
