"""What each model family can do: SD3 and FLUX.1 refuse what only the UNet families have, FLUX.1 also what needs
classifier-free guidance, each with what to change; the engine refuses such a task with the same message."""

from __future__ import annotations

import dataclasses

import pytest

from engine.families import (
    FAMILIES,
    FLOW_FAMILIES,
    FLOW_SAMPLERS,
    check_family_task,
    families_with,
    family_refusal,
    family_traits,
    t5_token_limit,
)
from engine.protocol import RenderTask, TaskKind
from engine.samplers import SAMPLERS

UNET_FAMILIES = ("sd15", "sd2", "sdxl")
EVERYTHING = {
    "prompt": "a (red:1.2) fox <lora:grain:0.5>",
    "negative_prompt": "blur",
    "multi_prompt": True,
    "chaos": 50,
    "tile": True,
    "control": True,
    "image_prompts": True,
}


def test_the_flow_families_are_sd3_and_flux_with_flow_samplers_only() -> None:
    """sd3 and flux are flow-matching families of 16 latent channels whose samplers all exist."""
    assert FLOW_FAMILIES == ("sd3", "flux")
    for family in FLOW_FAMILIES:
        traits = family_traits(family)
        assert (traits.latent_channels, traits.size_multiple, traits.samplers) == (16, 16, FLOW_SAMPLERS)
        assert traits.default_sampler in FLOW_SAMPLERS
    assert set(FLOW_SAMPLERS) <= set(SAMPLERS)


@pytest.mark.parametrize("family", UNET_FAMILIES)
def test_the_unet_families_can_do_everything(family: str) -> None:
    """SD1.x/2.x and SDXL refuse none of the options."""
    assert family_refusal(family, "m", **EVERYTHING) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("family", "asked", "flag", "fragment"),
    [
        (
            "flux",
            {"prompt": "a fox <lora:grain:0.5>", "lora_families": {"grain": "sdxl"}},
            "lora",
            "LoRA `grain` is for sdxl models and model `m` is flux",
        ),
        (
            "sd3",
            {"prompt": "a fox <lora: grain >", "lora_families": {"grain": "flux"}},
            "lora",
            "use a LoRA made for sd3, or use --model with a flux model",
        ),
        (
            "sd15",
            {"prompt": "a fox <lora:grain>", "lora_families": {"grain": "sd3"}},
            "lora",
            "LoRA `grain` is for sd3 models",
        ),
        ("flux", {"prompt": "a", "multi_prompt": True, "negative_parts": True}, "::", "remove the negative parts"),
        ("flux", {"prompt": "a (red:1.2) fox"}, "prompt", "prompt weights such as `(word:1.2)`"),
        (
            "sd3",
            {"prompt": "a [red] fox"},
            "prompt",
            "reads the prompt through T5, which would read the brackets as words",
        ),
        ("flux", {"prompt": "a (red:1.2) fox"}, "prompt", "or weigh whole parts with `::` (`a cat:: a dog::2`)"),
        (
            "flux",
            {"prompt": "fox " * 300, "t5_limit": 256},
            "prompt",
            "it reads at most 256 T5 tokens and yours is at least 301 tokens",
        ),
        ("sd3", {"prompt": "a", "parts": ["fox " * 600, "cat"], "t5_limit": 512}, "prompt", "shorten the prompt"),
        ("sd3", {"prompt": "a", "negative_prompt": "blur " * 600, "t5_limit": 512}, "prompt", "at most 512 T5 tokens"),
        ("sd3", {"prompt": "a fox", "negative_prompt": "(blur)"}, "prompt", "remove them"),
        ("flux", {"prompt": "a fox", "negative_prompt": "blur"}, "no", "`--no` has no effect on model `m`"),
        ("flux", {"prompt": "a fox", "negative_prompt": "blur"}, "no", "remove --no and say what you want"),
        ("flux", {"prompt": "a fox", "chaos": 20}, "chaos", "has none (its --cfg is a distilled guidance)"),
        ("sd3", {"prompt": "a fox", "tile": True}, "tile", "`--tile` does not work on model `m` (sd3)"),
        ("flux", {"prompt": "a fox", "control": True}, "controlnet", "drop the control image"),
        ("sd3", {"prompt": "a fox", "image_prompts": True}, "iw", "drop the image links or attachments"),
    ],
)
def test_what_a_flow_family_cannot_do_is_refused_saying_what_to_change(
    family: str, asked: dict[str, object], flag: str, fragment: str
) -> None:
    """Each option a family has no use for is refused, naming the flag and what to change."""
    refusal = family_refusal(family, "m", **asked)  # type: ignore[arg-type]
    assert refusal is not None
    assert refusal.flag == flag
    assert fragment in refusal.message


@pytest.mark.parametrize(
    ("family", "asked"),
    [
        ("sd3", {"prompt": "a fox", "negative_prompt": "blur", "chaos": 30}),  # SD3 guides with CFG
        ("flux", {"prompt": r"a fox \(not weighted\)"}),  # escaped brackets are words
        ("flux", {"prompt": "a fox, golden hour, 35mm"}),
        ("flux", {"prompt": "a fox <lora:grain:0.5>", "lora_families": {"grain": "flux"}}),  # a LoRA for FLUX.1
        ("sd3", {"prompt": "a fox <lora:grain>", "lora_families": {"grain": ""}}),  # a LoRA whose family is not said
        ("sd3", {"prompt": "a", "multi_prompt": True, "negative_parts": True}),  # negative parts via CFG
        ("flux", {"prompt": "a:: b::2", "multi_prompt": True}),
        ("flux", {"prompt": "fox " * 254, "t5_limit": 256}),  # 255 tokens at least: may fit, the engine counts
        ("sdxl", {"prompt": "fox " * 600, "t5_limit": 0}),  # no T5: compel chunks long prompts
    ],
)
def test_what_a_flow_family_can_do_passes(family: str, asked: dict[str, object]) -> None:
    """A plain prompt passes; SD3 takes a negative prompt and --chaos as SD does; LoRAs of the family, multi-prompts
    and prompts that may fit in T5 pass."""
    assert family_refusal(family, "m", **asked) is None  # type: ignore[arg-type]


def test_families_with_a_feature_are_named_in_words() -> None:
    """The families that have a feature, as a message names them."""
    assert families_with("loras") == "sd15, sd2, sdxl, sd3 and flux"
    assert families_with("prompt_weights") == "sd15, sd2 and sdxl"
    assert families_with("flow") == "sd3 and flux"
    assert families_with("cfg") == "sd15, sd2, sdxl and sd3"


def test_an_unknown_family_is_treated_as_sd15() -> None:
    """A pipeline class name (a family the registry does not list) gets SD1.5's traits."""
    assert family_traits("KandinskyPipeline") is FAMILIES["sd15"]


@pytest.mark.parametrize(
    ("family", "changes", "fragment"),
    [
        ("flux", {"negative_prompt": "blur"}, "`--no` has no effect"),
        ("sd3", {"kind": TaskKind.CONTROL}, "ControlNets do not work"),
        ("sd3", {"image_prompts": ("a.png",)}, "image prompts do not work"),
        ("flux", {"weighted_prompts": (("a", 1.0), ("b", -0.5))}, "negative multi-prompt weights"),
    ],
)
def test_the_engine_refuses_such_a_task_with_the_same_message(
    family: str, changes: dict[str, object], fragment: str
) -> None:
    """A task that reaches the engine anyway is a ValueError (bad input) with the request's message."""
    task = dataclasses.replace(RenderTask(1, "a fox", "", 64, 64, 4, 3.5, (1,), "euler", "out"), **changes)
    with pytest.raises(ValueError, match=fragment):
        check_family_task(family, "m", task)
    check_family_task("sd15", "m", task)  # the UNet families render it


@pytest.mark.parametrize(
    ("family", "guidance", "limit"),
    [("sd3", True, 256), ("flux", True, 512), ("flux", False, 256), ("sdxl", True, 0), ("sd15", False, 0)],
)
def test_the_t5_length_of_each_family(family: str, guidance: bool, limit: int) -> None:
    """SD3.5 reads 256 T5 tokens, FLUX.1-dev 512, FLUX.1-schnell (no guidance input) 256; the UNet families none."""
    assert t5_token_limit(family, guidance=guidance) == limit
