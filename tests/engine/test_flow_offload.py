"""``memory.offload = "auto"`` on SD3/FLUX.1: stream only the text encoders from the CPU when the rest fits."""

from __future__ import annotations

from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from engine.flow_offload import (
    RENDER_HEADROOM,
    TEXT_ENCODER_OFFLOAD,
    choose_component_offload,
    offload_text_encoders,
    pipeline_sizes,
    resolve_offload,
)
from engine.tiny import ensure_tiny_model

GB = 10**9
FLUX_BF16 = {
    "transformer": 23_800 * 10**6,
    "text_encoder": 246 * 10**6,
    "text_encoder_2": 9_520 * 10**6,
    "vae": 168 * 10**6,
}
FLUX_NF4 = {**FLUX_BF16, "transformer": 6_700 * 10**6}
FLUX_T5 = ("text_encoder", "text_encoder_2")


@pytest.mark.parametrize(
    ("free", "sizes", "movable", "mode"),
    [
        (None, FLUX_BF16, FLUX_T5, "none"),  # the CPU
        (80 * GB, FLUX_BF16, FLUX_T5, "none"),  # H100: everything fits
        (40 * GB, FLUX_BF16, FLUX_T5, "none"),
        (32 * GB, FLUX_BF16, FLUX_T5, TEXT_ENCODER_OFFLOAD),  # a 32 GB card: T5 streams, the transformer stays
        (24 * GB, FLUX_BF16, FLUX_T5, "sequential"),  # 24 GB: the bf16 transformer alone does not fit with headroom
        (30 * GB, FLUX_BF16, (), "model"),  # a quantized T5 cannot move: whole-model offload
        (24 * GB, FLUX_NF4, FLUX_T5, "none"),  # nf4 transformer on 24 GB: everything fits
        (16 * GB, FLUX_NF4, FLUX_T5, TEXT_ENCODER_OFFLOAD),  # 16 GB: nf4 transformer stays, T5 streams
        (12 * GB, FLUX_NF4, FLUX_T5, TEXT_ENCODER_OFFLOAD),
        (10 * GB, FLUX_NF4, FLUX_T5, "sequential"),
        (12 * GB, {"transformer": 4 * GB, "text_encoder_3": 9 * GB}, (), "sequential"),
    ],
)
def test_choose_component_offload(free: int | None, sizes: dict[str, int], movable: tuple[str, ...], mode: str) -> None:
    """The mode for free memory and component sizes: none, the text encoders, whole-model, then sequential."""
    assert choose_component_offload(free, sizes, movable) == mode


def test_headroom_is_what_separates_none_from_offload() -> None:
    """Exactly the weights plus the render headroom is enough; a byte less streams the text encoders."""
    sizes = {"transformer": 10 * GB, "text_encoder_2": 5 * GB}
    assert choose_component_offload(15 * GB + RENDER_HEADROOM, sizes, ("text_encoder_2",)) == "none"
    assert choose_component_offload(15 * GB + RENDER_HEADROOM - 1, sizes, ("text_encoder_2",)) == TEXT_ENCODER_OFFLOAD


ORDER = ("none", TEXT_ENCODER_OFFLOAD, "model", "sequential")
SIZES = st.dictionaries(
    st.sampled_from(("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae")),
    st.integers(1, 30 * GB),
    min_size=1,
)


@given(SIZES, st.integers(0, 80 * GB), st.integers(0, 80 * GB), st.booleans())
def test_more_free_memory_never_offloads_more(sizes: dict[str, int], free: int, more: int, movable: bool) -> None:
    """With more free memory the choice is the same or a lighter offload, never a heavier one."""
    names = tuple(name for name in sizes if name.startswith("text_encoder")) if movable else ()
    less_free = ORDER.index(choose_component_offload(free, sizes, names))
    more_free = ORDER.index(choose_component_offload(free + more, sizes, names))
    assert more_free <= less_free


@pytest.fixture(scope="module")
def flux_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_model("flux", tmp_path_factory.mktemp("models"))


def _render(pipe: object) -> np.ndarray:
    image = pipe(  # type: ignore[operator]
        "a red apple",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
    ).images
    return np.asarray(image)


def test_auto_on_a_flux_pipeline_decides_by_component(flux_folder: Path) -> None:
    """``auto`` on a pipeline with a transformer sizes its parts; its T5 and CLIP encoders may move."""
    pipe = diffusers.FluxPipeline.from_pretrained(flux_folder)
    sizes, movable = pipeline_sizes(pipe)
    assert movable == ("text_encoder", "text_encoder_2")
    staying = sizes["transformer"] + sizes["vae"]
    assert resolve_offload(pipe, "auto", staying + RENDER_HEADROOM, sum(sizes.values())) == TEXT_ENCODER_OFFLOAD
    assert resolve_offload(pipe, "model", staying + RENDER_HEADROOM, sum(sizes.values())) == "model"


@pytest.mark.parametrize(
    ("family", "pipeline", "streamed"),
    [
        ("flux", diffusers.FluxPipeline, ("text_encoder", "text_encoder_2")),
        ("sd3", diffusers.StableDiffusion3Pipeline, ("text_encoder", "text_encoder_2", "text_encoder_3")),
    ],
)
def test_streamed_text_encoders_render_the_same_pixels(
    tmp_path_factory: pytest.TempPathFactory, family: str, pipeline: type, streamed: tuple[str, ...]
) -> None:
    """A pipeline whose text encoders stream through accelerate's hooks renders what the plain one does."""
    folder = ensure_tiny_model(family, tmp_path_factory.getbasetemp() / "models")
    plain = _render(pipeline.from_pretrained(folder))
    pipe = pipeline.from_pretrained(folder)
    assert offload_text_encoders(pipe, "cpu") == streamed
    assert all(hasattr(getattr(pipe, name), "_hf_hook") for name in streamed)
    assert not hasattr(pipe.transformer, "_hf_hook")
    np.testing.assert_allclose(_render(pipe), plain, atol=1e-5)
