"""What a model's ``cost_multiplier`` defaults to: its family's GPU time per unit of work relative to SD1.5, so
members pay for GPU seconds, not for a label.

A job's price already counts its pixels × steps × images (:mod:`bot.scheduling.costs`: one unit is one 512² image
at 20 steps). What that leaves is how much longer one step on one pixel takes on the family's network than on
SD1.5's, and whether it runs the network twice per step (classifier-free guidance) or once (FLUX.1's guidance is
distilled into one pass). :data:`RELATIVE_IMAGE_SECONDS` holds GPU seconds per image at each family's base size
and default step count relative to SD1.5 at 512², 20 steps; :func:`family_cost_multiplier` divides by the
image's work units. Where each number comes from:

- ``sd15`` 1.0 by definition (H100, bf16: 0.85 s for 4 images at 20 steps through the whole job path, README's
  hardware table). ``sd2`` shares SD1.5's UNet architecture and base size, so the same.
- ``sdxl`` 4.1: measured, H100 bf16, 3.51 s against 0.85 s for 4 images at 1024², 20 steps (the H200 figures of
  the older job path give 4.5). Per unit of work that is 1.03, so SDXL's default stays 1.0.
- ``sd3`` (SD3.5 medium, 1024², 28 steps) 6.77 and ``flux`` (FLUX.1-dev, 1024², 28 steps) 28.8; FLUX.1-schnell at
  its 4 steps 4.1: **estimates** until ``python -m bench.gpu_flow`` measures them. Derived from the networks'
  FLOPs per forward pass at 1024², counted by torch's ``FlopCounterMode`` on the published architectures (SDXL
  UNet 5.98 TFLOP, SD3.5-medium MMDiT 7.02 TFLOP with 333 text tokens, FLUX.1 transformer 59.5 TFLOP with 512
  text tokens), scaled from SDXL's measured time at the same size (both spend their time in large bf16 matmuls
  at 1024²; SD1.5's small 512² kernels run at half the efficiency, which is why FLOPs alone overstate SDXL by 2×):
  SD3.5-medium ≈ 1.17 × SDXL per step with guidance's two passes; FLUX.1 ≈ 9.96 × SDXL per pass, one pass per
  step, so ≈ 4.98 × SDXL per step.

Per unit of work that makes SD3.5 1.2 and FLUX.1 5.1 (a FLUX.1-schnell image at 4 steps costs about what an SDXL
image at 20 does). Text encoding and the VAE decode happen once per image and are left out (a few % at these step
counts). Tiny test models (``tiny:`` sources) cost 1.0 whatever their family. An entry's own ``cost_multiplier``
wins.
"""

from __future__ import annotations

from typing import NamedTuple

UNIT_PIXELS = 512 * 512
UNIT_STEPS = 20


class ImageSeconds(NamedTuple):
    """GPU seconds of one image of a family at its base size and steps, relative to SD1.5 at 512², 20 steps."""

    base_size: int
    steps: int
    relative_seconds: float
    measured: bool


RELATIVE_IMAGE_SECONDS: dict[str, ImageSeconds] = {
    "sd15": ImageSeconds(512, 20, 1.0, measured=True),
    "sd2": ImageSeconds(512, 20, 1.0, measured=False),
    "sdxl": ImageSeconds(1024, 20, 4.13, measured=True),
    "sd3": ImageSeconds(1024, 28, 6.77, measured=False),
    "flux": ImageSeconds(1024, 28, 28.8, measured=False),
}
"""See the module docstring for where each number comes from; FLUX.1-schnell is ``flux`` at 4 steps (4.1)."""


def family_cost_multiplier(family: str) -> float:
    """The family's GPU seconds per unit of work relative to SD1.5, to one decimal (1.0 for an unknown family)."""
    entry = RELATIVE_IMAGE_SECONDS.get(family)
    if entry is None:
        return 1.0
    units = (entry.base_size**2 / UNIT_PIXELS) * (entry.steps / UNIT_STEPS)
    return round(entry.relative_seconds / units, 1)


def default_cost_multiplier(family: str, source: str) -> float:
    """What an entry without ``cost_multiplier`` costs: its family's multiplier; 1.0 for a tiny test model."""
    return 1.0 if source.startswith("tiny:") else family_cost_multiplier(family)
