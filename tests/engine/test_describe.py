"""/describe in the engine: a tiny random BLIP, built in code and loaded through transformers' own from_pretrained
path, writes four distinct cleaned prompts for an image, the same ones for the same seed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.running.engine_supervisor import EngineSupervisor
from engine.describe import CaptionerLoadError, describe_image, load_captioner
from engine.protocol import EngineConfig, RenderTask, TaskDone, TaskKind
from engine.tiny_captioner import ensure_tiny_captioner
from tests.engine.rendering import render_one, run_group_here

TINY = "tiny:blip"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("describe")


@pytest.fixture(scope="module")
def config(root: Path) -> EngineConfig:
    return EngineConfig("tiny", "tiny:sd15", "sd15", str(root))


@pytest.fixture(scope="module")
def photo(root: Path) -> Path:
    """A 96x64 gradient: a 3:2 image."""
    path = root / "photo.png"
    pixels = np.linspace(0, 255, 64 * 96 * 3).reshape(64, 96, 3).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def describe_task_of(root: Path, job_id: int, image: Path, *, seed: int = 7, model: str = TINY) -> RenderTask:
    return RenderTask(
        job_id=job_id,
        prompt="",
        negative_prompt="",
        width=512,
        height=512,
        steps=20,
        cfg=0.0,
        seeds=(seed,),
        sampler="euler_a",
        output_dir=str(root / "images" / str(job_id)),
        kind=TaskKind.DESCRIBE,
        init_image=str(image),
        describe_model=model,
    )


def test_the_tiny_captioner_is_a_real_blip_folder_loaded_by_transformers(root: Path, config: EngineConfig) -> None:
    """Built once as a transformers folder (config, safetensors weights, processor, tokenizer), loaded by the Auto
    classes into the real BlipForConditionalGeneration and BlipProcessor."""
    folder = ensure_tiny_captioner("blip", root / "models")
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= {
        path.name for path in folder.iterdir()
    }
    captioner = load_captioner(TINY, config)
    assert type(captioner.model).__name__ == "BlipForConditionalGeneration"
    assert type(captioner.processor).__name__ == "BlipProcessor"
    assert load_captioner(TINY, config) is captioner  # loaded once


def test_four_distinct_clean_suggestions_the_same_for_the_same_seed(config: EngineConfig, photo: Path) -> None:
    """Four prompts, each different, each ending with the image's --ar; a seed always gives the same four, another
    seed other sampled ones (the first, the greedy caption, stays)."""
    captioner = load_captioner(TINY, config)
    with Image.open(photo) as opened:
        image = opened.convert("RGB")
    first = describe_image(captioner, image, "", 7)
    assert len(first) == 4
    assert len({text.casefold() for text in first}) == 4
    assert all(text.endswith(" --ar 3:2") and text.count("--") == 1 for text in first)
    assert all(text.removesuffix(" --ar 3:2").replace(" ", "").isalnum() for text in first)  # plain words
    assert describe_image(captioner, image, "", 7) == first
    other = describe_image(captioner, image, "", 8)
    assert other[0] == first[0]
    assert other[1:] != first[1:]


def test_a_describe_task_through_the_engine_loop_reports_its_image_and_suggestions(
    root: Path, config: EngineConfig, photo: Path
) -> None:
    """The engine loop's own step: the described image written (single and grid) and the suggestions reported."""
    from engine.pipelines import ModelCache

    class Inbox:
        def is_cancelled(self, job_id: int) -> bool:
            return False

    class Outbox:
        def send(self, message: object) -> None:
            pass

    task = describe_task_of(root, 11, photo)
    [done] = run_group_here(ModelCache(config), config, [task], Inbox(), Outbox(), root.resolve())
    assert isinstance(done, TaskDone), done
    assert len(done.suggestions) == 4
    assert (done.width, done.height) == (96, 64)
    assert Path(done.paths[0]).is_file() and Path(done.grid_path).is_file()


def test_a_hub_model_that_is_not_downloaded_is_refused_with_what_to_run(config: EngineConfig) -> None:
    """Loaded from the local cache only (never downloaded for a member's job): the message says how to fetch it."""
    with pytest.raises(CaptionerLoadError, match=r"python -m engine\.describe pull nobody/no-such-captioner"):
        load_captioner("nobody/no-such-captioner", config)


def test_an_unknown_tiny_captioner_is_refused(config: EngineConfig) -> None:
    with pytest.raises(CaptionerLoadError, match="unknown tiny captioning model"):
        load_captioner("tiny:nope", config)


@pytest.mark.slow
async def test_the_engine_process_describes(engine: EngineSupervisor, data_dir: Path) -> None:
    """The session's engine process: a describe task comes back with four suggestions and the image's files."""
    image = data_dir / "uploads" / "describe-engine.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 128), "teal").save(image)
    task = dataclasses.replace(describe_task_of(data_dir, 9_900_001, image), output_dir=str(data_dir / "images" / "d"))
    done = await render_one(engine, task)
    assert len(done.suggestions) == 4
    assert all(text.endswith(" --ar 1:2") for text in done.suggestions)
