"""What the A1111 API's tests expect of its answers: the keys of ``info`` that A1111 clients read."""

from __future__ import annotations

CLIENT_INFO_KEYS = frozenset(
    {
        "prompt",
        "all_prompts",
        "negative_prompt",
        "all_negative_prompts",
        "seed",
        "all_seeds",
        "subseed",
        "all_subseeds",
        "width",
        "height",
        "sampler_name",
        "cfg_scale",
        "steps",
        "batch_size",
        "sd_model_name",
        "infotexts",
        "job_timestamp",
    }
)
"""The keys of a txt2img/img2img answer's ``info`` that A1111 clients read (every answer has at least these)."""
