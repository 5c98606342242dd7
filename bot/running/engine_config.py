"""What the engine process is started with, from the owner's settings (models, LoRAs, memory switches)."""

from __future__ import annotations

from config.control_registry import controlnet_registry
from config.ip_adapters import adapter_registry
from config.settings import Settings
from engine.protocol import ControlNetEntry, EngineConfig, IpAdapterEntry, LoraEntry, MemoryOptions, ModelEntry


def engine_config(settings: Settings) -> EngineConfig:
    """The engine's start-up configuration: the default model first, every registry model and LoRA it may load."""
    spec = settings.registry[settings.model]
    return EngineConfig(
        model_name=settings.model,
        model_source=spec.source,
        family=spec.family,
        data_dir=str(settings.data_dir),
        device=settings.device,
        dtype=settings.dtype,
        max_batch=settings.engine_max_batch,
        models=tuple(
            ModelEntry(
                name, entry.source, entry.family, entry.config, entry.fuse_lora, entry.fuse_lora_scale, entry.base_size
            )
            for name, entry in settings.registry.items()
        ),
        loras=tuple(LoraEntry(name, entry.path, entry.family or "") for name, entry in settings.loras.items()),
        ip_adapters=tuple(
            IpAdapterEntry(name, spec.source, spec.family, spec.weight_name, spec.subfolder, spec.image_encoder)
            for name, spec in adapter_registry(settings.ip_adapters).items()
        ),
        memory=MemoryOptions(**settings.memory.model_dump()),
        max_loaded_models=settings.max_loaded_models,
        memory_budget_gb=settings.memory_budget_gb,
        preview_every=settings.preview_every,
        safety_classifier=settings.safety.classifier if settings.safety.enabled else "",
        controlnets=tuple(
            ControlNetEntry(name, spec.source, spec.family)
            for name, spec in controlnet_registry(settings.controlnet).items()
        ),
        depth_source=settings.depth.source,
    )
