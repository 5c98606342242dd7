"""What each part of a model takes in GPU memory at the configured dtype and quantization, for ``doctor``.

The parameters come from the model's files where they are on disk (safetensors headers, no torch), else from the
published architecture of its family (counted once on the meta device from the configs in
``bench.gpu_flow_models`` / ``bench.gpu_models``). Bytes per parameter: 2 at fp16/bf16, 4 at fp32; what
bitsandbytes quantizes (:func:`engine.flow_quantize.quantization_plan`) at 0.5 (4-bit NF4; its block scales add
~1%) or 1 (8-bit). Activations of a render come on top (see ``bench.memory_estimate``).
"""

from __future__ import annotations

from pathlib import Path

from config.model_registry import ModelSpec
from config.settings import Settings
from engine.memory_advice import component_bytes, memory_size
from engine.model_sources import choose_variant, component_parameters, model_folder, weights_on_disk

M = 10**6
PUBLISHED_PARAMETERS: dict[str, dict[str, int]] = {
    "sd15": {"unet": 859_520 * 1000, "text_encoder": 123_060 * 1000, "vae": 83_650 * 1000},
    "sd2": {"unet": 865_910 * 1000, "text_encoder": 340_390 * 1000, "vae": 83_650 * 1000},
    "sdxl": {"unet": 2_567 * M, "text_encoder": 123 * M, "text_encoder_2": 695 * M, "vae": 84 * M},
    "sd3": {"transformer": 2_243 * M, "text_encoder": 124 * M, "text_encoder_2": 695 * M, "text_encoder_3": 4_762 * M,
            "vae": 84 * M},
    "flux": {"transformer": 11_901 * M, "text_encoder": 123 * M, "text_encoder_2": 4_762 * M, "vae": 84 * M},
}  # fmt: skip
"""Parameters per component of each family's reference model (SD1.5, SD2.1, SDXL base, SD3.5 medium, FLUX.1-dev)."""
ROLES = {
    ("sd3", "text_encoder"): "CLIP-L",
    ("sd3", "text_encoder_2"): "CLIP-G",
    ("sd3", "text_encoder_3"): "T5-XXL",
    ("flux", "text_encoder"): "CLIP-L",
    ("flux", "text_encoder_2"): "T5-XXL",
    ("sdxl", "text_encoder"): "CLIP-L",
    ("sdxl", "text_encoder_2"): "CLIP-G",
}


def model_parameters(spec: ModelSpec, models_dir: Path, dtype: str) -> tuple[dict[str, int], str]:
    """The model's parameters per component and where they come from (``sizes from its files`` or ``published
    sizes``); empty when neither is known (a single file not read here, a tiny model not built yet)."""
    folder = model_folder(spec, models_dir)
    if folder is not None and (folder / "model_index.json").is_file():
        try:
            counts = component_parameters(folder, choose_variant(dtype, weights_on_disk(folder)))
        except (OSError, ValueError, KeyError):
            counts = {}
        if counts:
            return counts, "sizes from its files"
    if spec.source.startswith("tiny:"):
        return {}, ""
    return dict(PUBLISHED_PARAMETERS.get(spec.family, {})), "published sizes"


def component_line(name: str, spec: ModelSpec, models_dir: Path, dtype: str, quantize: str, text: str) -> str:
    """``model flux-dev GPU weights (published sizes): transformer 6.2 GiB (4bit), text_encoder_2 T5-XXL 8.9 GiB
    (bf16), …; 15.3 GiB in all``, largest first; says so when the sizes are unknown."""
    parameters, origin = model_parameters(spec, models_dir, dtype)
    if not parameters:
        return f"   model {name} GPU weights: unknown until it is built or downloaded"
    sizes = component_bytes(parameters, dtype, spec.family, quantize, text)
    parts = []
    for component, (size, stored) in sorted(sizes.items(), key=lambda item: -item[1][0]):
        role = ROLES.get((spec.family, component))
        label = f"{component} {role}" if role else component
        parts.append(f"{label} {memory_size(size)} ({stored})")
    total = memory_size(sum(size for size, _ in sizes.values()))
    return f"   model {name} GPU weights ({origin}): {', '.join(parts)}; {total} in all"


def component_lines(settings: Settings, dtype: str) -> list[str]:
    """A :func:`component_line` per model members may pick (the default first), at ``dtype`` and the configured
    quantization."""
    memory = settings.memory
    return [
        component_line(name, settings.registry[name], settings.models_dir, dtype, memory.quantize,
                       memory.quantize_text_encoders)
        for name in settings.member_models
        if name in settings.registry
    ]  # fmt: skip
