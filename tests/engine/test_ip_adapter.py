"""Image prompts through the real IP-Adapter path on the tiny models, in this process: tiny adapters built in code,
loaded by diffusers' ``load_ip_adapter``, switched on for the jobs with image prompts only."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
from PIL import Image
from safetensors import safe_open
from transformers import CLIPVisionModelWithProjection

from engine.ip_adapter import LOADED_KEY, embed_images, load_adapter
from engine.pipelines import ModelCache
from engine.protocol import EngineConfig, IpAdapterEntry, ModelEntry, RenderTask
from engine.render import Hooks, render_task
from engine.tiny_ip_adapter import ADAPTER_WEIGHTS, cross_attention_layers, ensure_tiny_ip_adapter

MODELS = (ModelEntry("tiny", "tiny:sd15", "sd15"), ModelEntry("tiny-sdxl", "tiny:sdxl", "sdxl"))
ADAPTERS = (
    IpAdapterEntry("tiny-ip-adapter", "tiny:ip-adapter-sd15", "sd15"),
    IpAdapterEntry("tiny-ip-adapter-sdxl", "tiny:ip-adapter-sdxl", "sdxl"),
    IpAdapterEntry("missing", "/nonexistent/ip-adapter", "sd15"),
)
HOOKS = Hooks(lambda *_args: None, lambda _job: False)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ip-adapter")


@pytest.fixture(scope="module")
def config(root: Path) -> EngineConfig:
    return EngineConfig(
        "tiny", "tiny:sd15", "sd15", str(root), models=MODELS, ip_adapters=ADAPTERS, max_loaded_models=2
    )


@pytest.fixture(scope="module")
def cache(config: EngineConfig) -> ModelCache:
    return ModelCache(config)


@pytest.fixture(scope="module")
def pictures(root: Path) -> list[str]:
    """Three image prompts: a gradient, a red square, the gradient again."""
    gradient = np.linspace(0, 255, 48 * 48 * 3).reshape(48, 48, 3).astype(np.uint8)
    paths = [root / "gradient.png", root / "red.png"]
    Image.fromarray(gradient).save(paths[0])
    Image.new("RGB", (40, 56), "red").save(paths[1])
    return [str(paths[0]), str(paths[1]), str(paths[0])]


def _task(root: Path, **changes: object) -> RenderTask:
    task = RenderTask(1, "", "", 64, 64, 3, 5.0, (7, 8), "euler_a", str(root / "out"))
    return dataclasses.replace(task, **changes)  # type: ignore[arg-type]


def _pixels(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(image).astype(int) for image in images])


def test_tiny_adapter_matches_the_tiny_unets_cross_attention(root: Path) -> None:
    """One key and one value projection per cross-attention layer, numbered as diffusers reads them, shaped by the
    tiny UNet's widths; the image encoder sits beside it with its image processor config."""
    folder = ensure_tiny_ip_adapter("ip-adapter-sd15", root / "models")
    unet_config = dict(UNet2DConditionModel.load_config(root / "models" / "tiny-sd15" / "unet"))
    layers = cross_attention_layers(unet_config)
    with safe_open(str(folder / ADAPTER_WEIGHTS), framework="pt") as weights:
        keys = set(weights.keys())
        shapes = {key: tuple(weights.get_slice(key).get_shape()) for key in keys}
    assert len(layers) == 4
    expected = {f"ip_adapter.{2 * i + 1}.{part}.weight" for i in range(len(layers)) for part in ("to_k_ip", "to_v_ip")}
    assert expected | {"image_proj.proj.weight", "image_proj.proj.bias", "image_proj.norm.weight"} <= keys
    assert [shapes[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] for i in range(len(layers))] == [
        (width, 32) for _name, width in layers
    ]
    assert shapes["image_proj.proj.weight"] == (4 * 32, 32)
    assert (folder / "image_encoder" / "preprocessor_config.json").is_file()
    assert ensure_tiny_ip_adapter("ip-adapter-sd15", root / "models") == folder  # reused, not rebuilt


@pytest.mark.slow
def test_image_prompts_run_the_real_adapter_and_leave_no_trace(
    cache: ModelCache, root: Path, pictures: list[str]
) -> None:
    """A job with image prompts runs diffusers' IP-Adapter processors and its CLIP image encoder; a job without
    image prompts afterwards gives the very pixels it gave before any adapter was loaded, on the very modules."""
    model = cache.get("tiny")
    assert isinstance(model.pipeline, StableDiffusionPipeline)
    unet = model.pipeline.unet
    processors_before = dict(unet.attn_processors)
    plain = _task(root, prompt="a red fox")
    first = _pixels(render_task(cache, plain, (), HOOKS).images)
    seen: dict[str, object] = {}

    def watch(job_id: int, step: int, total: int, preview: bytes | None) -> None:
        seen.setdefault("processors", {type(proc) for proc in unet.attn_processors.values()})
        seen["projection"] = unet.encoder_hid_proj

    prompted = render_task(
        cache,
        _task(root, image_prompts=tuple(pictures[:1]), ip_adapter="tiny-ip-adapter"),
        (),
        Hooks(watch, lambda _job: False),
    )
    assert len(prompted.images) == 2
    assert IPAdapterAttnProcessor2_0 in seen["processors"]  # type: ignore[operator]
    assert seen["projection"] is not None
    assert isinstance(model.pipeline.image_encoder, CLIPVisionModelWithProjection)
    after = _pixels(render_task(cache, plain, (), HOOKS).images)
    assert np.array_equal(first, after)
    assert dict(unet.attn_processors) == processors_before  # the same processor objects
    assert unet.encoder_hid_proj is None


@pytest.mark.slow
def test_image_weight_is_the_adapters_scale(cache: ModelCache, root: Path, pictures: list[str]) -> None:
    """--iw changes the picture; the same weight and seed give the same pixels; another image prompt another one."""
    prompted = _task(root, prompt="a lamp", image_prompts=(pictures[0],), ip_adapter="tiny-ip-adapter")

    def render(**changes: object) -> np.ndarray:
        return _pixels(render_task(cache, dataclasses.replace(prompted, **changes), (), HOOKS).images)  # type: ignore[arg-type]

    low, high, again = render(image_weight=0.5), render(image_weight=1.5), render(image_weight=0.5)
    assert np.array_equal(low, again)
    assert not np.array_equal(low, high)
    assert not np.array_equal(low, render(image_weight=0.5, image_prompts=(pictures[1],)))


def test_a_blend_averages_the_embeddings(cache: ModelCache, pictures: list[str], config: EngineConfig) -> None:
    """Two equal images embed as one; two different ones as neither alone, as long as each."""
    from engine.ip_adapter import load_prompt_image

    model = cache.get("tiny")
    load_adapter(model, ADAPTERS[0], config.data_dir)
    gradient, red, gradient_again = (load_prompt_image(path) for path in pictures)
    one = embed_images(model, [gradient]).positive
    twice = embed_images(model, [gradient, gradient_again]).positive
    mixed = embed_images(model, [gradient, red]).positive
    assert torch.allclose(one, twice, atol=1e-6)
    assert not torch.allclose(one, mixed, atol=1e-3)
    assert torch.isclose(mixed.norm(), (one.norm() + embed_images(model, [red]).positive.norm()) / 2, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "extra"), [("img2img", {"strength": 0.6}), ("inpaint", {})])
def test_image_prompts_work_on_image_to_image_too(
    cache: ModelCache, root: Path, pictures: list[str], kind: str, extra: dict
) -> None:
    """A variation of a blend keeps its image prompts: img2img and inpainting take the same embeddings."""
    mask = root / "mask.png"
    Image.new("L", (64, 64), 255).save(mask)
    task = _task(
        root,
        kind=kind,
        init_image=pictures[0],
        mask_image=str(mask),
        image_prompts=tuple(pictures[:2]),
        ip_adapter="tiny-ip-adapter",
        **extra,
    )
    without = dataclasses.replace(task, image_prompts=())
    assert not np.array_equal(
        _pixels(render_task(cache, task, (), HOOKS).images), _pixels(render_task(cache, without, (), HOOKS).images)
    )


@pytest.mark.slow
def test_tiny_sdxl_takes_its_own_adapter(cache: ModelCache, root: Path, pictures: list[str]) -> None:
    """The SDXL pipeline with the SDXL-shaped tiny adapter; without guidance (cfg 1) too."""
    for cfg in (5.0, 1.0):
        task = _task(root, model="tiny-sdxl", image_prompts=(pictures[0],), ip_adapter="tiny-ip-adapter-sdxl", cfg=cfg)
        rendered = render_task(cache, task, (), HOOKS)
        assert [image.size for image in rendered.images] == [(64, 64), (64, 64)]
    assert isinstance(cache.get("tiny-sdxl").pipeline, StableDiffusionXLPipeline)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"ip_adapter": "tiny-ip-adapter-sdxl"}, "is for sdxl models but model 'tiny' is sd15"),
        ({"ip_adapter": "nope"}, "not in the registry; known IP-Adapters: missing, tiny-ip-adapter"),
        ({"ip_adapter": "missing"}, "the IP-Adapter 'missing' did not load"),
        ({"image_weight": 2.5}, "image_weight=2.5 must be from 0 to 2"),
        ({"image_prompts": ("",)}, "never received"),
        ({"image_prompts": ("/nonexistent/gone.png",)}, "gone.png is no longer kept"),
    ],
)
def test_bad_image_prompt_tasks_are_refused_and_the_unet_stays_clean(
    cache: ModelCache, root: Path, pictures: list[str], changes: dict, fragment: str
) -> None:
    """Each refusal is a ValueError that says what is wrong; the UNet is left as it was."""
    model = cache.get("tiny")
    processors = dict(model.pipeline.unet.attn_processors)
    task = _task(root, **{"image_prompts": (pictures[0],), "ip_adapter": "tiny-ip-adapter", **changes})
    with pytest.raises(ValueError, match=re.escape(fragment)):
        render_task(cache, task, (), HOOKS)
    assert dict(model.pipeline.unet.attn_processors) == processors
    assert model.pipeline.unet.encoder_hid_proj is None
    loaded = model._derived.get(LOADED_KEY)
    assert loaded is None or loaded.name == "tiny-ip-adapter"


def test_tasks_with_image_prompts_never_share_a_call(root: Path) -> None:
    """The adapter's embeddings and scale belong to one call: a txt2img task with image prompts runs alone."""
    from engine.protocol import batch_key
    from engine.render import group_tasks

    plain = [_task(root, job_id=job_id) for job_id in (1, 2)]
    prompted = [_task(root, job_id=job_id, image_prompts=("/x.png",), ip_adapter="a") for job_id in (3, 4)]
    assert batch_key(plain[0]) is not None
    assert batch_key(prompted[0]) is None
    assert [[task.job_id for task in group] for group in group_tasks([*plain, *prompted], 4)] == [[1, 2], [3], [4]]


@pytest.mark.slow
def test_a_fused_qkv_unet_takes_the_adapter_and_stays_fused(root: Path, pictures: list[str]) -> None:
    """With fused QKV projections (the CUDA default for SD1.5) an image-prompted job runs, and the plain job after it
    gives the pixels it gave before, still fused."""
    from engine.memory import qkv_fused
    from engine.protocol import MemoryOptions

    config = EngineConfig(
        "tiny",
        "tiny:sd15",
        "sd15",
        str(root),
        models=MODELS[:1],
        ip_adapters=ADAPTERS[:1],
        memory=MemoryOptions(fused_qkv=True),
    )
    cache = ModelCache(config)
    assert qkv_fused(cache.get().pipeline.unet)
    plain = _task(root, prompt="a fox", seeds=(3,))
    before = _pixels(render_task(cache, plain, (), HOOKS).images)
    prompted = dataclasses.replace(plain, image_prompts=(pictures[1],), ip_adapter="tiny-ip-adapter")
    assert not np.array_equal(before, _pixels(render_task(cache, prompted, (), HOOKS).images))
    assert np.array_equal(before, _pixels(render_task(cache, plain, (), HOOKS).images))
    assert qkv_fused(cache.get().pipeline.unet)


class _Inbox:
    def is_cancelled(self, job_id: int) -> bool:
        return False


class _Conn:
    def send(self, message: object) -> None:
        pass


def test_the_engine_reads_image_prompts_only_under_its_data_folder(config: EngineConfig, root: Path) -> None:
    """An image prompt outside data/ (or a link that was never fetched) fails the job as bad input, unread."""
    from engine.protocol import TaskFailed
    from tests.engine.rendering import run_group_here

    tasks = [
        _task(root, job_id=1, image_prompts=("/etc/hostname",), ip_adapter="tiny-ip-adapter"),
        _task(root, job_id=2, image_prompts=("https://cdn.discordapp.com/attachments/1/2/a.png",), ip_adapter="x"),
    ]
    data_dir = Path(config.data_dir).resolve()
    results = run_group_here(ModelCache(config), config, tasks, _Inbox(), _Conn(), data_dir)  # type: ignore[arg-type]
    for result in results:
        assert isinstance(result, TaskFailed) and result.reason == "bad_input"
        assert "the engine reads only there" in result.message
