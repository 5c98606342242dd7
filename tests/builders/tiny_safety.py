"""A tiny random-weight Stable Diffusion safety checker, built in code (diffusers' real class, a CLIP vision model of
a few parameters) and saved as a real folder, with the concept threshold a test needs."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor

FLAG_ALL = -2.0
"""A concept threshold every image is above: a cosine similarity is at least -1."""
FLAG_NONE = 2.0
"""A concept threshold no image reaches: a cosine similarity is at most 1."""
IMAGE_SIZE = 32
PROJECTION_DIM = 16


def tiny_safety_processor() -> CLIPImageProcessor:
    """The image processor of the tiny checker: CLIP's, at its tiny image size."""
    return CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def build_tiny_safety_checker(
    folder: Path, *, threshold: float, seed: int = 0, aim_at: Image.Image | None = None, pipeline_layout: bool = False
) -> Path:
    """Write a tiny ``StableDiffusionSafetyChecker`` and its ``CLIPImageProcessor`` to ``folder`` and return it.

    Every concept (and special-care concept) gets ``threshold``: an image is flagged when its cosine similarity to a
    concept exceeds it. ``aim_at``: the first concept becomes that image's embedding (its similarity is 1), so a
    threshold below 1 flags it and the images unlike it stay below. ``pipeline_layout``: the files go in
    ``safety_checker/`` and ``feature_extractor/`` as in a Stable Diffusion pipeline folder.
    """
    vision = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": IMAGE_SIZE,
        "patch_size": 4,
        "num_channels": 3,
    }
    text = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION_DIM)
    processor = tiny_safety_processor()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        checker = StableDiffusionSafetyChecker(config)
        with torch.no_grad():
            checker.concept_embeds.copy_(torch.randn_like(checker.concept_embeds))
            checker.special_care_embeds.copy_(torch.randn_like(checker.special_care_embeds))
            checker.concept_embeds_weights.fill_(threshold)
            checker.special_care_embeds_weights.fill_(threshold)
            if aim_at is not None:
                pixels = processor(images=[aim_at.convert("RGB")], return_tensors="pt").pixel_values
                embedding = checker.visual_projection(checker.vision_model(pixels)[1])
                checker.concept_embeds[0].copy_(embedding[0])
    checker_folder = folder / "safety_checker" if pipeline_layout else folder
    processor_folder = folder / "feature_extractor" if pipeline_layout else folder
    checker.save_pretrained(checker_folder, safe_serialization=True)
    processor.save_pretrained(processor_folder)
    return folder
