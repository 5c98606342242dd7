"""Prompts on SD3.5 and FLUX.1 through the engine's render path, in this process: multi-prompts are blends of each
part's CLIP and T5 embeddings (negative parts through SD3's negative prompt), T5 reads past CLIP's 77 tokens, and a
prompt longer than the model's T5 length is refused with the limit instead of being cut short."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from config.model_registry import BUILTIN_MODELS
from engine.flow_families import sequence_length
from engine.flow_prompts import flow_blended_embeddings
from engine.pipelines import ModelCache
from engine.prompt_weights import blend
from engine.protocol import RenderTask
from engine.render import Hooks, render_task
from tests.flow_models import FLOW_FAMILIES, flow_engine_config


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flow-prompts")


@pytest.fixture(scope="module")
def cache(root: Path) -> ModelCache:
    config = flow_engine_config(root)
    return ModelCache(config)


def _task(root: Path, model: str, prompt: str, **changes: object) -> RenderTask:
    spec = BUILTIN_MODELS[model]
    task = RenderTask(1, prompt, "", 64, 64, 2, spec.cfg, (7,), spec.default_sampler, str(root / "out"))
    return dataclasses.replace(task, model=model, **changes)  # type: ignore[arg-type]


def _pixels(cache: ModelCache, task: RenderTask) -> np.ndarray:
    image: Image.Image = render_task(cache, task, (), Hooks(lambda *_args: None, lambda _job_id: False)).images[0]
    return np.asarray(image, dtype=np.float32)


@pytest.mark.parametrize("model", FLOW_FAMILIES)
def test_a_multi_prompt_blends_its_parts(cache: ModelCache, root: Path, model: str) -> None:
    """`a red fox:: a blue whale::2` differs from either part alone and from the other weighting; a part repeated
    (`a red fox:: a red fox`) is the plain prompt, since weights are normalised by their sum."""
    fox = _pixels(cache, _task(root, model, "a red fox"))
    whale = _pixels(cache, _task(root, model, "a blue whale"))
    mixed = _pixels(cache, _task(root, model, "x", weighted_prompts=(("a red fox", 1.0), ("a blue whale", 2.0))))
    other = _pixels(cache, _task(root, model, "x", weighted_prompts=(("a red fox", 2.0), ("a blue whale", 1.0))))
    twice = _pixels(cache, _task(root, model, "x", weighted_prompts=(("a red fox", 1.0), ("a red fox", 3.0))))
    assert min(np.abs(mixed - fox).max(), np.abs(mixed - whale).max(), np.abs(mixed - other).max()) > 0
    assert np.abs(twice - fox).max() <= 1


@pytest.mark.parametrize("model", FLOW_FAMILIES)
def test_a_blend_is_the_weighted_sum_of_each_parts_embeddings(cache: ModelCache, model: str) -> None:
    """`a::1 b::3` is 1/4 of a's sequence and pooled embeddings plus 3/4 of b's, as the pipeline encodes them."""
    loaded = cache.get(model)
    pipe, family = loaded.pipeline, loaded.family
    length = sequence_length(family, pipe)
    kwargs = flow_blended_embeddings(pipe, family, [blend([("a red fox", 1.0), ("a blue whale", 3.0)])])
    texts = ["a red fox", "a blue whale"]
    if family == "sd3":
        embeds, _, pooled, _ = pipe.encode_prompt(
            texts, None, None, do_classifier_free_guidance=False, max_sequence_length=length
        )
    else:
        embeds, pooled, _ = pipe.encode_prompt(texts, None, max_sequence_length=length)
    torch.testing.assert_close(kwargs["prompt_embeds"][0], 0.25 * embeds[0] + 0.75 * embeds[1])
    torch.testing.assert_close(kwargs["pooled_prompt_embeds"][0], 0.25 * pooled[0] + 0.75 * pooled[1])
    assert ("negative_prompt_embeds" in kwargs) is (family == "sd3")


def test_a_negative_part_steers_sd3_through_its_negative_prompt(cache: ModelCache, root: Path) -> None:
    """`a red fox:: blue::-0.5` on SD3 differs from `a red fox`, and from a weaker negative part."""
    fox = _pixels(cache, _task(root, "tiny-sd3", "a red fox"))
    strong = _pixels(cache, _task(root, "tiny-sd3", "x", weighted_prompts=(("a red fox", 1.0), ("blue", -0.5))))
    weak = _pixels(cache, _task(root, "tiny-sd3", "x", weighted_prompts=(("a red fox", 1.0), ("blue", -0.1))))
    assert np.abs(strong - fox).max() > 0
    assert np.abs(strong - weak).max() > 0


@pytest.mark.parametrize("model", FLOW_FAMILIES)
def test_t5_reads_past_clips_77_tokens(cache: ModelCache, root: Path, model: str) -> None:
    """Two prompts equal in their first 150 tokens and different after render differently: T5 reads on."""
    start = "a fox in a field " * 9  # 153 characters: the tiny T5 tokenizer reads a character as a token
    red = _pixels(cache, _task(root, model, start + "red"))
    blue = _pixels(cache, _task(root, model, start + "blue"))
    assert np.abs(red - blue).max() > 0


@pytest.mark.parametrize(("model", "limit"), [("tiny-sd3", 256), ("tiny-flux", 512)])
def test_a_prompt_past_the_t5_length_is_refused_with_the_limit(
    cache: ModelCache, root: Path, model: str, limit: int
) -> None:
    """A prompt (or a multi-prompt part, or --no on SD3) with more T5 tokens than the model reads is a ValueError
    saying the limit and the count; one at the limit renders."""
    at_limit = "f" * (limit - 1)  # and </s>
    _pixels(cache, _task(root, model, at_limit))
    with pytest.raises(ValueError, match=f"reads at most {limit} T5 tokens and yours is {limit + 1} tokens"):
        _pixels(cache, _task(root, model, at_limit + "f"))
    with pytest.raises(ValueError, match=f"reads at most {limit} T5 tokens"):
        _pixels(cache, _task(root, model, "x", weighted_prompts=(("a fox", 1.0), (at_limit + "ff", 1.0))))
    if model == "tiny-sd3":
        with pytest.raises(ValueError, match="shorten the prompt"):
            _pixels(cache, _task(root, model, "a fox", negative_prompt=at_limit + "f"))
