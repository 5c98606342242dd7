"""What the engine process is started with: its configuration, the models, LoRAs, IP-Adapters and ControlNets a
task may name, and the memory options. Plain data, no torch (both processes import it; :mod:`engine.protocol`
re-exports every name)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EngineConfig:
    """What the engine process needs to start: the model to load and where to put files."""

    model_name: str
    model_source: str
    family: str
    data_dir: str
    device: str = "auto"
    dtype: str = "auto"
    max_batch: int = 1
    models: tuple[ModelEntry, ...] = ()
    """Every model a task may name (``RenderTask.model``); ``model_name`` is loaded at start-up."""
    loras: tuple[LoraEntry, ...] = ()
    ip_adapters: tuple[IpAdapterEntry, ...] = ()
    """Every IP-Adapter a task may name (``RenderTask.ip_adapter``)."""
    memory: MemoryOptions = field(default_factory=lambda: MemoryOptions())
    max_loaded_models: int = 1
    """How many models stay loaded at once (least recently used is dropped first)."""
    memory_budget_gb: float = 0.0
    """Drop least recently used models while the loaded ones weigh more than this; 0 means no budget."""
    preview_every: int = 0
    """Send a small preview every this many steps; 0 sends none."""
    safety_classifier: str = ""
    """The image safety checker tasks with ``safety_check`` use (see :mod:`engine.safety`); empty: none configured."""
    controlnets: tuple[ControlNetEntry, ...] = ()
    """Every ControlNet a task may name (``RenderTask.controlnet``)."""
    depth_source: str = ""
    """The depth estimator of ``control_mode`` depth (``[depth] source``); empty: none configured."""
    visible_devices: str = ""
    """``CUDA_VISIBLE_DEVICES`` of this engine (``"1"``: the host's second GPU is its ``cuda``), set before CUDA
    starts; empty leaves the inherited value (Ray sets its own for an actor)."""


@dataclass(frozen=True)
class ModelEntry:
    """A registry entry as the engine sees it.

    ``source`` is ``tiny:<family>``, a diffusers folder, a single ``.safetensors``/``.ckpt`` file (``config``
    then names a local diffusers folder of the same family, so nothing is fetched), or a hub id.
    """

    name: str
    source: str
    family: str = "sd15"
    config: str = ""
    fuse_lora: str = ""
    """A LoRA fused into the weights at load (an LCM-LoRA): a local file, or a hub id ``org/repo``."""
    fuse_lora_scale: float = 1.0
    base_size: int = 0
    """Side of its 1:1 image (the registry's ``base_size``): the size a compiled model is warmed up at; 0 = the
    family's usual size."""


@dataclass(frozen=True)
class LoraEntry:
    """A LoRA file prompts may name as ``<lora:name:weight>``."""

    name: str
    path: str
    family: str = ""
    """The model family it was made for ('' = not said: it is loaded on any model)."""


@dataclass(frozen=True)
class IpAdapterEntry:
    """An IP-Adapter as the engine sees it (``[ip_adapters.NAME]``): ``source`` is ``tiny:ip-adapter-<family>``, a
    local folder or a hub id (loaded from the cache only); ``weight_name`` lies in ``subfolder`` of it and the image
    encoder in ``image_encoder`` (diffusers' ``image_encoder_folder``)."""

    name: str
    source: str
    family: str
    weight_name: str = "ip-adapter.safetensors"
    subfolder: str = ""
    image_encoder: str = "image_encoder"


@dataclass(frozen=True)
class ControlNetEntry:
    """A ControlNet as the engine sees it (``[controlnet.NAME]``): ``source`` is ``tiny:controlnet-<family>``, a
    local diffusers folder or a hub id (loaded from the cache only); ``family`` is the model family it serves."""

    name: str
    source: str
    family: str


@dataclass(frozen=True)
class MemoryOptions:
    """Memory and speed switches. ``offload``: none, model, sequential or auto (by free VRAM)."""

    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    offload: str = "none"
    channels_last: bool | str = "auto"
    """True, False or ``auto`` (on for SD1.x/2.x on CUDA; see :mod:`engine.speed`)."""
    fused_qkv: bool | str = "auto"
    """Fused QKV projections in attention: True, False or ``auto`` (as ``channels_last``)."""
    tf32: bool = True
    """TF32 matmuls and convolutions on CUDA for what runs in fp32."""
    compile: bool = False
    compile_mode: str = "regional"
    """``regional`` (the UNet's repeated transformer blocks) or ``full`` (the whole UNet)."""
    compile_backend: str = "inductor"
    """torch.compile's backend; not a setting (tests use ``eager``: dynamo without code generation)."""
    quantize: str = "none"
    """none, 8bit or 4bit (bitsandbytes, CUDA only) for the denoiser."""
    quantize_text_encoders: str = "none"
    """none, 8bit or 4bit (bitsandbytes, CUDA only) for the T5 text encoder of SD3/FLUX.1."""
    sdpa: bool = True
