"""Compiling the UNet with ``torch.compile`` (``memory.compile``), and warming it up before any member's job.

Where: by default *regionally* (``memory.compile_mode = "regional"``): diffusers' ``compile_repeated_blocks``
compiles the UNet's repeated transformer block (``BasicTransformerBlock``) and reuses that code for every instance.
Measured on an H100 (bf16, 4 images at the base size, 20 steps, the whole job path): the warm-up took 14-25 s for
SD1.5 and 10 s for SDXL on a first start, 7-15 s on later ones (kernels from the cache below); jobs then ran 9%
faster for SDXL (3.34 -> 3.03 s) and up to 8% faster for SD1.5 (0.80 -> 0.74 s, within that machine's noise).
Compiling the whole UNet (``compile_mode = "full"``, also the fallback for a model without repeated blocks) had not
finished its warm-up after 90 s. Both compile in place (``Module.compile``), so the pipelines made with
``from_pipe`` share the compiled UNet.

When: right after the model loads, :func:`warm_up` renders :data:`WARMUP_IMAGES` images for :data:`WARMUP_STEPS`
steps (the output is thrown away) at a 3:2 size and at the model's square base size, before the engine says it is
ready (the bot logs the ``compiling`` phase) or, for a model loaded later, before the job that asked for it. No
member's job pays for compiling the shapes jobs use.

Shapes that were not warmed: the blocks are compiled with ``dynamic=True``, so batch size, latent height and width
and prompt length are symbolic from the first compile and one graph per block width serves them all (SD1.5 has three
widths, SDXL two). Dynamo still specialises a few things: a dimension of size 1 (a batch of one image without CFG
compiles once more) and, when the first shape is square, height == width, so the first warm-up shape is 3:2 and one
compile covers both. Automatic dynamic shapes (static first, dynamic after a recompile) were tried on a 4-level UNet:
they compiled again for each new kind of change and reached dynamo's default limit of 8 graphs within ten job
shapes; with ``dynamic=True`` the same shapes compiled nothing after the warm-up. What is left is bounded by
:data:`RECOMPILE_LIMIT` graphs per compiled function: past it, dynamo runs new shapes uncompiled instead of compiling
again. The blocks are compiled without ``fullgraph``: they have no graph breaks (a test checks), and with
``fullgraph=True`` dynamo turns that limit into an error on the job instead of the fallback. A job with a LoRA
compiles its blocks once (the LoRA's layers are new code); the UNet's weights are frozen (``requires_grad``) so
that unloading the LoRA does not make the plain graphs compile again.

The compiled kernels are cached on disk under ``<data_dir>/cache/torchinductor`` (inductor's FX graph cache and
AOTAutograd cache, set up by :mod:`engine.compile_cache` when the engine process starts), so a restart reuses them.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from engine.protocol import STARTING_COMPILING, EngineStarting, ModelEntry, RenderTask

if TYPE_CHECKING:
    from engine.pipelines import LoadedModel

log = logging.getLogger(__name__)

RECOMPILE_LIMIT = 16
"""Graphs dynamo keeps per compiled function before it runs new shapes uncompiled (its default is 8: regional
compilation of SD1.5 already uses 3, one per channel width, before any shape changes)."""
WARMUP_IMAGES = 4
"""Images per warm-up render: what one ``/imagine`` job renders."""
WARMUP_STEPS = 2
WARMUP_ASPECT = (3, 2)
"""The second warm-up shape's aspect ratio, at about the base size's pixel count."""
SIZE_MULTIPLE = 8
"""Warm-up sizes are multiples of this (what the Stable Diffusion pipelines accept)."""
TINY_BASE_SIZE = 64
FAMILY_BASE_SIZES = {"sdxl": 1024, "sd2": 768}
DEFAULT_BASE_SIZE = 512

PhaseCallback = Callable[[EngineStarting], None]


def configure_dynamo() -> None:
    """Bound recompilation (see the module docstring)."""
    import torch._dynamo

    config = torch._dynamo.config
    setattr(config, "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit", RECOMPILE_LIMIT)


def compile_unet(unet: torch.nn.Module, mode: str, backend: str = "inductor") -> str:
    """Compile ``unet`` in place: its repeated blocks (``regional``) where it has them, else (or for ``full``) the
    whole module. Returns the mode used."""
    configure_dynamo()
    if mode == "regional" and getattr(unet, "_repeated_blocks", None) and hasattr(unet, "compile_repeated_blocks"):
        try:
            unet.compile_repeated_blocks(backend=backend, dynamic=True)
            return "regional"
        except ValueError as error:  # no block of the listed classes in this model
            log.info("regional compilation is not possible here (%s); compiling the whole UNet", error)
    unet.compile(backend=backend, dynamic=True)
    return "full"


def uncompile(module: torch.nn.Module) -> None:
    """Undo :func:`compile_unet`: every part runs uncompiled again."""
    for part in module.modules():
        if getattr(part, "_compiled_call_impl", None) is not None:
            part._compiled_call_impl = None


def compiled_graphs() -> int:
    """Graphs dynamo has compiled in this process so far (it grows on every compile and recompile)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def base_size_of(entry: ModelEntry) -> int:
    """The side of the model's 1:1 image: the registry's ``base_size``, else the family's usual size (64 for the
    tiny test models)."""
    if entry.base_size > 0:
        return entry.base_size
    if entry.source.startswith("tiny:"):
        return TINY_BASE_SIZE
    return FAMILY_BASE_SIZES.get(entry.family, DEFAULT_BASE_SIZE)


def warmup_sizes(base_size: int) -> list[tuple[int, int]]:
    """(width, height) of the warm-up renders: :data:`WARMUP_ASPECT` at about the base size's pixel count, then
    the square base size (multiples of :data:`SIZE_MULTIPLE`). Not square first: a square first shape would make
    dynamo assume height == width and compile again for the first other aspect ratio."""
    ratio = math.sqrt(WARMUP_ASPECT[0] / WARMUP_ASPECT[1])

    def snap(side: float) -> int:
        return max(SIZE_MULTIPLE, round(side / SIZE_MULTIPLE) * SIZE_MULTIPLE)

    square = snap(base_size)
    return [(snap(base_size * ratio), snap(base_size / ratio)), (square, square)]


def warm_up(model: LoadedModel, base_size: int, on_phase: PhaseCallback | None = None) -> float:
    """Render the warm-up shapes on a compiled model so that jobs find its graphs compiled; returns the seconds it
    took. A failure (a compiler missing on this machine, say) is logged and the model runs uncompiled."""
    from engine.flow_families import default_sampler, denoiser
    from engine.render import Hooks, denoise

    sizes = warmup_sizes(base_size)
    shapes = " and ".join(f"{width}×{height}" for width, height in sizes)
    detail = f"warm-up: {WARMUP_IMAGES} images at {shapes}, {WARMUP_STEPS} steps"
    if on_phase is not None:
        on_phase(EngineStarting(STARTING_COMPILING, model=model.name, detail=detail))
    log.info("compiling model %s (%s)", model.name, detail)
    hooks = Hooks(on_step=_ignore_step, is_cancelled=_never_cancelled)
    started = time.perf_counter()
    graphs = compiled_graphs()
    try:
        for width, height in sizes:
            task = RenderTask(
                job_id=0,
                prompt="warm-up",
                negative_prompt="",
                width=width,
                height=height,
                steps=WARMUP_STEPS,
                cfg=7.0,
                seeds=tuple(range(WARMUP_IMAGES)),
                sampler=default_sampler(model.family),
                output_dir="",
            )
            denoise(model, "txt2img", [task], hooks, width=width, height=height)
    except Exception as error:  # the model still works uncompiled: say why and go on
        log.warning(
            "model %s could not be compiled (%s: %s); it runs uncompiled. Set memory.compile = false to skip this",
            model.name,
            type(error).__name__,
            _first_line(error),
        )
        log.debug("compilation failure", exc_info=True)
        uncompile(denoiser(model.pipeline))
        model.compiled = ""
        model.speed = tuple(label for label in model.speed if not label.startswith("compiled"))
        return time.perf_counter() - started
    seconds = time.perf_counter() - started
    log.info(
        "model %s compiled (%s) and warmed up in %.1f s: %d graphs; kernels cached in %s",
        model.name,
        model.compiled,
        seconds,
        compiled_graphs() - graphs,
        os.environ.get("TORCHINDUCTOR_CACHE_DIR", "inductor's default folder"),
    )
    return seconds


def _ignore_step(job_id: int, step: int, total: int, preview: Any) -> None:
    """The warm-up reports no progress."""


def _never_cancelled(job_id: int) -> bool:
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
