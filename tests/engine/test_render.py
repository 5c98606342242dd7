"""Every task kind, sampler, LoRA, prompt weighting and CPU memory option on the tiny models, in this process."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.pipelines import ModelCache, ModelLoadError, RenderCancelledError, load_entry
from engine.protocol import EngineConfig, LoraEntry, MemoryOptions, ModelEntry, RenderTask
from engine.render import Hooks, render_group, render_task
from engine.samplers import SAMPLERS
from engine.tiny import ensure_tiny_model
from tests.builders.tiny_lora import build_tiny_lora

pytestmark = pytest.mark.slow  # every task kind, sampler and option renders here: the engine's long matrix

MODELS = (ModelEntry("tiny", "tiny:sd15", "sd15"), ModelEntry("tiny-sdxl", "tiny:sdxl", "sdxl"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("render")


@pytest.fixture(scope="module")
def lora(root: Path) -> LoraEntry:
    model_dir = ensure_tiny_model("sd15", root / "models")
    return LoraEntry("grain", str(build_tiny_lora(model_dir, root / "loras" / "grain")))


@pytest.fixture(scope="module")
def config(root: Path, lora: LoraEntry) -> EngineConfig:
    return EngineConfig("tiny", "tiny:sd15", "sd15", str(root), models=MODELS, loras=(lora,), max_loaded_models=2)


@pytest.fixture(scope="module")
def cache(config: EngineConfig) -> ModelCache:
    return ModelCache(config)


@pytest.fixture(scope="module")
def source_image(root: Path) -> Path:
    path = root / "source.png"
    gradient = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)
    Image.fromarray(gradient).save(path)
    return path


@pytest.fixture(scope="module")
def mask(root: Path) -> Path:
    path = root / "mask.png"
    image = Image.new("L", (32, 32), 0)
    image.paste(255, (8, 8, 24, 24))
    image.save(path)
    return path


class Recorder:
    """Hooks that record progress and cancel a job from a given step on."""

    def __init__(self, cancel_at: int = 0, preview_every: int = 0) -> None:
        self.steps: list[tuple[int, int, int, bool]] = []
        self.cancel_at = cancel_at
        self.hooks = Hooks(self._on_step, self._cancelled, preview_every)

    def _on_step(self, job_id: int, step: int, total: int, preview: bytes | None) -> None:
        self.steps.append((job_id, step, total, preview is not None))

    def _cancelled(self, job_id: int) -> bool:
        return bool(self.cancel_at) and any(step >= self.cancel_at for _j, step, _t, _p in self.steps)


def _task(root: Path, **changes: object) -> RenderTask:
    task = RenderTask(1, "a red fox", "", 64, 64, 4, 5.0, (7,), "euler_a", str(root / "out"))
    return dataclasses.replace(task, **changes)  # type: ignore[arg-type]


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


@pytest.fixture(params=["tiny", "tiny-sdxl"])
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


KIND_CASES = [
    ("txt2img", {}, (64, 64)),
    ("img2img", {"strength": 0.6}, (64, 64)),
    ("variation", {"strength": 0.35}, (64, 64)),
    ("upscale", {"strength": 0.3}, (128, 128)),
    ("inpaint", {}, (64, 64)),
    ("zoom", {"zoom": 1.5}, (64, 64)),
    ("pan", {"pan": "left"}, (96, 64)),
    ("pan", {"pan": "down"}, (64, 96)),
]


@pytest.mark.parametrize(("kind", "changes", "size"), KIND_CASES)
def test_every_kind_renders_at_the_expected_size(
    cache: ModelCache, root: Path, source_image: Path, mask: Path, model: str, kind: str, changes: dict, size: tuple
) -> None:
    """Each kind runs on both families, reports progress, and gives its images at the expected size."""
    recorder = Recorder()
    task = _task(
        root, kind=kind, model=model, init_image=str(source_image), mask_image=str(mask), seeds=(1, 2), **changes
    )
    rendered = render_task(cache, task, (), recorder.hooks)
    assert [image.size for image in rendered.images] == [size, size]
    assert [info.seed for info in rendered.infos] == [1, 2]
    assert recorder.steps and recorder.steps[-1][1] == recorder.steps[-1][2]


@pytest.mark.parametrize("kind", ["txt2img", "img2img", "inpaint", "zoom"])
def test_same_seed_same_pixels(cache: ModelCache, root: Path, source_image: Path, mask: Path, kind: str) -> None:
    """Rendering twice with one seed gives identical pixels; another seed does not."""
    task = _task(root, kind=kind, init_image=str(source_image), mask_image=str(mask))
    first = render_task(cache, task, (), Recorder().hooks).images[0]
    again = render_task(cache, task, (), Recorder().hooks).images[0]
    other = render_task(cache, dataclasses.replace(task, seeds=(8,)), (), Recorder().hooks).images[0]
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_inpaint_mask_of_another_shape_is_a_clear_error(cache: ModelCache, root: Path, source_image: Path) -> None:
    wide = root / "wide-mask.png"
    Image.new("L", (64, 32), 255).save(wide)
    task = _task(root, kind="inpaint", init_image=str(source_image), mask_image=str(wide))
    with pytest.raises(ValueError, match=r"the mask is 64x32 but the image is 64x64"):
        render_task(cache, task, (), Recorder().hooks)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"kind": "img2img"}, "init_image is required"),
        ({"kind": "img2img", "init_image": "/nonexistent.png"}, "does not exist"),
        ({"kind": "img2img", "init_image": __file__}, "is not an image"),
        ({"kind": "variation", "init_image": "SRC", "strength": 0.0}, "strength=0 must be above 0"),
        ({"kind": "zoom", "init_image": "SRC", "zoom": 3.0}, "zoom=3 is not one of 1.5, 2"),
        ({"kind": "pan", "init_image": "SRC", "pan": "north"}, "pan='north' is not one of left"),
        ({"kind": "txt2img", "width": 60}, "width=60 must be a positive multiple of 8"),
        ({"kind": "paint"}, "kind='paint' is not one of"),
        ({"model": "nope"}, "model 'nope' is not in the registry"),
        ({"sampler": "heun9"}, "unknown sampler 'heun9'"),
    ],
)
def test_bad_input_is_a_clear_error(cache: ModelCache, root: Path, source_image: Path, changes: dict, fragment: str):
    if changes.get("init_image") == "SRC":
        changes = {**changes, "init_image": str(source_image)}
    with pytest.raises(ValueError, match=fragment):
        render_task(cache, _task(root, **changes), (), Recorder().hooks)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_runs(cache: ModelCache, root: Path, sampler: str) -> None:
    rendered = render_task(cache, _task(root, sampler=sampler, steps=3), (), Recorder().hooks)
    assert rendered.images[0].size == (64, 64)


def test_sweep_renders_every_combination_into_a_labelled_grid(cache: ModelCache, root: Path) -> None:
    task = _task(root, kind="sweep", sweep=(("cfg", ("3", "7")), ("steps", ("2", "3")), ("prompt", ("red", "blue"))))
    recorder = Recorder()
    rendered = render_task(cache, task, (), recorder.hooks)
    assert len(rendered.images) == 8
    assert [info.label for info in rendered.infos][:3] == [
        "cfg=3, steps=2, prompt=red",
        "cfg=3, steps=2, prompt=blue",
        "cfg=3, steps=3, prompt=red",
    ]
    assert rendered.infos[1].prompt == "a blue fox"
    assert rendered.grid is not None and rendered.grid.width == 2 * 64
    assert recorder.steps[-1][2] == 2 * 2 * (2 + 3)


def test_lora_changes_pixels_and_is_unloaded_after_the_job(cache: ModelCache, root: Path, lora: LoraEntry) -> None:
    plain = _pixels(render_task(cache, _task(root), (lora,), Recorder().hooks).images[0])
    strong = render_task(cache, _task(root, prompt="a red fox <lora:grain:0.8>"), (lora,), Recorder().hooks)
    weak = render_task(cache, _task(root, prompt="a red fox <lora:grain:0.2>"), (lora,), Recorder().hooks)
    after = _pixels(render_task(cache, _task(root), (lora,), Recorder().hooks).images[0])
    assert strong.loras == (("grain", 0.8),)
    assert strong.infos[0].prompt == "a red fox"
    assert np.abs(_pixels(strong.images[0]) - plain).max() > 0
    assert np.abs(_pixels(strong.images[0]) - _pixels(weak.images[0])).max() > 0
    assert np.array_equal(after, plain)


def test_unknown_lora_is_a_clear_error(cache: ModelCache, root: Path, lora: LoraEntry) -> None:
    with pytest.raises(ValueError, match=r"unknown LoRA 'nope'.*known LoRAs: grain"):
        render_task(cache, _task(root, prompt="a fox <lora:nope:1>"), (lora,), Recorder().hooks)


def test_prompt_weighting_and_long_prompts(cache: ModelCache, root: Path, model: str) -> None:
    """A1111 weights change the picture; a prompt past 77 tokens renders (compel chunks it)."""
    plain = _pixels(render_task(cache, _task(root, model=model), (), Recorder().hooks).images[0])
    weighted = _pixels(
        render_task(cache, _task(root, model=model, prompt="a (red:1.6) fox"), (), Recorder().hooks).images[0]
    )
    assert np.abs(weighted - plain).max() > 0
    long_prompt = " ".join(f"word{i}" for i in range(150))
    rendered = render_task(
        cache, _task(root, model=model, prompt=long_prompt, negative_prompt="blur"), (), Recorder().hooks
    )
    assert rendered.images[0].size == (64, 64)


def test_batch_of_compatible_tasks_is_one_call_with_the_same_pixels(cache: ModelCache, root: Path) -> None:
    first, second = _task(root, job_id=1), _task(root, job_id=2, prompt="a cat", seeds=(3, 4))
    recorder = Recorder()
    together = render_group(cache, [first, second], (), recorder.hooks)
    assert [len(r.images) for r in together] == [1, 2]
    assert {job for job, step, _t, _p in recorder.steps if step == 1} == {1, 2}
    assert len(recorder.steps) == 2 * 4  # one call: each step reported once per task
    alone = render_task(cache, second, (), Recorder().hooks)
    difference = np.abs(_pixels(together[1].images[1]) - _pixels(alone.images[1])).max()
    assert difference <= 2


def test_previews_arrive_every_n_steps(cache: ModelCache, root: Path, model: str) -> None:
    recorder = Recorder(preview_every=2)
    render_task(cache, _task(root, model=model), (), recorder.hooks)
    assert [preview for _j, _s, _t, preview in recorder.steps] == [False, True, False, True]


def test_cancel_stops_within_one_step(cache: ModelCache, root: Path) -> None:
    recorder = Recorder(cancel_at=2)
    with pytest.raises(RenderCancelledError):
        render_task(cache, _task(root, steps=30), (), recorder.hooks)
    assert max(step for _j, step, _t, _p in recorder.steps) == 2


def test_lru_keeps_at_most_max_loaded_models(config: EngineConfig) -> None:
    cache = ModelCache(dataclasses.replace(config, max_loaded_models=1))
    cache.get("tiny")
    cache.get("tiny-sdxl")
    assert cache.loaded_names == ["tiny-sdxl"]
    shared = cache.get("tiny-sdxl")
    assert shared.pipeline_for("img2img").unet is shared.pipeline.unet  # from_pipe shares the weights


@pytest.mark.parametrize(
    "memory",
    [
        MemoryOptions(attention_slicing=True),
        MemoryOptions(vae_slicing=True, vae_tiling=True),
        MemoryOptions(channels_last=True, sdpa=False),
        MemoryOptions(offload="auto"),
        MemoryOptions(offload="model"),
    ],
)
def test_memory_options_that_run_on_cpu(config: EngineConfig, root: Path, memory: MemoryOptions) -> None:
    cache = ModelCache(dataclasses.replace(config, memory=memory))
    rendered = render_task(cache, _task(root, seeds=(1, 2)), (), Recorder().hooks)
    assert len(rendered.images) == 2


@pytest.mark.parametrize("mode", ["8bit", "4bit"])
def test_quantization_without_cuda_is_a_clear_error(config: EngineConfig, mode: str) -> None:
    with pytest.raises(ModelLoadError, match=rf"quantize='{mode}' needs a CUDA GPU"):
        load_entry(MODELS[0], dataclasses.replace(config, memory=MemoryOptions(quantize=mode)))


def test_single_file_without_a_config_folder_is_a_clear_error(config: EngineConfig, root: Path) -> None:
    checkpoint = root / "model.safetensors"
    checkpoint.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="needs `config` set to a local diffusers folder"):
        load_entry(ModelEntry("mine", str(checkpoint), "sd15"), config)


@pytest.mark.parametrize(("family", "folder_model"), [("sd15", "tiny"), ("sdxl", "tiny-sdxl")])
def test_single_file_checkpoint_loads_offline_and_renders_like_the_folder(
    config: EngineConfig, root: Path, family: str, folder_model: str
) -> None:
    """An LDM-format .safetensors with a local config folder loads through from_single_file, same pixels."""
    from tests.builders.ldm_export import export_checkpoint

    folder = ensure_tiny_model(family, root / "models")
    checkpoint = export_checkpoint(folder, root / "checkpoints" / f"tiny-{family}.safetensors")
    entry = ModelEntry("single", str(checkpoint), family, config=str(folder))
    cache = ModelCache(dataclasses.replace(config, models=(*MODELS, entry)))
    from_file = render_task(cache, _task(root, model="single", negative_prompt="blur"), (), Recorder().hooks).images[0]
    from_folder = render_task(
        cache, _task(root, model=folder_model, negative_prompt="blur"), (), Recorder().hooks
    ).images[0]
    assert from_file.tobytes() == from_folder.tobytes()


def test_tile_makes_a_seamless_texture_and_restores_the_model(tmp_path: Path) -> None:
    """--tile pads convolutions circularly for that job only: the result differs, and the next job is as before."""
    import torch

    from engine.render import seamless

    class Holder:
        unet = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1))
        vae = None

    pipe = Holder()
    with seamless(pipe, enabled=True):
        assert pipe.unet[0].padding_mode == "circular"
    assert pipe.unet[0].padding_mode == "zeros"
    with seamless(pipe, enabled=False):
        assert pipe.unet[0].padding_mode == "zeros"


def test_tile_changes_the_render_and_leaves_the_next_job_alone(
    root: Path, cache: ModelCache, config: EngineConfig
) -> None:
    """A --tile job renders differently; the same job without it afterwards matches one rendered before it."""
    plain = _task(root)
    before = render_group(cache, [plain], config.loras, Recorder().hooks)[0].images[0]
    tiled = render_group(cache, [dataclasses.replace(plain, tile=True)], config.loras, Recorder().hooks)[0].images[0]
    after = render_group(cache, [plain], config.loras, Recorder().hooks)[0].images[0]
    assert np.abs(_pixels(before) - _pixels(tiled)).max() > 0
    assert np.array_equal(_pixels(before), _pixels(after))


@pytest.mark.parametrize("pan", ["left", "up"])
def test_a_pan_of_an_exact_ratio_image_renders_the_size_the_bot_priced(
    cache: ModelCache, root: Path, model: str, pan: str
) -> None:
    """A 72x48 result (3:2 on the tiny models) pans to what ``follow_up_size`` says, on both families."""
    from bot.jobs import Kind
    from bot.requests.request_options import follow_up_size

    wide = root / "wide.png"
    Image.new("RGB", (72, 48), (40, 90, 160)).save(wide)
    task = _task(root, kind="pan", model=model, init_image=str(wide), seeds=(3,), pan=pan)
    rendered = render_task(cache, task, (), Recorder().hooks)
    assert rendered.images[0].size == follow_up_size(Kind.PAN, (72, 48), 8, zoom=2.0, pan=pan)
