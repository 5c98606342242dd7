"""The prompt parser: table tests of what parses, what does not, and what the error says."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import PromptError
from bot.requests.prompt import ParsedPrompt, PromptLimits, clean_text, parse_prompt

VALID = [
    ("a red fox", ParsedPrompt(text="a red fox")),
    ("a red fox --ar 3:2", ParsedPrompt(text="a red fox", aspect=(3, 2), flags=("ar",))),
    ("a red fox --ar 16:8", ParsedPrompt(text="a red fox", aspect=(2, 1), flags=("ar",))),
    ("fox --seed 7", ParsedPrompt(text="fox", seed=7, flags=("seed",))),
    ("fox --seed 0", ParsedPrompt(text="fox", seed=0, flags=("seed",))),
    ("fox --seed 4294967295", ParsedPrompt(text="fox", seed=4294967295, flags=("seed",))),
    ("fox --no blur, text", ParsedPrompt(text="fox", negative_prompt="blur, text", flags=("no",))),
    ("fox --no blur,,  text ,", ParsedPrompt(text="fox", negative_prompt="blur, text", flags=("no",))),
    ("fox --steps 30", ParsedPrompt(text="fox", steps=30, flags=("steps",))),
    ("fox --cfg 7.5", ParsedPrompt(text="fox", cfg=7.5, flags=("cfg",))),
    ("fox --cfg 0", ParsedPrompt(text="fox", cfg=0.0, flags=("cfg",))),
    ("fox —ar 1:2", ParsedPrompt(text="fox", aspect=(1, 2), flags=("ar",))),  # a phone's em dash
    ("fox --AR 2:3", ParsedPrompt(text="fox", aspect=(2, 3), flags=("ar",))),
    ("fox --aspect 2:3", ParsedPrompt(text="fox", aspect=(2, 3), flags=("ar",))),
    (
        "a red fox --ar 3:2 --seed 7 --no snow, trees --steps 12 --cfg 4",
        ParsedPrompt(
            text="a red fox",
            negative_prompt="snow, trees",
            aspect=(3, 2),
            seed=7,
            steps=12,
            cfg=4.0,
            flags=("ar", "seed", "no", "steps", "cfg"),
        ),
    ),
    ("  a   red\tfox\n ", ParsedPrompt(text="a red fox")),
    ("a\u200bred fox", ParsedPrompt(text="ared fox")),  # zero-width space removed
    ("fox -- not a flag", ParsedPrompt(text="fox -- not a flag")),
    ("fox --sampler DPMPP_2M", ParsedPrompt(text="fox", sampler="dpmpp_2m", flags=("sampler",))),
    ("fox --model tiny", ParsedPrompt(text="fox", model="tiny", flags=("model",))),
    ("fox --repeat 3", ParsedPrompt(text="fox", repeat=3, flags=("repeat",))),
    ("fox --r 2", ParsedPrompt(text="fox", repeat=2, flags=("repeat",))),
    ("fox --tile", ParsedPrompt(text="fox", tile=True, flags=("tile",))),
    ("fox --relax --seed 3", ParsedPrompt(text="fox", lane="relax", seed=3, flags=("relax", "seed"))),
    ("fox --turbo", ParsedPrompt(text="fox", lane="turbo", flags=("turbo",))),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_prompts(raw: str, expected: ParsedPrompt) -> None:
    """Each valid prompt parses to exactly the expected request."""
    assert parse_prompt(raw) == expected


INVALID = [
    ("", None, "prompt is empty"),
    ("--ar 3:2", None, "prompt is empty"),
    ("fox --ar 3:0", "ar", "--ar W:H"),
    ("fox --ar 1:0", "ar", "--ar W:H"),
    ("fox --ar 3", "ar", "--ar W:H"),
    ("fox --ar -3:2", "ar", "--ar W:H"),
    ("fox --ar 10:1", "ar", "too extreme"),
    ("fox --ar 999:1", "ar", "--ar W:H"),
    ("fox --ar", "ar", "needs a value"),
    ("fox --seed -1", "seed", "--seed N"),
    ("fox --seed 4294967296", "seed", "out of range"),
    ("fox --seed abc", "seed", "--seed N"),
    ("fox --seed 99999999999999999999999", "seed", "--seed N"),
    ("fox --steps 0", "steps", "--steps N with N from 1 to 60"),
    ("fox --steps 61", "steps", "out of range"),
    ("fox --steps 2.5", "steps", "--steps N"),
    ("fox --cfg nan", "cfg", "--cfg X"),
    ("fox --cfg inf", "cfg", "--cfg X"),
    ("fox --cfg -1", "cfg", "--cfg X"),
    ("fox --cfg 31", "cfg", "out of range"),
    ("fox --cfg 1e3", "cfg", "--cfg X"),
    ("fox --no", "no", "needs a value"),
    ("fox --no ,,,", "no", "needs words"),
    ("fox --seed 1 --seed 2", "seed", "given twice"),
    ("fox --zoom 2", "zoom", "unknown flag `--zoom`"),
    ("fox --seed 7 extra words", "seed", "put the prompt before the flags"),
    ("x" * 1501, None, "limit is 1500"),
    ("fox --repeat 0", "repeat", "--repeat N with N from 1 to 4"),
    ("fox --repeat 10000", "repeat", "out of range"),
    ("fox --fast --relax", "relax", "give one lane flag"),
    ("fox --tile extra", "tile", "put the prompt before the flags"),
    ("fox --sampler ../../etc", "sampler", "not a sampler on this server"),
]


@pytest.mark.parametrize(("raw", "flag", "fragment"), INVALID)
def test_invalid_prompts_name_the_flag_and_form(raw: str, flag: str | None, fragment: str) -> None:
    """Each bad prompt raises PromptError naming the flag, with text that says what to write."""
    with pytest.raises(PromptError) as caught:
        parse_prompt(raw)
    assert caught.value.flag == flag
    assert fragment in str(caught.value)


def test_limits_are_parameters() -> None:
    """The server's limits on prompt length and steps apply."""
    assert parse_prompt("fox --steps 100", PromptLimits(max_steps=100)).steps == 100
    with pytest.raises(PromptError, match="limit is 10"):
        parse_prompt("a" * 11, PromptLimits(max_chars=10))


def test_names_are_checked_against_what_the_server_has() -> None:
    """--model and --sampler accept only known names, and the error lists them."""
    limits = PromptLimits(models=("tiny", "sd15"), samplers=("euler", "ddim"))
    assert parse_prompt("fox --model sd15 --sampler ddim", limits).model == "sd15"
    with pytest.raises(PromptError, match="one of sd15, tiny"):
        parse_prompt("fox --model sdxl", limits)
    with pytest.raises(PromptError, match="one of ddim, euler"):
        parse_prompt("fox --sampler lms", limits)


def test_clean_text_drops_bidi_and_control_characters() -> None:
    """Right-to-left overrides and control characters never reach the model or the channel."""
    assert clean_text("a\u202eb\x00c\u2066d") == "ab cd"


@given(st.text(max_size=300))
def test_parser_only_ever_raises_prompt_error(raw: str) -> None:
    """Whatever a member types, the answer is a parsed prompt or a PromptError, never a crash."""
    try:
        parsed = parse_prompt(raw)
    except PromptError as error:
        assert str(error)
    else:
        assert parsed.text
        assert parsed.text == parsed.text.strip()


@given(
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_round_trip_of_valid_flags(width: int, height: int, seed: int) -> None:
    """A valid --ar and --seed always parse back to the reduced ratio and the same seed."""
    ratio = width / height
    raw = f"a cat --ar {width}:{height} --seed {seed}"
    if not 0.25 <= ratio <= 4:
        with pytest.raises(PromptError):
            parse_prompt(raw)
        return
    parsed = parse_prompt(raw)
    assert parsed.seed == seed
    assert parsed.aspect[0] * height == parsed.aspect[1] * width
