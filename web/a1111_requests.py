"""What A1111 clients send for ``txt2img`` and ``img2img``, as pydantic models, and the error a field this server
cannot honour raises.

Unknown fields are kept (they come back in ``parameters``) and otherwise ignored, as A1111 ignores what it does not
know; fields left out get this server's defaults (the member's /settings, then the model's), not A1111's: a
distilled model renders in 1-4 steps, and 512x512 is the wrong size for SDXL.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_STRENGTH = 0.75
"""A1111's ``denoising_strength`` for img2img when a request leaves it out."""


class A1111RequestError(ValueError):
    """A request field this server cannot honour; ``code`` names the problem for programs, the message says what to
    send instead."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Txt2ImgRequest(BaseModel):
    """A1111's ``StableDiffusionProcessingTxt2Img`` request as clients send it. Unknown fields are kept (they come
    back in ``parameters``) and otherwise ignored; fields left out get this server's defaults."""

    model_config = ConfigDict(extra="allow")

    prompt: str = ""
    negative_prompt: str | None = ""
    seed: int | None = Field(default=-1, description="-1: a random seed")
    sampler_name: str | None = Field(default=None, description="an A1111 sampler name, e.g. 'Euler a'")
    sampler_index: str | int | None = Field(default=None, description="older clients' sampler_name")
    scheduler: str | None = Field(default=None, description="'Automatic', 'Karras' or 'SGM Uniform'")
    batch_size: int | None = Field(default=1, ge=1, description="images per job (1 to the server's images per job)")
    n_iter: int | None = Field(default=1, ge=1, description="jobs, each charged (at most the server's jobs at once)")
    steps: int | None = Field(default=None, description="left out: the model's default")
    cfg_scale: float | None = Field(
        default=None, description="left out: the model's default; FLUX.1 has no CFG scale and ignores it"
    )
    distilled_cfg_scale: float | None = Field(
        default=None, description="FLUX.1-dev's guidance (Forge's field; left out: the model's default)"
    )
    width: int | None = Field(default=None, description="left out with height: the model's size")
    height: int | None = Field(default=None, description="left out with width: the model's size")
    tiling: bool | None = None
    override_settings: dict[str, Any] | None = Field(
        default=None, description="only sd_model_checkpoint is used (this request's model)"
    )
    send_images: bool | None = True
    lane: str | None = Field(default=None, description="imaginebot: fast, relax or turbo (default: the member's)")
    styles: Any = None
    subseed: Any = None
    subseed_strength: Any = None
    seed_resize_from_h: Any = None
    seed_resize_from_w: Any = None
    restore_faces: Any = None
    enable_hr: Any = None
    denoising_strength: Any = None
    save_images: Any = None
    alwayson_scripts: Any = None
    script_name: Any = None
    script_args: Any = None


class Img2ImgRequest(Txt2ImgRequest):
    """A1111's ``StableDiffusionProcessingImg2Img`` request: a txt2img request plus the image to start from (the
    first of ``init_images``), an optional inpainting ``mask`` (white repaints) and ``denoising_strength``."""

    init_images: list[str] | None = Field(default=None, description="base64 or data: URI; the first one is used")
    mask: str | None = Field(default=None, description="base64 or data: URI; white is repainted")
    denoising_strength: float | None = Field(default=DEFAULT_STRENGTH, description="above 0 and at most 1")
    inpainting_mask_invert: int | bool | None = Field(default=0, description="1 is not supported: invert the mask")
    resize_mode: Any = None
    mask_blur: Any = None
    inpainting_fill: Any = None
    inpaint_full_res: Any = None
    inpaint_full_res_padding: Any = None
    image_cfg_scale: Any = None
    include_init_images: Any = None
