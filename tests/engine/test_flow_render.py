"""SD3.5 and FLUX.1 on the engine, in this process, with the tiny models of the registry: the real loading path
(folder and single file), every task kind, flow-matching samplers, previews of 16-channel (and FLUX.1's packed)
latents, and the refusals a task that reaches the engine anyway meets."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from config.model_registry import BUILTIN_MODELS
from engine.flow_families import call_arguments, pixel_factor
from engine.pipelines import ModelCache, RenderCancelledError, load_entry
from engine.preview import preview_size
from engine.protocol import EngineConfig, MemoryOptions, ModelEntry, RenderTask, TaskKind
from engine.render import Hooks, render_task
from engine.tiny import ensure_tiny_model
from engine.tiny_flow import build_tiny_flux, build_tiny_sd3
from tests.builders.flow_export import export_flow_checkpoint
from tests.flow_models import FLOW_ENTRIES, FLOW_FAMILIES, flow_engine_config

pytestmark = pytest.mark.slow  # every task kind of two families renders here


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flow-render")


@pytest.fixture(scope="module")
def config(root: Path) -> EngineConfig:
    return flow_engine_config(root)


@pytest.fixture(scope="module")
def cache(config: EngineConfig) -> ModelCache:
    return ModelCache(config)


@pytest.fixture(scope="module")
def source_image(root: Path) -> Path:
    path = root / "source.png"
    Image.fromarray(np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def mask(root: Path) -> Path:
    path = root / "mask.png"
    image = Image.new("L", (64, 64), 0)
    image.paste(255, (16, 16, 48, 48))
    image.save(path)
    return path


class Recorder:
    """Hooks that record each step and decode its preview, if any."""

    def __init__(self, preview_every: int = 0) -> None:
        self.steps: list[tuple[int, int]] = []
        self.previews: list[Image.Image] = []
        self.hooks = Hooks(self._on_step, lambda _job_id: False, preview_every)

    def _on_step(self, job_id: int, step: int, total: int, preview: bytes | None) -> None:
        self.steps.append((step, total))
        if preview is not None:
            with Image.open(io.BytesIO(preview)) as image:
                image.load()
                self.previews.append(image)


def _task(root: Path, model: str, **changes: object) -> RenderTask:
    spec = BUILTIN_MODELS[model]
    task = RenderTask(1, "a red fox", "", 64, 64, 2, spec.cfg, (7,), spec.default_sampler, str(root / "out"))
    return dataclasses.replace(task, model=model, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "family", "pipeline"),
    [("tiny-sd3", "sd3", "StableDiffusion3Pipeline"), ("tiny-flux", "flux", "FluxPipeline")],
)
def test_each_family_loads_through_the_registry_entry(
    cache: ModelCache, model: str, family: str, pipeline: str
) -> None:
    """``tiny:sd3``/``tiny:flux`` load through the Auto pipeline to their family's pipeline and flow scheduler."""
    loaded = cache.get(model)
    assert (loaded.family, type(loaded.pipeline).__name__) == (family, pipeline)
    assert loaded.scheduler_config["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    assert pixel_factor(loaded.family, loaded.pipeline) == 4  # tiny VAE factor 2 × the 2×2 patch or packing


KINDS: list[tuple[TaskKind, dict[str, object], tuple[int, int], int]] = [
    (TaskKind.TXT2IMG, {}, (64, 64), 2),
    (TaskKind.TXT2IMG, {"width": 80, "height": 48}, (80, 48), 2),
    (TaskKind.IMG2IMG, {"width": 48, "height": 64, "strength": 0.6}, (48, 64), 2),
    (TaskKind.INPAINT, {"strength": 0.9}, (64, 64), 2),
    (TaskKind.VARIATION, {"strength": 0.7}, (64, 64), 2),
    (TaskKind.UPSCALE, {"upscale_factor": 2.0, "strength": 0.4}, (128, 128), 1),
    (TaskKind.ZOOM, {"zoom": 2.0}, (64, 64), 2),
    (TaskKind.PAN, {"pan": "right"}, (96, 64), 2),
]


@pytest.mark.parametrize("model", FLOW_FAMILIES)
@pytest.mark.parametrize(("kind", "changes", "size", "images"), KINDS)
def test_every_task_kind_renders(
    cache: ModelCache,
    root: Path,
    source_image: Path,
    mask: Path,
    model: str,
    kind: TaskKind,
    changes: dict[str, object],
    size: tuple[int, int],
    images: int,
) -> None:
    """Each kind gives its images at the size it should (img2img at the task's size, not the model's default)."""
    inputs = {} if kind == TaskKind.TXT2IMG else {"init_image": str(source_image)}
    if kind == TaskKind.INPAINT:
        inputs["mask_image"] = str(mask)
    task = _task(root, model, kind=kind, seeds=tuple(range(images)), **inputs, **changes)
    rendered = render_task(cache, task, (), Recorder().hooks)
    assert [image.size for image in rendered.images] == [size] * images


@pytest.mark.parametrize("model", FLOW_FAMILIES)
def test_a_sweep_renders_a_labelled_grid(cache: ModelCache, root: Path, model: str) -> None:
    """A cfg × steps sweep gives one image per cell and their grid; the same seed twice gives the same pixels."""
    task = _task(root, model, kind=TaskKind.SWEEP, sweep=(("cfg", ("2", "4")), ("steps", ("1", "2"))))
    rendered = render_task(cache, task, (), Recorder().hooks)
    assert [info.label for info in rendered.infos] == [
        "cfg=2, steps=1",
        "cfg=2, steps=2",
        "cfg=4, steps=1",
        "cfg=4, steps=2",
    ]
    assert rendered.grid is not None
    again = render_task(cache, _task(root, model, cfg=4.0, steps=2), (), Recorder().hooks)
    assert again.images[0].tobytes() == rendered.images[3].tobytes()


@pytest.mark.parametrize("model", FLOW_FAMILIES)
@pytest.mark.parametrize("size", [(64, 64), (80, 48)])
def test_a_preview_of_the_right_size_comes_back_during_a_render(
    cache: ModelCache, root: Path, model: str, size: tuple[int, int]
) -> None:
    """Every other step a JPEG preview projected from the 16-channel latents (FLUX.1's unpacked first) arrives,
    shaped as the latent is: its longest side at 256."""
    recorder = Recorder(preview_every=2)
    render_task(cache, _task(root, model, width=size[0], height=size[1], steps=4), (), recorder.hooks)
    assert recorder.steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    height, width = preview_size(size[1] // 2, size[0] // 2)  # the tiny VAE's factor is 2
    assert [image.size for image in recorder.previews] == [(width, height)] * 2
    assert all(image.format == "JPEG" for image in recorder.previews)


@pytest.mark.parametrize("model", FLOW_FAMILIES)
def test_stop_ends_early_and_a_cancel_stops_the_render(cache: ModelCache, root: Path, model: str) -> None:
    """--stop 50 runs half the steps and still gives an image; a job cancelled at step 1 raises, nothing returned."""
    recorder = Recorder()
    stopped = render_task(cache, _task(root, model, steps=4, stop=50), (), recorder.hooks)
    assert (recorder.steps, stopped.images[0].size) == ([(1, 2), (2, 2)], (64, 64))
    cancelling = Hooks(lambda *_args: None, lambda _job_id: True)
    with pytest.raises(RenderCancelledError):
        render_task(cache, _task(root, model, steps=4), (), cancelling)


def test_sd3_takes_a_negative_prompt_and_chaos_through_cfg(cache: ModelCache, root: Path) -> None:
    """SD3 guides with CFG: a negative prompt changes the image; --chaos gives each image its own CFG scale."""
    plain = render_task(cache, _task(root, "tiny-sd3"), (), Recorder().hooks).images[0]
    negative = render_task(cache, _task(root, "tiny-sd3", negative_prompt="blur"), (), Recorder().hooks).images[0]
    assert plain.tobytes() != negative.tobytes()
    chaotic = render_task(cache, _task(root, "tiny-sd3", chaos=80, seeds=(1, 2)), (), Recorder().hooks)
    assert len({info.cfg for info in chaotic.infos}) == 2


def test_flux_guidance_is_an_input_of_the_transformer(cache: ModelCache, root: Path) -> None:
    """FLUX.1's --cfg is the distilled guidance it embeds: another value, another image, from one pass per step."""
    low = render_task(cache, _task(root, "tiny-flux", cfg=1.0), (), Recorder().hooks).images[0]
    high = render_task(cache, _task(root, "tiny-flux", cfg=6.0), (), Recorder().hooks).images[0]
    assert low.tobytes() != high.tobytes()


@pytest.mark.parametrize(
    ("model", "changes", "fragment"),
    [
        ("tiny-flux", {"sampler": "euler_a"}, "sampler 'euler_a' does not work with flow-matching models"),
        ("tiny-sd3", {"sampler": "dpmpp_2m"}, "use one of: euler"),
        ("tiny-flux", {"negative_prompt": "blur"}, "`--no` has no effect on model `tiny-flux`"),
        (
            "tiny-sd3",
            {"prompt": "a (red:1.2) fox"},
            "do not apply to model `tiny-sd3` (sd3): it reads the prompt through T5",
        ),
        ("tiny-flux", {"weighted_prompts": (("a fox", 1.0), ("red", -0.5))}, "negative multi-prompt weights"),
        ("tiny-sd3", {"tile": True}, "`--tile` does not work"),
    ],
)
def test_what_the_family_cannot_do_is_a_clear_error_in_the_engine_too(
    cache: ModelCache, root: Path, model: str, changes: dict[str, object], fragment: str
) -> None:
    """A task the bot would have refused fails as bad input with the same words, before anything renders."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        render_task(cache, _task(root, model, **changes), (), Recorder().hooks)


@pytest.mark.parametrize(
    "memory",
    [
        MemoryOptions(sdpa=False),
        MemoryOptions(channels_last=True, fused_qkv=True),
        MemoryOptions(attention_slicing=True, vae_slicing=True, vae_tiling=True),
        MemoryOptions(compile=True, compile_backend="eager"),
    ],
    ids=["classic-attention", "layout", "slicing-tiling", "compiled"],
)
@pytest.mark.parametrize("model", FLOW_FAMILIES)
def test_memory_and_speed_options_that_run_on_the_cpu(
    config: EngineConfig, root: Path, memory: MemoryOptions, model: str
) -> None:
    """The owner's memory and speed switches load and render on the transformers too (classic attention, which
    their joint attention has no form of, leaves them on their own processors; compiling warms them up first)."""
    cache = ModelCache(dataclasses.replace(config, memory=memory))
    rendered = render_task(cache, _task(root, model, seeds=(1, 2)), (), Recorder().hooks)
    assert len(rendered.images) == 2


def test_flux_schnell_reads_prompts_of_256_t5_tokens() -> None:
    """A FLUX.1 without guidance embedding (schnell) is called with the 256-token T5 length it was trained with;
    img2img calls name the source's size."""

    class Config:
        guidance_embeds = False

    class Pipe:
        transformer = type("T", (), {"config": Config})()

    source = Image.new("RGB", (48, 80))
    assert call_arguments("flux", Pipe(), source, None, None) == {
        "width": 48,
        "height": 80,
        "max_sequence_length": 256,
    }
    assert call_arguments("sd3", Pipe(), None, 64, 64) == {"max_sequence_length": 256}
    assert call_arguments("sd15", Pipe(), source, None, None) == {}


@pytest.mark.parametrize(
    ("family", "build", "vae_in_file"), [("sd3", build_tiny_sd3, True), ("flux", build_tiny_flux, False)]
)
def test_a_single_file_checkpoint_loads_with_a_local_config_folder(
    config: EngineConfig, root: Path, monkeypatch: pytest.MonkeyPatch, family: str, build: object, vae_in_file: bool
) -> None:
    """An SD3 file in Stability's layout (transformer and VAE) and a FLUX.1 transformer file load offline with the
    tiny folder as config: the transformer is the file's (another seed's weights), the VAE the file's or else the
    folder's, the text encoders the folder's; it renders."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = ensure_tiny_model(family, root / "models")
    other = build(root / f"other-{family}", seed=1)  # type: ignore[operator]
    checkpoint = export_flow_checkpoint(other, root / "checkpoints" / f"{family}.safetensors")
    model = load_entry(ModelEntry("single", str(checkpoint), family, config=str(folder)), config)
    assert model.family == family

    def same(module: torch.nn.Module, path: Path) -> bool:
        state, saved = module.state_dict(), load_file(path)
        return state.keys() == saved.keys() and all(torch.equal(state[key], saved[key]) for key in saved)

    weights = "diffusion_pytorch_model.safetensors"
    assert same(model.pipeline.transformer, other / "transformer" / weights)
    assert same(model.pipeline.vae, (other if vae_in_file else folder) / "vae" / weights)
    assert same(model.pipeline.text_encoder, folder / "text_encoder" / "model.safetensors")
    entry = ModelEntry("single", str(checkpoint), family, config=str(folder))
    task = dataclasses.replace(_task(root, f"tiny-{family}"), model="single")
    rendered = render_task(ModelCache(dataclasses.replace(config, models=(entry,))), task, (), Recorder().hooks)
    assert rendered.images[0].size == (64, 64)


@pytest.mark.parametrize(("name", "family"), [("sd35-medium", "sd3"), ("flux-dev", "flux")])
def test_a_built_in_hub_entry_loads_from_the_hugging_face_cache_offline(
    config: EngineConfig, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, family: str
) -> None:
    """The registry's hub entry, its repository laid out in the cache as a download leaves it (the tiny weights
    standing in), loads offline through the hub path as a model other than the start-up one, and renders."""
    from huggingface_hub import constants

    from engine.model_sources import hub_snapshot, model_is_present
    from tests.engine.variants import put_in_hub_cache

    spec = BUILTIN_MODELS[name]
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not model_is_present(spec)
    snapshot = put_in_hub_cache(ensure_tiny_model(family, root / "models"), tmp_path / "hub", spec.source)
    assert hub_snapshot(spec.source) == snapshot and model_is_present(spec)
    entry = ModelEntry(name, spec.source, spec.family, base_size=spec.base_size)
    cache = ModelCache(dataclasses.replace(config, models=(*FLOW_ENTRIES, entry)))
    assert cache.get(name).family == family
    task = dataclasses.replace(_task(root, f"tiny-{family}"), model=name, cfg=spec.cfg)
    assert render_task(cache, task, (), Recorder().hooks).images[0].size == (64, 64)
