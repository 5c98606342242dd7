"""ControlNet jobs on the tiny models, in this process: diffusers' ControlNet pipelines really run on tiny SD1.5 and
SDXL with tiny ControlNets made from their UNets, the control image and --cw steer the images, every mode renders
(depth through a tiny DPT), img2img with a control image, a wrong family is refused, previews and cancel work."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from engine.control_sources import TINY_CONTROL_SOURCES
from engine.controlnet_models import ControlNetLoadError
from engine.metadata import read_parameters
from engine.pipelines import ModelCache, RenderCancelledError
from engine.protocol import ControlNetEntry, EngineConfig, ModelEntry, RenderTask, TaskDone, TaskFailed, TaskKind
from engine.render import Hooks, render_task
from engine.tiny_controlnet import TINY_CONDITIONING_CHANNELS, ensure_tiny_control
from tests.engine.rendering import run_group_here

pytestmark = pytest.mark.slow  # every test renders with the tiny models

MODELS = (ModelEntry("tiny", "tiny:sd15", "sd15"), ModelEntry("tiny-sdxl", "tiny:sdxl", "sdxl"))
CONTROLNETS = (
    ControlNetEntry("cn-sd15", "tiny:controlnet-sd15", "sd15"),
    ControlNetEntry("cn-sdxl", "tiny:controlnet-sdxl", "sdxl"),
)
PIPELINES = {
    ("tiny", False): "StableDiffusionControlNetPipeline",
    ("tiny-sdxl", False): "StableDiffusionXLControlNetPipeline",
    ("tiny", True): "StableDiffusionControlNetImg2ImgPipeline",
    ("tiny-sdxl", True): "StableDiffusionXLControlNetImg2ImgPipeline",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("controlnet")


@pytest.fixture(scope="module")
def config(root: Path) -> EngineConfig:
    return EngineConfig(
        "tiny",
        "tiny:sd15",
        "sd15",
        str(root),
        models=MODELS,
        controlnets=CONTROLNETS,
        depth_source="tiny:depth",
        max_loaded_models=2,
    )


@pytest.fixture(scope="module")
def cache(config: EngineConfig) -> ModelCache:
    return ModelCache(config)


def _picture(root: Path, name: str, draw: str = "square") -> Path:
    path = root / f"{name}.png"
    if not path.exists():
        image = Image.new("RGB", (80, 64), "black")
        pen = ImageDraw.Draw(image)
        if draw == "square":
            pen.rectangle((20, 12, 60, 52), fill="white")
        else:
            pen.ellipse((4, 4, 40, 60), fill=(200, 120, 40))
        image.save(path)
    return path


def _task(root: Path, **changes: Any) -> RenderTask:
    task = RenderTask(
        1,
        "a red fox",
        "",
        64,
        48,
        4,
        5.0,
        (3, 4),
        "euler_a",
        str(root / "out"),
        kind=TaskKind.CONTROL,
        model="tiny",
        control_image=str(_picture(root, "square")),
        control_mode="canny",
        controlnet="cn-sd15",
    )
    return dataclasses.replace(task, **changes)


def _hooks(steps: list[tuple[int, int, bool]] | None = None, cancel_at: int = 0, preview_every: int = 0) -> Hooks:
    seen = steps if steps is not None else []
    return Hooks(
        lambda _job, step, total, preview: seen.append((step, total, preview is not None)),
        lambda _job: bool(cancel_at) and any(step >= cancel_at for step, _total, _p in seen),
        preview_every,
    )


@contextmanager
def _counting_calls(module: torch.nn.Module) -> Iterator[list[int]]:
    calls: list[int] = []
    handle = module.register_forward_hook(lambda _module, args, _output: calls.append(args[0].shape[0]))
    try:
        yield calls
    finally:
        handle.remove()


def _pixels(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(image).astype(int) for image in images])


@pytest.mark.parametrize(("model", "controlnet"), [("tiny", "cn-sd15"), ("tiny-sdxl", "cn-sdxl")])
def test_the_controlnet_pipeline_runs_on_the_tiny_model(
    cache: ModelCache, root: Path, model: str, controlnet: str
) -> None:
    """The ControlNet pipeline diffusers picks for the family runs: the ControlNet is called at every step (the
    batch of two images, doubled for guidance), and the shared weights keep the model's dtype."""
    loaded = cache.get(model)
    dtype = loaded.pipeline.unet.dtype
    net = cache.controlnets.controlnet(controlnet, loaded.device, loaded.dtype)
    with _counting_calls(net) as calls:
        rendered = render_task(cache, _task(root, model=model, controlnet=controlnet), (), _hooks())
    assert type(loaded.pipeline_for("txt2img", net)).__name__ == PIPELINES[(model, False)]
    assert type(net).__name__ == "ControlNetModel"
    assert calls == [4] * 4
    assert [image.size for image in rendered.images] == [(64, 48)] * 2
    assert loaded.pipeline.unet.dtype == dtype
    assert loaded.pipeline_for("txt2img", net).unet is loaded.pipeline.unet  # shared, not copied


def test_the_control_image_steers_and_weight_zero_ignores_it(cache: ModelCache, root: Path) -> None:
    """Two control images give two different grids at --cw 1, and the same grid at --cw 0 (same seeds)."""
    square, blob = str(_picture(root, "square")), str(_picture(root, "blob", "blob"))

    def render(control: str, weight: float) -> np.ndarray:
        task = _task(root, control_image=control, control_weight=weight, control_mode="raw", seeds=(3,))
        return _pixels(render_task(cache, task, (), _hooks()).images)

    assert np.abs(render(square, 1.0) - render(blob, 1.0)).max() > 0
    assert (render(square, 0.0) == render(blob, 0.0)).all()
    assert np.abs(render(square, 2.0) - render(square, 1.0)).max() > 0


@pytest.mark.parametrize("mode", ["canny", "depth", "lineart", "scribble", "raw"])
def test_every_control_mode_renders(cache: ModelCache, root: Path, mode: str) -> None:
    """Each mode's map feeds the ControlNet (depth through the tiny DPT of ``tiny:depth``)."""
    rendered = render_task(cache, _task(root, control_mode=mode, seeds=(5,)), (), _hooks())
    assert [image.size for image in rendered.images] == [(64, 48)]


@pytest.mark.parametrize(("model", "controlnet"), [("tiny", "cn-sd15"), ("tiny-sdxl", "cn-sdxl")])
def test_a_control_job_with_an_init_image_is_controlnet_img2img(
    cache: ModelCache, root: Path, model: str, controlnet: str
) -> None:
    """With ``init_image`` the img2img ControlNet pipeline runs at the task's strength (what a V button asks)."""
    loaded = cache.get(model)
    net = cache.controlnets.controlnet(controlnet, loaded.device, loaded.dtype)
    task = _task(root, model=model, controlnet=controlnet, init_image=str(_picture(root, "blob", "blob")), strength=0.5)
    with _counting_calls(net) as calls:
        rendered = render_task(cache, task, (), _hooks())
    assert type(loaded.pipeline_for("img2img", net)).__name__ == PIPELINES[(model, True)]
    assert len(calls) == 2  # 4 steps at strength 0.5
    assert [info.strength for info in rendered.infos] == [0.5, 0.5]


def test_a_controlnet_of_another_family_is_refused_before_it_loads(cache: ModelCache, root: Path) -> None:
    """An SDXL ControlNet on the SD1.5 model: a clear error, and the ControlNet is not even loaded."""
    cache.controlnets._loaded.pop("cn-sdxl", None)
    with pytest.raises(ControlNetLoadError, match="'cn-sdxl' is for sdxl models but model 'tiny' is sd15"):
        render_task(cache, _task(root, controlnet="cn-sdxl"), (), _hooks())
    assert "cn-sdxl" not in cache.controlnets.loaded_names


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"controlnet": "missing"}, "ControlNet 'missing' is not in the registry"),
        ({"control_weight": 2.5}, "control_weight=2.5 must be from 0 to 2"),
        ({"control_image": ""}, "control_image is required"),
    ],
)
def test_bad_control_tasks_are_refused(cache: ModelCache, root: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_task(cache, _task(root, **changes), (), _hooks())


def test_depth_without_an_estimator_says_what_to_configure(root: Path) -> None:
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(root), models=MODELS, controlnets=CONTROLNETS)
    with pytest.raises(ControlNetLoadError, match=r"set \[depth\] source"):
        render_task(ModelCache(config), _task(root, control_mode="depth"), (), _hooks())


def test_previews_and_cancel_work_as_for_every_job(cache: ModelCache, root: Path) -> None:
    """Progress every step with a preview every second step; a cancel at step 2 stops the render."""
    steps: list[tuple[int, int, bool]] = []
    render_task(cache, _task(root), (), _hooks(steps, preview_every=2))
    assert steps == [(1, 4, False), (2, 4, True), (3, 4, False), (4, 4, True)]
    with pytest.raises(RenderCancelledError):
        render_task(cache, _task(root), (), _hooks([], cancel_at=2))


def test_controlnets_are_kept_and_the_least_recently_used_is_dropped(root: Path) -> None:
    """One ControlNet loaded at once with ``max_loaded_models = 1``: loading the other drops the first; asking
    again for the loaded one gives the same object."""
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(root), controlnets=CONTROLNETS)
    controls = ModelCache(config).controlnets
    first = controls.controlnet("cn-sd15", "cpu", torch.float32)
    assert controls.controlnet("cn-sd15", "cpu", torch.float32) is first
    controls.controlnet("cn-sdxl", "cpu", torch.float32)
    assert controls.loaded_names == ["cn-sdxl"]


@pytest.mark.parametrize("name", TINY_CONTROL_SOURCES)
def test_tiny_sources_are_real_folders_built_once(root: Path, name: str) -> None:
    """A tiny ControlNet or depth estimator is a saved diffusers/transformers folder, reused once built."""
    folder = ensure_tiny_control(name, root / "models")
    assert (folder / "config.json").is_file()
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert ensure_tiny_control(name, root / "models") == folder
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    if name.startswith("controlnet"):
        from diffusers import ControlNetModel

        loaded = ControlNetModel.from_pretrained(folder)
        assert tuple(loaded.config.conditioning_embedding_out_channels) == TINY_CONDITIONING_CHANNELS


class _Inbox:
    def is_cancelled(self, job_id: int) -> bool:
        return False


class _Conn:
    def send(self, message: object) -> None:
        pass


def test_the_engine_loop_writes_a_control_job_and_refuses_a_control_image_outside_its_folder(
    cache: ModelCache, config: EngineConfig, root: Path, tmp_path: Path
) -> None:
    """Through the engine loop's own step: the files carry A1111's ControlNet line; a control image outside the
    data folder fails the job before anything renders."""
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (8, 8)).save(outside)
    tasks = [_task(root, job_id=11, output_dir=str(root / "images" / "11")), _task(root, job_id=12)]
    tasks[1] = dataclasses.replace(tasks[1], control_image=str(outside), output_dir=str(root / "images" / "12"))
    done, failed = (run_group_here(cache, config, [task], _Inbox(), _Conn(), root.resolve())[0] for task in tasks)
    assert isinstance(done, TaskDone)
    text = read_parameters(Path(done.paths[0]).read_bytes()) or ""
    assert 'ControlNet 0: "Module: canny, Model: cn-sd15, Weight: 1"' in text
    assert isinstance(failed, TaskFailed) and failed.reason == "bad_input"
    assert "outside" in failed.message
