"""SD3.5 and FLUX.1 in a real engine process through the bot's supervisor: the start-up model is FLUX.1, jobs
stream progress with latent previews, and the files carry A1111 parameters naming the flow sampler."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.running.engine_supervisor import EngineSupervisor
from engine.metadata import read_parameters
from engine.preview import preview_size
from engine.protocol import Progress, RenderTask, TaskKind
from tests.conftest import make_settings
from tests.engine.rendering import render_one
from tests.flow_models import module_engine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flow-engine")


@pytest.fixture(scope="module")
def flow_engine(data_dir: Path) -> Iterator[EngineSupervisor]:
    """One engine for the module: FLUX.1 loaded at start-up, SD3 beside it, a preview every other step."""
    yield from module_engine(make_settings(data_dir, model="tiny-flux", preview_every=2, max_loaded_models=2))


def _task(data_dir: Path, job_id: int, model: str, **changes: object) -> RenderTask:
    fields: dict[str, object] = {
        "job_id": job_id,
        "prompt": "a red fox",
        "negative_prompt": "",
        "width": 80,
        "height": 48,
        "steps": 4,
        "cfg": 3.5,
        "seeds": (5, 6),
        "sampler": "euler",
        "output_dir": str(data_dir / "images" / str(job_id)),
        "model": model,
    }
    fields.update(changes)
    return RenderTask(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("job_id", "model"), [(1, "tiny-flux"), (2, "tiny-sd3")])
async def test_a_flow_job_streams_previews_and_writes_its_images(
    flow_engine: EngineSupervisor, data_dir: Path, job_id: int, model: str
) -> None:
    """Steps 1-4 are reported, steps 2 and 4 with a JPEG preview shaped as the 80×48 image; both PNGs say how they
    were made (FLUX.1's guidance as Forge writes it)."""
    guidance = {"tiny-flux": "CFG scale: 1, Distilled CFG Scale: 3.5", "tiny-sd3": "CFG scale: 3.5"}[model]
    ready = await flow_engine.wait_ready()
    assert ready.device == "cpu"
    progress: list[Progress] = []
    done = await render_one(flow_engine, _task(data_dir, job_id, model), progress.append)
    assert [item.step for item in progress] == [1, 2, 3, 4]
    previews = [item.preview for item in progress if item.preview is not None]
    assert len(previews) == 2
    height, width = preview_size(24, 40)
    for preview in previews:
        with Image.open(io.BytesIO(preview)) as image:
            assert (image.format, image.size) == ("JPEG", (width, height))
    for path, seed in zip(done.paths, done.seeds, strict=True):
        with Image.open(path) as image:
            assert image.size == (80, 48)
        assert read_parameters(Path(path).read_bytes()) == (
            f"a red fox\nSteps: 4, Sampler: Euler, {guidance}, Seed: {seed}, Size: 80x48, Model: {model}"
        )


async def test_an_img2img_job_on_sd3_keeps_the_sources_shape(flow_engine: EngineSupervisor, data_dir: Path) -> None:
    """An upload under the data folder redrawn by SD3 at the task's size."""
    source = data_dir / "uploads" / "source.png"
    source.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.linspace(0, 255, 48 * 80 * 3).reshape(48, 80, 3).astype(np.uint8)).save(source)
    task = _task(data_dir, 3, "tiny-sd3", kind=TaskKind.IMG2IMG, init_image=str(source), strength=0.5, seeds=(1,))
    done = await render_one(flow_engine, task)
    with Image.open(done.paths[0]) as image:
        assert image.size == (80, 48)
