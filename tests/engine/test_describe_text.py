"""From raw captions to /describe's prompts: cleaning, ``--ar`` for the image's shape, distinct suggestions."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.requests.prompt import PromptLimits, parse_prompt
from engine.describe_text import (
    MAX_SUGGESTION_CHARS,
    aspect_flag,
    aspect_ratio,
    clean_caption,
    suggestion_text,
    suggestions_from,
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a cat sitting on a couch", "a cat sitting on a couch"),
        ("arafed woman in a red dress", "woman in a red dress"),
        ("there is a dog on the beach .", "a dog on the beach"),
        ("a fox --ar 9:1 --seed 3", "a fox ar 9 1 seed 3"),
        ("a {red,blue} fox", "a red,blue fox"),
        ("cat::2 dog::-1", "cat 2 dog 1"),
        ("<lora:pixel:1> a (castle:1.4) [blur]", "lora pixel 1 a castle 1.4 blur"),
        ("a fox\x07\u200b in\nsnow\u2028now", "a fox in snow now"),
        ("a well-lit room - cozy", "a well-lit room cozy"),
        ("  ,, . ", ""),
        ("red , , blue !!", "red, blue!"),
        ("ＡＢＣ ｆｏｘ", "ABC fox"),
    ],
)
def test_clean_caption(raw: str, clean: str) -> None:
    """Control, invisible and prompt-syntax characters go; filler openings and BLIP's artifacts too."""
    assert clean_caption(raw) == clean


def test_long_captions_are_cut_on_a_word() -> None:
    """At most the limit, never half a word."""
    text = clean_caption("word " * 200, limit=23)
    assert text == "word word word word"


@given(st.text(max_size=600))
def test_a_cleaned_caption_is_plain_prompt_text(raw: str) -> None:
    """Whatever a model writes, the suggestion is short, has no control character and no prompt syntax."""
    text = clean_caption(raw)
    assert len(text) <= MAX_SUGGESTION_CHARS
    assert "--" not in text
    assert not any(unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"} for char in text)
    assert not set(text) & set('{}[]()<>:|*_`@#\\"')
    assert text == text.strip()


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ((512, 512), (1, 1)),
        ((1920, 1080), (16, 9)),
        ((1080, 1920), (9, 16)),
        ((1023, 768), (4, 3)),
        ((96, 64), (3, 2)),
        ((640, 427), (3, 2)),
        ((5000, 100), (4, 1)),
        ((100, 5000), (1, 4)),
        ((1, 1), (1, 1)),
    ],
)
def test_aspect_ratio(size: tuple[int, int], ratio: tuple[int, int]) -> None:
    """The closest simple ratio, within what --ar accepts."""
    assert aspect_ratio(*size) == ratio


@given(st.integers(1, 20_000), st.integers(1, 20_000))
def test_every_aspect_flag_is_one_the_prompt_parser_accepts(width: int, height: int) -> None:
    """A suggestion's --ar never makes /imagine refuse it."""
    parsed = parse_prompt(f"a fox {aspect_flag(width, height)}", PromptLimits())
    assert parsed.aspect == aspect_ratio(width, height)


def test_suggestions_are_distinct_cleaned_and_end_with_the_shape() -> None:
    """Empty and same-reading captions count once; at most four; each ends with the image's --ar."""
    captions = ["A red fox.", "a red fox", "", "\x07", "a fox in snow", "a fox at night", "an owl", "a cat"]
    assert suggestions_from(captions, 1920, 1080) == (
        "A red fox --ar 16:9",
        "a fox in snow --ar 16:9",
        "a fox at night --ar 16:9",
        "an owl --ar 16:9",
    )


@pytest.mark.parametrize(
    ("suggestion", "text"),
    [("a red fox --ar 3:2", "a red fox"), ("a red fox", "a red fox"), ("a --ar b", "a --ar b")],
)
def test_suggestion_text(suggestion: str, text: str) -> None:
    """The caption alone, without the --ar flag /describe appends."""
    assert suggestion_text(suggestion) == text
