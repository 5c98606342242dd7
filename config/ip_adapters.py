"""IP-Adapters: what lets a job take images as its prompt (``/blend``, an ``image_prompt``, Discord image links at the
start of a prompt), as registry entries an owner defines under ``[ip_adapters.NAME]``, and the ones built in.

An adapter belongs to one model family (its cross-attention weights are shaped for that family's UNet) and carries
its own image encoder (a CLIP vision model). Which adapter a model's image prompts use is :func:`adapter_for`'s
rule; every refusal it gives comes before anything is charged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from config.model_registry import UNetFamily

if TYPE_CHECKING:
    from config.model_registry import ModelSpec

TINY_ADAPTER_PREFIX = "tiny:"


class IpAdapterSpec(BaseModel):
    """One ``[ip_adapters.NAME]`` entry: where the adapter's weights and its image encoder are."""

    model_config = {"extra": "forbid"}

    source: str = Field(
        description="'tiny:ip-adapter-sd15' / 'tiny:ip-adapter-sdxl' (test adapters built locally), a local folder, "
        "or a Hugging Face hub id (loaded from the local cache only, never downloaded by a member's request)"
    )
    family: UNetFamily = Field(description="the model family whose UNet the adapter's weights are shaped for")
    weight_name: str = Field(default="ip-adapter.safetensors", description="the adapter's weight file")
    subfolder: str = Field(default="", description="the folder of weight_name inside source ('' = its top)")
    image_encoder: str = Field(
        default="image_encoder",
        description="the image encoder's folder: a name inside subfolder, or a path from source's top (with a '/')",
    )

    @property
    def is_tiny(self) -> bool:
        """A test adapter built in code: it fits the tiny test models only (and they fit only it)."""
        return self.source.startswith(TINY_ADAPTER_PREFIX)

    @property
    def weight_path(self) -> str:
        """The weight file's path inside ``source``."""
        return f"{self.subfolder.strip('/')}/{self.weight_name}" if self.subfolder.strip("/") else self.weight_name

    @property
    def image_encoder_path(self) -> str:
        """The image encoder folder's path inside ``source``, as diffusers' ``image_encoder_folder`` reads it."""
        if "/" in self.image_encoder:
            return self.image_encoder.strip("/")
        folder = self.subfolder.strip("/")
        return f"{folder}/{self.image_encoder}" if folder else self.image_encoder


H94_REPO = "h94/IP-Adapter"

BUILTIN_IP_ADAPTERS: dict[str, IpAdapterSpec] = {
    "tiny-ip-adapter": IpAdapterSpec(source="tiny:ip-adapter-sd15", family="sd15"),
    "tiny-ip-adapter-sdxl": IpAdapterSpec(source="tiny:ip-adapter-sdxl", family="sdxl"),
    "ip-adapter-sd15": IpAdapterSpec(
        source=H94_REPO, family="sd15", subfolder="models", weight_name="ip-adapter_sd15.safetensors"
    ),
    "ip-adapter-sdxl": IpAdapterSpec(
        source=H94_REPO, family="sdxl", subfolder="sdxl_models", weight_name="ip-adapter_sdxl.safetensors"
    ),
}
"""The tiny test adapters (random weights, shaped for the tiny models) and the published base IP-Adapters of SD1.5
(ViT-H image encoder) and SDXL (ViT-bigG image encoder)."""


def adapter_registry(defined: Mapping[str, IpAdapterSpec]) -> dict[str, IpAdapterSpec]:
    """The server's ``[ip_adapters.NAME]`` entries first (they win on a name clash), then the built-in ones."""
    return {**defined, **{name: spec for name, spec in BUILTIN_IP_ADAPTERS.items() if name not in defined}}


class AdapterChoiceError(ValueError):
    """No adapter fits the model; the message says what the owner must configure."""


def adapter_for(model_name: str, model: ModelSpec, adapters: Mapping[str, IpAdapterSpec]) -> str:
    """The name of the adapter a model's image prompts use: the one its ``ip_adapter`` names (which must be of its
    family), else the first of ``adapters`` of its family that fits it (a tiny adapter for a tiny model, a real one
    for a real model). Raises AdapterChoiceError naming what to configure."""
    wanted = model.ip_adapter
    if wanted:
        spec = adapters.get(wanted)
        if spec is None:
            raise AdapterChoiceError(
                f"model `{model_name}` names the IP-Adapter `{wanted}`, which is not configured; "
                f"add [ip_adapters.{wanted}] or fix [models.{model_name}] ip_adapter"
            )
        if spec.family != model.family:
            raise AdapterChoiceError(
                f"the IP-Adapter `{wanted}` is for {spec.family} models but model `{model_name}` is {model.family}; "
                f"set [models.{model_name}] ip_adapter to an adapter of the {model.family} family"
            )
        return wanted
    tiny_model = model.source.startswith(TINY_ADAPTER_PREFIX)
    for name, spec in adapters.items():
        if spec.family == model.family and spec.is_tiny == tiny_model:
            return name
    raise AdapterChoiceError(
        f"no IP-Adapter for the {model.family} family is configured, so model `{model_name}` cannot take image "
        f'prompts; the owner can add one under [ip_adapters.NAME] (family = "{model.family}")'
    )
