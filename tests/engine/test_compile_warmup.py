"""memory.compile: the warm-up compiles at load, jobs find their graphs compiled, and the speed switches (fused QKV,
channels_last) render the same pixels; on the tiny model with dynamo's ``eager`` backend (no code generation)."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.compile_cache import compile_cache_environment
from engine.memory import qkv_fused
from engine.pipelines import LoadedModel, ModelCache
from engine.protocol import (
    STARTING_COMPILING,
    STARTING_LOADING,
    EngineConfig,
    EngineStarting,
    LoraEntry,
    MemoryOptions,
    RenderTask,
)
from engine.render import Hooks, render_task
from engine.tiny import ensure_tiny_model
from engine.warmup import compiled_graphs
from tests.builders.tiny_lora import build_tiny_lora

COMPILED = MemoryOptions(compile=True, compile_backend="eager", channels_last=True, fused_qkv=True)
HOOKS = Hooks(lambda *_: None, lambda _job_id: False)


@dataclasses.dataclass
class Loaded:
    """A model loaded through the cache, with the phases its load announced and what its warm-up compiled."""

    cache: ModelCache
    model: LoadedModel
    phases: list[EngineStarting]
    graphs: int
    graph_breaks: int


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compile")


@pytest.fixture(scope="module")
def lora(root: Path) -> LoraEntry:
    model_dir = ensure_tiny_model("sd15", root / "models")
    return LoraEntry("grain", str(build_tiny_lora(model_dir, root / "loras" / "grain")))


def _load(root: Path, lora: LoraEntry, memory: MemoryOptions) -> Loaded:
    from torch._dynamo.utils import counters

    cache = ModelCache(EngineConfig("tiny", "tiny:sd15", "sd15", str(root), memory=memory, loras=(lora,)))
    phases: list[EngineStarting] = []
    graphs, breaks = compiled_graphs(), sum(counters["graph_break"].values())
    model = cache.get(on_phase=phases.append)
    return Loaded(cache, model, phases, compiled_graphs() - graphs, sum(counters["graph_break"].values()) - breaks)


@pytest.fixture(scope="module")
def compiled(root: Path, lora: LoraEntry) -> Loaded:
    return _load(root, lora, COMPILED)


@pytest.fixture(scope="module")
def uncompiled(root: Path, lora: LoraEntry) -> Loaded:
    """The compiled model's options but compile (channels_last changes the last bits of a CPU convolution)."""
    return _load(root, lora, dataclasses.replace(COMPILED, compile=False))


@pytest.fixture(scope="module")
def plain(root: Path, lora: LoraEntry) -> Loaded:
    return _load(root, lora, MemoryOptions())


@pytest.fixture(scope="module")
def fused(root: Path, lora: LoraEntry) -> Loaded:
    return _load(root, lora, MemoryOptions(fused_qkv=True))


def _task(root: Path, **changes: object) -> RenderTask:
    task = RenderTask(1, "a red fox", "blur", 64, 64, 4, 5.0, (7, 8, 9, 10), "euler_a", str(root / "out"))
    return dataclasses.replace(task, **changes)  # type: ignore[arg-type]


def _pixels(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(image) for image in images]).astype(np.int16)


def _render(loaded: Loaded, task: RenderTask, loras: tuple[LoraEntry, ...] = ()) -> np.ndarray:
    return _pixels(render_task(loaded.cache, task, loras, HOOKS).images)


def test_the_warm_up_compiles_at_load_before_the_model_is_handed_out(compiled: Loaded) -> None:
    """Loading a model with compile on announces loading, then compiling, and compiles its graphs right there."""
    assert [phase.phase for phase in compiled.phases] == [STARTING_LOADING, STARTING_COMPILING]
    assert compiled.phases[-1].model == "tiny"
    assert compiled.phases[-1].detail == "warm-up: 4 images at 80×56 and 64×64, 2 steps"
    assert compiled.graphs >= 1
    assert compiled.model.compiled == "regional"
    assert compiled.model.speed == ("fp32", "sdpa", "channels_last", "fused qkv", "compiled (regional)")


def test_the_compiled_blocks_have_no_graph_breaks(compiled: Loaded) -> None:
    """Each repeated block is one whole graph (so compiling without fullgraph loses nothing)."""
    assert compiled.graph_breaks == 0


@pytest.mark.parametrize(
    ("width", "height", "seeds"),
    [(64, 64, (7, 8, 9, 10)), (56, 80, (7, 8, 9, 10)), (96, 64, (7, 8, 9, 10)), (64, 64, (7, 8))],
)
def test_jobs_after_the_warm_up_compile_nothing_and_match_uncompiled_pixels(
    compiled: Loaded, uncompiled: Loaded, root: Path, width: int, height: int, seeds: tuple[int, ...]
) -> None:
    """A job at the base size, at other aspect ratios or with fewer images runs on the warmed graphs, same pixels."""
    task = _task(root, width=width, height=height, seeds=seeds)
    before = compiled_graphs()
    pixels = _render(compiled, task)
    assert compiled_graphs() == before
    assert np.array_equal(pixels, _render(uncompiled, task))


@pytest.mark.parametrize("owner", ["", "/srv/kernels"])
def test_inductor_caches_under_the_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, owner: str) -> None:
    """Compiled kernels are cached under data/cache/torchinductor (a restart reuses them), or where the owner says."""
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE", "TORCHINDUCTOR_AUTOGRAD_CACHE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    if owner:
        monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", owner)
    folder = compile_cache_environment(tmp_path)
    assert folder == Path(owner or tmp_path / "cache" / "torchinductor")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder)
    assert os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] == os.environ["TORCHINDUCTOR_AUTOGRAD_CACHE"] == "1"


def test_a_lora_on_a_fused_model_renders_as_on_an_unfused_one(
    fused: Loaded, plain: Loaded, root: Path, lora: LoraEntry
) -> None:
    """LoRAs load into to_q/to_k/to_v: the fused model unfuses for the job (twice in a row) and fuses again after."""
    assert qkv_fused(fused.model.pipeline.unet) and not qkv_fused(plain.model.pipeline.unet)
    without = _render(fused, _task(root))
    assert np.array_equal(without, _render(plain, _task(root)))
    for weight in (0.8, 0.5):
        task = _task(root, prompt=f"a red fox <lora:grain:{weight}>")
        with_lora = _render(fused, task, (lora,))
        assert np.array_equal(with_lora, _render(plain, task, (lora,)))
        assert np.abs(with_lora - without).max() > 0
    assert qkv_fused(fused.model.pipeline.unet)
    assert np.array_equal(_render(fused, _task(root)), without)


@pytest.mark.slow
def test_a_lora_on_a_compiled_model_compiles_once_and_matches(
    compiled: Loaded, uncompiled: Loaded, root: Path, lora: LoraEntry
) -> None:
    """The first LoRA job compiles its blocks once; later LoRA jobs and the plain jobs between them compile nothing."""
    first = _task(root, prompt="a red fox <lora:grain:0.8>")
    assert np.array_equal(_render(compiled, first, (lora,)), _render(uncompiled, first, (lora,)))
    before = compiled_graphs()
    second = _task(root, prompt="a red fox <lora:grain:0.5>")
    assert np.array_equal(_render(compiled, _task(root)), _render(uncompiled, _task(root)))
    assert np.array_equal(_render(compiled, second, (lora,)), _render(uncompiled, second, (lora,)))
    assert compiled_graphs() == before


def _failing_backend(graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> object:
    raise RuntimeError("no C compiler on this machine")


@pytest.mark.parametrize(
    ("backend", "log_fragment"),
    [
        ("imaginebot-test-failing", "model tiny could not be compiled (BackendCompilerFailed"),
        ("no-such-backend", "the UNet was not compiled (InvalidBackend"),
    ],
)
def test_a_model_that_cannot_compile_runs_uncompiled(
    root: Path,
    lora: LoraEntry,
    uncompiled: Loaded,
    caplog: pytest.LogCaptureFixture,
    backend: str,
    log_fragment: str,
) -> None:
    """A compiler that fails (at the warm-up) or a backend that does not exist: a warning, and jobs run uncompiled."""
    from torch._dynamo import list_backends, register_backend

    if "imaginebot-test-failing" not in list_backends(exclude_tags=()):
        register_backend(_failing_backend, name="imaginebot-test-failing")
    with caplog.at_level(logging.WARNING):
        loaded = _load(root, lora, dataclasses.replace(COMPILED, compile_backend=backend))
    assert log_fragment in caplog.text
    assert loaded.model.compiled == "" and "compiled (regional)" not in loaded.model.speed
    assert np.array_equal(_render(loaded, _task(root)), _render(uncompiled, _task(root)))


@pytest.mark.slow
async def test_the_engine_process_compiles_before_it_is_ready(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real engine with compile on says it is compiling, then ready with its speed settings, and renders jobs; its
    kernel cache is under the data folder."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)  # set by this process's diffusers; the bot has none
    from bot.running.engine_supervisor import EngineSupervisor
    from tests.engine.rendering import render_one, tiny_task

    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(tmp_path), memory=COMPILED)
    engine = EngineSupervisor(config, start_timeout_s=300.0)
    try:
        with caplog.at_level(logging.INFO, logger="bot.running.engine_host"):
            ready = await engine.wait_ready()
        assert ready.speed == ("fp32", "sdpa", "channels_last", "fused qkv", "compiled (regional)")
        lines = [record.getMessage() for record in caplog.records if record.name == "bot.running.engine_host"]
        compiling = [index for index, line in enumerate(lines) if "compiling model tiny (warm-up: 4 images" in line]
        ready_line = [index for index, line in enumerate(lines) if line.startswith("engine ready: tiny")]
        assert compiling and ready_line and compiling[0] < ready_line[0]
        assert "speed: fp32, sdpa, channels_last, fused qkv, compiled (regional)" in lines[ready_line[0]]
        done = await render_one(engine, tiny_task(tmp_path, 1))
        assert len(done.paths) == 2
        assert f"kernels cached in {tmp_path.resolve() / 'cache' / 'torchinductor'}" in capfd.readouterr().err
    finally:
        engine.stop()
