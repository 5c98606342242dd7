"""Permutation prompts: ``a {red, blue} fox --ar {1:1, 3:2}`` expands into one prompt per combination.

Options are separated by commas; ``\\,`` is a literal comma inside braces. Braces may nest
(``a {cat, {red, blue} dog}``). Expansion happens on the whole raw prompt, flags included, before the flags
are parsed, and is capped so that one message cannot queue thousands of jobs. Nesting is limited to
:data:`MAX_DEPTH` levels, checked before any expansion work.
"""

from __future__ import annotations

from itertools import product

from bot.errors import PromptError

_OPEN, _CLOSE, _COMMA, _ESCAPE = "{", "}", ",", "\\"
MAX_DEPTH = 5
"""How deep braces may nest (``{a, {b, {c, d}}}`` is 3)."""


def expand_permutations(text: str, limit: int, *, max_depth: int = MAX_DEPTH) -> list[str]:
    """Every combination of the brace options in ``text``, in order; PromptError when malformed or too many."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    check_nesting(text, max_depth)
    results, end = _expand_sequence(text, 0, limit, top_level=True)
    assert end == len(text)
    unique = list(dict.fromkeys(" ".join(result.split()) for result in results))
    return unique


def check_nesting(text: str, max_depth: int = MAX_DEPTH) -> None:
    """PromptError when braces nest deeper than ``max_depth`` (a linear scan; nothing is expanded)."""
    depth = deepest = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == _ESCAPE and index + 1 < len(text) and text[index + 1] in "{},\\":
            index += 2
            continue
        if char == _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif char == _CLOSE:
            depth = max(0, depth - 1)
        index += 1
    if deepest > max_depth:
        raise PromptError(
            f"the prompt nests {{ }} {deepest} levels deep; permutations may nest at most {max_depth} levels"
        )


def _expand_sequence(text: str, start: int, limit: int, *, top_level: bool) -> tuple[list[str], int]:
    """Expand literal text and groups until a comma or closing brace of the enclosing group (or the end)."""
    pieces: list[list[str]] = []
    literal = ""
    index = start
    while index < len(text):
        char = text[index]
        if char == _ESCAPE and index + 1 < len(text) and text[index + 1] in "{},\\":
            literal += text[index + 1]
            index += 2
            continue
        if char == _OPEN:
            pieces.append([literal])
            literal = ""
            options, index = _expand_group(text, index + 1, limit)
            pieces.append(options)
            _check_count(pieces, limit)
            continue
        if char == _CLOSE:
            if top_level:
                raise PromptError("the prompt has a `}` without its `{`; write permutations as {a, b}")
            break
        if char == _COMMA and not top_level:
            break
        literal += char
        index += 1
    pieces.append([literal])
    return ["".join(combination) for combination in product(*pieces)], index


def _expand_group(text: str, start: int, limit: int) -> tuple[list[str], int]:
    """Options of one ``{…}`` group starting after its ``{``; returns them and the index after ``}``."""
    options: list[str] = []
    index = start
    while True:
        expanded, index = _expand_sequence(text, index, limit, top_level=False)
        options.extend(option.strip() for option in expanded)
        if len(options) > limit:
            raise _too_many(limit)
        if index >= len(text):
            raise PromptError("the prompt has a `{` without its `}`; write permutations as {a, b}")
        if text[index] == _CLOSE:
            return options, index + 1
        index += 1  # a comma: the next option


def _check_count(pieces: list[list[str]], limit: int) -> None:
    count = 1
    for options in pieces:
        count *= max(1, len(options))
        if count > limit:
            raise _too_many(limit)


def _too_many(limit: int) -> PromptError:
    return PromptError(f"the permutations make more than {limit} prompts; this server allows {limit} at once")
