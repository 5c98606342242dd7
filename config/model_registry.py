"""The model registry's entries: where a model's weights live and the defaults its jobs get, LoRA files, and the
models built in."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from config.model_costs import default_cost_multiplier
from engine.families import families_with, family_traits
from engine.samplers import DEFAULT_SAMPLER, SAMPLERS

SIZE_STEP = 8
"""Width and height of every image are multiples of this: diffusers' Stable Diffusion pipelines refuse others, and
it is the VAE factor of SD1.x/2.x/SDXL. The tiny test models need only 4 (a VAE factor of 2 and one UNet
downsampling), so the pipelines' 8 is what they truly need too."""

UNetFamily = Literal["sd15", "sd2", "sdxl"]
"""The families ControlNets and IP-Adapters are configured for (the UNet families: :mod:`engine.families`)."""
Family = Literal[UNetFamily, "sd3", "flux"]
"""Model families (what each can do: :mod:`engine.families`). ``sd3`` (Stable Diffusion 3/3.5) and ``flux``
(FLUX.1) are flow-matching transformers: their entries default to the flow samplers and sizes in multiples of 16."""


def size_step(family_multiple: int, source: str) -> int:
    """What a model's width and height must be multiples of: its family's (16 for SD3/FLUX.1: VAE factor 8 × 2×2
    patches), but :data:`SIZE_STEP` for a tiny test model (its VAE factor is 2)."""
    return SIZE_STEP if source.startswith("tiny:") else family_multiple


class ModelSpec(BaseModel):
    """One entry of the model registry: where the weights live and the defaults a job gets."""

    model_config = {"extra": "forbid"}

    source: str = Field(
        description="'tiny:<family>', a local diffusers folder, a single .safetensors file, or a Hugging Face hub id"
    )
    config: str = Field(
        default="", description="for a single-file source: a local diffusers folder of the same family (no hub)"
    )
    family: Family = "sd15"
    steps: int = Field(default=25, ge=1, le=150)
    cfg: float = Field(default=7.0, ge=0.0, le=30.0)
    base_size: int = Field(default=512, ge=32, le=4096, description="side of the square image at --ar 1:1")
    size_multiple: int = Field(
        default=SIZE_STEP,
        ge=SIZE_STEP,
        le=128,
        multiple_of=SIZE_STEP,
        description="width and height are multiples of this (8: what Stable Diffusion pipelines accept)",
    )
    cost_multiplier: float = Field(
        default=1.0, gt=0.0, le=100.0, description="unset: its family's GPU time relative to SD1.5 (config.model_costs)"
    )
    sampler: str = Field(default="", description="the sampler its jobs get unless a member picks one; '' = euler_a")
    samplers: list[str] = Field(
        default_factory=list, description="the samplers a member may pick for it (--sampler, a sweep); empty = all"
    )
    max_steps: int | None = Field(
        default=None, ge=1, le=150, description="the most --steps a member may ask of it (the server's max_steps too)"
    )
    max_cfg: float | None = Field(default=None, ge=0.0, le=30.0, description="the highest --cfg a member may ask of it")
    fuse_lora: str = Field(
        default="",
        description="a LoRA fused into its weights at load (an LCM-LoRA): a local .safetensors file (./, / or ~) or "
        "a hub id 'org/repo' (its pytorch_lora_weights.safetensors; fetched by `models pull`)",
    )
    fuse_lora_scale: float = Field(default=1.0, gt=0.0, le=4.0, description="the weight of the fused LoRA")
    ip_adapter: str = Field(
        default="", description="the IP-Adapter its image prompts use; '' = the first one of its family"
    )

    @model_validator(mode="before")
    @classmethod
    def _family_defaults(cls, data: Any) -> Any:
        """A flow-matching family's own samplers and size multiple unless the entry sets them."""
        if isinstance(data, dict):
            traits = family_traits(str(data.get("family", "sd15")))
            if traits.samplers is not None:
                data = {"samplers": list(traits.samplers), **data}
            data = {"size_multiple": size_step(traits.size_multiple, str(data.get("source", ""))), **data}
            family, source = str(data.get("family", "sd15")), str(data.get("source", ""))
            data = {"cost_multiplier": default_cost_multiplier(family, source), **data}
        return data

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        if value and value not in SAMPLERS:
            raise ValueError(f"sampler {value!r} is not a sampler; use one of: {', '.join(SAMPLERS)}")
        return value

    @field_validator("samplers")
    @classmethod
    def _known_samplers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in SAMPLERS]
        if unknown:
            raise ValueError(f"samplers names {', '.join(map(repr, unknown))}; use some of: {', '.join(SAMPLERS)}")
        return value

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> ModelSpec:
        if self.max_steps is not None and self.steps > self.max_steps:
            raise ValueError(f"steps {self.steps} is above max_steps {self.max_steps}; lower steps or raise max_steps")
        if self.max_cfg is not None and self.cfg > self.max_cfg:
            raise ValueError(f"cfg {self.cfg:g} is above max_cfg {self.max_cfg:g}; lower cfg or raise max_cfg")
        traits = family_traits(self.family)
        if traits.samplers is not None:
            unfit = [name for name in [*self.samplers, self.default_sampler] if name not in traits.samplers]
            if unfit:
                raise ValueError(
                    f"sampler {unfit[0]!r} does not work with {self.family} models; use some of: "
                    f"{', '.join(traits.samplers)}"
                )
        needed = size_step(traits.size_multiple, self.source)
        if self.size_multiple % needed:
            raise ValueError(
                f"size_multiple {self.size_multiple} does not suit {self.family} models; use a multiple of {needed}"
            )
        if self.fuse_lora and not traits.loras:
            raise ValueError(
                f"fuse_lora does not work on {self.family} models yet (only on {families_with('loras')}); remove it"
            )
        if self.ip_adapter and not traits.ip_adapter:
            raise ValueError(
                f"ip_adapter does not work on {self.family} models yet (only on {families_with('ip_adapter')}); "
                "remove it"
            )
        if self.samplers and self.default_sampler not in self.samplers:
            raise ValueError(
                f"the default sampler {self.default_sampler!r} is not in samplers ({', '.join(self.samplers)}); "
                "set sampler to one of them"
            )
        return self

    @property
    def default_sampler(self) -> str:
        """The sampler a job on this model gets when nobody picked one."""
        return self.sampler or family_traits(self.family).default_sampler or DEFAULT_SAMPLER

    @property
    def distilled_guidance(self) -> bool:
        """Its ``--cfg`` is a guidance input of a guidance-distilled model (FLUX.1), not classifier-free guidance:
        it reads no negative prompt, and A1111's ``cfg_scale`` does not apply to it."""
        return not family_traits(self.family).cfg

    @property
    def takes_guidance(self) -> bool:
        """Whether a job may give it a guidance value at all (FLUX.1-schnell, ``max_cfg`` 0, takes none)."""
        return self.max_cfg is None or self.max_cfg > 0

    def allows_sampler(self, name: str) -> bool:
        """Whether a member may pick sampler ``name`` for this model."""
        return not self.samplers or name in self.samplers

    def step_limit(self, server_max: int) -> int:
        """The most steps a job on this model may have: its own limit within the server's."""
        return min(server_max, self.max_steps) if self.max_steps is not None else server_max

    def cfg_limit(self, server_max: float) -> float:
        """The highest CFG scale a job on this model may have: its own limit within the server's."""
        return min(server_max, self.max_cfg) if self.max_cfg is not None else server_max


class LoraSpec(BaseModel):
    """A LoRA file prompts may use as ``<lora:NAME:weight>``."""

    model_config = {"extra": "forbid"}

    path: str = Field(description="a .safetensors LoRA file (kohya/A1111 or diffusers format)")
    family: Family | None = Field(
        default=None,
        description="the model family it was made for (sd15, sd2, sdxl, sd3 or flux): a prompt that uses it on a model "
        "of another family is refused before charging; unset: not checked (a LoRA of another family loads only partly)",
    )


TURBO_SAMPLERS = ["euler_a_trailing", "euler_trailing"]
"""What adversarially distilled models (SD-Turbo, SDXL-Turbo) are sampled with: Euler (ancestral) with trailing
timesteps, as their model cards do; another sampler's single step starts at timestep 1 instead of 999, a blur."""


def turbo_model(source: str, family: Family, *, base_size: int = 512) -> ModelSpec:
    """An adversarially distilled model (SD-Turbo, SDXL-Turbo): 1 step by default and at most 4, no guidance (at
    CFG 1 or less diffusers skips classifier-free guidance, so negative prompts do nothing), Euler a, trailing."""
    return ModelSpec(
        source=source,
        family=family,
        base_size=base_size,
        steps=1,
        max_steps=4,
        cfg=0.0,
        max_cfg=1.0,
        sampler="euler_a_trailing",
        samplers=list(TURBO_SAMPLERS),
    )


def lcm_lora_model(source: str, family: Family, lora: str, *, base_size: int = 512) -> ModelSpec:
    """A base model with an LCM-LoRA fused in at load: the LCM scheduler only, 4 steps by default and at most 8,
    CFG 1 by default and at most 2 (above 1 guidance and negative prompts work, at twice the compute)."""
    return ModelSpec(
        source=source,
        family=family,
        base_size=base_size,
        steps=4,
        max_steps=8,
        cfg=1.0,
        max_cfg=2.0,
        sampler="lcm",
        samplers=["lcm"],
        fuse_lora=lora,
    )


SD15_HUB = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SDXL_HUB = "stabilityai/stable-diffusion-xl-base-1.0"
SD35_MEDIUM_HUB = "stabilityai/stable-diffusion-3.5-medium"
FLUX_SCHNELL_HUB = "black-forest-labs/FLUX.1-schnell"
FLUX_DEV_HUB = "black-forest-labs/FLUX.1-dev"
FLUX_MAX_GUIDANCE = 10.0
"""The highest --cfg of FLUX.1-dev, whose --cfg is the distilled guidance it takes as an input (3.5 by default)."""

BUILTIN_MODELS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(source="tiny:sd15", family="sd15", steps=4, cfg=5.0, base_size=64),
    "tiny-sdxl": ModelSpec(source="tiny:sdxl", family="sdxl", steps=4, cfg=5.0, base_size=64),
    "tiny-turbo": turbo_model("tiny:sd-turbo", "sd2", base_size=64),
    "tiny-sd3": ModelSpec(source="tiny:sd3", family="sd3", steps=4, cfg=4.5, base_size=64),
    "tiny-flux": ModelSpec(
        source="tiny:flux", family="flux", steps=4, cfg=3.5, max_cfg=FLUX_MAX_GUIDANCE, base_size=64
    ),
    "sd15": ModelSpec(source=SD15_HUB, family="sd15", steps=25),
    "sdxl": ModelSpec(source=SDXL_HUB, family="sdxl", steps=30, base_size=1024),
    "sd-turbo": turbo_model("stabilityai/sd-turbo", "sd2"),
    "sdxl-turbo": turbo_model("stabilityai/sdxl-turbo", "sdxl"),
    "sd15-lcm": lcm_lora_model(SD15_HUB, "sd15", "latent-consistency/lcm-lora-sdv1-5"),
    "sdxl-lcm": lcm_lora_model(SDXL_HUB, "sdxl", "latent-consistency/lcm-lora-sdxl", base_size=1024),
    "sd35-medium": ModelSpec(source=SD35_MEDIUM_HUB, family="sd3", steps=28, cfg=4.5, base_size=1024),
    "flux-schnell": ModelSpec(  # timestep-distilled, no guidance input: 1 to 4 steps, --cfg means nothing
        source=FLUX_SCHNELL_HUB, family="flux", steps=4, max_steps=4, cfg=0.0, max_cfg=0.0, base_size=1024
    ),
    "flux-dev": ModelSpec(
        source=FLUX_DEV_HUB, family="flux", steps=28, cfg=3.5, max_cfg=FLUX_MAX_GUIDANCE, base_size=1024
    ),
}
