"""Permutation prompts expand in order, nest, escape, and refuse what is malformed or too large."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import PromptError
from bot.requests.permutations import expand_permutations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a fox", ["a fox"]),
        ("a {red, blue} fox", ["a red fox", "a blue fox"]),
        ("{a, b} {c, d}", ["a c", "a d", "b c", "b d"]),
        ("a fox --ar {1:1, 3:2}", ["a fox --ar 1:1", "a fox --ar 3:2"]),
        ("a {cat, {red, blue} dog}", ["a cat", "a red dog", "a blue dog"]),
        ("a {red\\, dark, blue} fox", ["a red, dark fox", "a blue fox"]),
        ("a {red, red} fox", ["a red fox"]),
        ("a {} fox", ["a fox"]),
        ("plain, with commas", ["plain, with commas"]),
    ],
)
def test_expansion(text: str, expected: list[str]) -> None:
    """Combinations come out in reading order, duplicates once."""
    assert expand_permutations(text, limit=10) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a {red, blue fox", "without its `}`"),
        ("a red} fox", "without its `{`"),
        ("a {{red, blue} fox", "without its `}`"),
        ("{a,b,c} {d,e,f} {g,h}", "more than 10 prompts"),
        ("{" * 5 + "a" + "}" * 5, None),
        ("{" * 6 + "a" + "}" * 6, "nests { } 6 levels deep; permutations may nest at most 5"),
        ("{" * 600 + "fox" + "}" * 600, "nests { } 600 levels deep"),
        ("{" * 600 + "fox", "nests { } 600 levels deep"),
        ("\\{" * 9 + "a", None),
    ],
)
def test_malformed_or_too_many(text: str, fragment: str | None) -> None:
    """Unbalanced braces, nesting past 5 levels and oversized expansions are PromptErrors, never a RecursionError."""
    if fragment is None:
        assert len(expand_permutations(text, limit=10)) == 1
        return
    with pytest.raises(PromptError, match=fragment.replace("{", "\\{").replace("}", "\\}")):
        expand_permutations(text, limit=10)


def test_huge_expansion_is_refused_without_building_it() -> None:
    """Twenty groups of ten options (10^20 prompts) are refused at once."""
    with pytest.raises(PromptError, match="more than 40"):
        expand_permutations("{0,1,2,3,4,5,6,7,8,9} " * 20, limit=40)


@given(st.text(alphabet="ab{},\\ ", max_size=40))
def test_never_crashes(text: str) -> None:
    """Any mix of braces and commas gives prompts or a PromptError."""
    try:
        results = expand_permutations(text, limit=16)
    except PromptError:
        return
    assert 1 <= len(results) <= 16
