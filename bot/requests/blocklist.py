"""The prompt blocklist rule: does a prompt contain a blocked word or phrase?

A prompt and every blocked entry are read the same way, so both sides always agree:

1. Characters. Letters that look like an ASCII letter or digit become it, as written (capital Greek ``Ν`` is
   ``n``, its small ``ν`` is ``v``), from Unicode's confusables data as shipped by ``confusable-homoglyphs``
   (``nѕfw`` with Cyrillic ѕ, ``gоrе`` with Cyrillic о and е, Greek ``ο``, ``ɡ``); small capitals go by their
   Unicode name (``ɢᴏʀᴇ``). NFKC then folds
   full-width, mathematical, circled, parenthesised and superscript forms (``ｇ``, ``𝐠``, ``ⓖ``, ``⒢``, ``ᵍ``),
   and the negative circled or squared letters and regional indicators that NFKC leaves alone (🅖, 🅶, 🇬) become
   their letter. Characters nobody sees are dropped: Unicode's Default_Ignorable_Code_Point set, every format (Cf)
   character and every combining mark (accents and "zalgo" stacks come off). Everything is case-folded.
2. Words. Whitespace splits tokens; inside a token letters and digits make pieces and anything else separates them.
   Consecutive one-letter pieces are one word, within a token (``g.o.r.e``, ``n-s_f.w``) or across spaces
   (``n s f w``, ``g . o . r . e``; tokens of punctuation or emoji only are skipped); such a run is also tried
   without a leading or trailing one-letter English word (``a``, ``i``, ``u``) or digit (``a n s f w``,
   ``2 n s f w``), and a spelled-out token is also a word of its own (``a g.o.r.e``). The pieces of one token are
   also tried joined (``go.re``, ``nsf.w``; not across an apostrophe: ``he'll`` is not ``hell``). Leetspeak is
   undone in words that hold a letter (``n00d``, ``$ex``, ``sh!t``, ``@$$``); ``1``, ``!`` and ``|`` may stand for
   ``i`` or ``l`` and ``6`` for ``b`` or ``g``, so both are tried. In a prompt, a capital ``I`` among lower-case
   letters (``IewD``) and a small ``l`` among capitals (``lNCEST``) are read as either letter too, and a letter
   stretched three times or more (``gooore``) is also read once and twice.
3. Matching. An entry matches when its words are consecutive whole words of some reading of the prompt.

Deliberately not matched, because each would block innocent prompts or cannot be told apart from them:

- a blocked word inside a longer word or with an ending (``ass`` in ``class``, ``bass``, ``assassin``; ``gore`` in
  ``gorengan``; ``gores``): block each form that matters;
- a word split by spaces unless all of its letters stand alone (``go re``, ``ns fw``, ``n sfw``): joining
  neighbouring words turns ``the pen is red`` into ``penis``; a visible blank such as U+2800 counts as a space;
- a spelled-out run that merely contains the word (``a s s e t`` holds ``a s s``), or one led by a letter that is
  not a one-letter word (``x n s f w``);
- ASCII digraph look-alikes (``rn`` for ``m``, ``vv`` for ``w``, ``cl`` for ``d``) and multi-character leetspeak
  (``|\\|`` for ``n``, ``ph`` for ``f``): they would read ``corn`` as ``com``, ``burn`` as ``bum``, ``photo`` as
  ``foto``;
- letters hidden behind masks (``f*ck``, ``g_re``), which could be any letter;
- a word of digits only, which is a number, not leetspeak (``717`` is not ``tit``; ``1 girl``, ``--ar 3:2`` stay);
- reversed, rotated or upside-down text (``erog``, ``ǝɹoɓ``) and text displayed reversed by a bidi override: it is
  matched in the order the image model reads it (the override marks themselves are dropped);
- a mark that draws a small letter above another (U+0363–U+036F) is dropped like any combining mark, not read;
- words in scripts written without spaces (Japanese, Chinese, Thai) match only as whole space-separated tokens.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import time
import unicodedata
from collections.abc import Iterable

log = logging.getLogger(__name__)

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt); every Cf character is dropped as well.
DEFAULT_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Letter-shaped symbols NFKC leaves alone: negative circled, negative squared and regional indicator A-Z.
_LETTER_SYMBOL_STARTS = (0x1F150, 0x1F170, 0x1F1E6)
# Blank-looking characters that are not Unicode whitespace.
_BLANKS = frozenset("\u2800")

# ASCII characters a look-alike may fold to; the vertical strokes I, l, 1 and | fold to the wildcard "1".
_FOLD_TARGETS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@$!|")
_STROKES = frozenset("Il1|")
# Wildcards: a character that may stand for either letter. Both readings are tried on both sides.
_WILDCARDS = {"1": "il", "6": "bg"}
_MAX_WILDCARDS = 5  # per word; further ones take their first reading (at most 32 spellings)
_LEET_DIGITS = str.maketrans("0345789", "oeastbg")
_ENTRY_SYMBOLS = str.maketrans({"@": "a", "$": "s", "!": "i", "|": "l"})
_PROMPT_SYMBOLS = str.maketrans({"@": "a", "$": "s", "!": "1", "|": "1"})
_ONE_LETTER_WORDS = frozenset("aiu")
_APOSTROPHES = frozenset("'`\u00b4\u2018\u2019\u2032")
_MAX_JOINED_PIECES = 8  # pieces of one token tried joined
_MAX_WORD_CHARS = 64

_PIECE = re.compile(r"[^\W_]+")  # letters and digits of any script
_LEET_PIECE = re.compile(r"[@$!|]*[^\W_]+(?:[@$!|]+[^\W_]+)*[@$!|]*")  # the same, leet symbols read as letters
# An entry's pieces: @ and $ may lead or trail one, ! and | only stand inside (``a$$``, ``sh!t``, but ``gore!``).
_ENTRY_PIECE = re.compile(r"[@$]*[^\W_]+(?:[@$!|]+[^\W_]+)*[@$]*")
_SYMBOL_WORD = re.compile(r"[@$][@$!|]*[@$]")  # a word of leet symbols only: ``@$$``
_STRETCHED = re.compile(r"([^\W\d_])\1{2,}")  # a letter three times or more
_LETTER = re.compile(r"[^\W\d_]")
_LETTER_RUN = re.compile(r"[^\W\d_]{2,}")
_FOLD_CACHE_LIMIT = 50_000


def _is_default_ignorable(code: int) -> bool:
    return any(low <= code <= high for low, high in DEFAULT_IGNORABLE_RANGES)


@functools.cache
def _lookalikes() -> dict[str, str]:
    """Every non-ASCII character Unicode lists as confusable with an ASCII letter or digit, mapped to it.

    The data groups characters into classes that look alike. A class with ASCII members folds its non-ASCII members
    to them, case-folded (Cyrillic ``Ѕ`` and ``ѕ`` both to ``s``). When a class resembles several ASCII characters:
    ``I``, ``l``, ``1`` and ``|`` (one class) fold to the wildcard ``1``, which is then read as ``i`` or ``l``;
    ``O`` and ``0`` (one class) fold to ``o``; multi-letter members (``rn`` beside ``m``) are ignored; any other tie
    would go to the first letter in alphabetical order (the shipped data has none).
    """
    from importlib import resources  # here, not at module level: importing the blocklist stays cheap

    started = time.perf_counter()
    text = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    data: dict[str, list[dict[str, str]]] = json.loads(text)

    def look_alikes(char: str) -> list[str]:  # the data wraps right-to-left characters in LRM marks
        entries = data.get(char) or data.get(f"\u200e{char}\u200e") or ()
        return [entry["c"].strip("\u200e\u200f") for entry in entries]

    table: dict[str, str] = {}
    seen: set[str] = set()
    for start in sorted(_FOLD_TARGETS):
        if start in seen:
            continue
        members, queue = {start}, [start]  # everything that looks like this ASCII character, transitively
        while queue:
            for other in look_alikes(queue.pop()):
                if other not in members:
                    members.add(other)
                    queue.append(other)
        seen |= members
        targets = {"1" if member in _STROKES else member.casefold() for member in members if member in _FOLD_TARGETS}
        target = "1" if "1" in targets else min(targets, key=lambda t: (not t.isalpha(), t))
        for member in members:
            if len(member) == 1 and not member.isascii() and unicodedata.category(member) not in {"Mn", "Me", "Cf"}:
                table[member] = target
    log.debug(
        "built the look-alike table: %d characters in %.1f ms", len(table), 1000 * (time.perf_counter() - started)
    )
    return table


def _fold_char(char: str) -> str:
    """What one character (after NFKC) reads as: lower-case, unmarked, look-alikes folded; '' when unseen."""
    code = ord(char)
    if code < 0x80:
        return char.lower()
    category = unicodedata.category(char)
    if category == "Cf" or _is_default_ignorable(code):
        return ""
    table = _lookalikes()
    if char in table:  # as written: capital Greek Ν looks like N although its lower case ν looks like v
        return table[char]
    if category in {"Mn", "Me", "Mc"}:
        return ""
    if char.isspace() or char in _BLANKS:
        return " "
    for start in _LETTER_SYMBOL_STARTS:
        if start <= code < start + 26:
            return chr(ord("a") + code - start)
    parts = unicodedata.normalize("NFD", char.casefold())
    unmarked = "".join(part for part in parts if not unicodedata.category(part).startswith("M"))
    base = unicodedata.normalize("NFC", unmarked) if len(unmarked) < len(parts) else char.casefold()
    return "".join(table.get(part) or _small_capital(part) or part for part in base)


def _small_capital(char: str) -> str:
    """``ɢ`` -> ``g``: small capitals, which the confusables data mostly leaves out."""
    name = unicodedata.name(char, "")
    letter = name.removeprefix("LATIN LETTER SMALL CAPITAL ")
    return letter.lower() if len(letter) == 1 and letter.isascii() else ""


class _FoldMap(dict[int, str]):
    """A str.translate table that works out each character once, on first sight."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < _FOLD_CACHE_LIMIT:
            self[code] = folded
        return folded


_FOLD = _FoldMap()


def _mark_ambiguous_case(match: re.Match[str]) -> str:
    """In a prompt, I among lower-case letters and l among capitals may be either letter: mark them '1'."""
    run = match.group()
    if "I" in run and any(char.islower() for char in run):
        return run.replace("I", "1")
    if "l" in run and sum(char.isupper() for char in run) >= 2 and all(c == "l" for c in run if c.islower()):
        return run.replace("l", "1")
    return run


@functools.cache
def _lookalike_codes() -> dict[int, str]:
    return {ord(char): target for char, target in _lookalikes().items()}


def _fold_text(text: str, *, prompt: bool) -> str:
    """Look-alikes first (as written: ``ſ`` looks like f although NFKC reads s), then NFKC, case and the rest."""
    text = unicodedata.normalize("NFKC", text.translate(_lookalike_codes()))
    if prompt:
        text = _LETTER_RUN.sub(_mark_ambiguous_case, text)
    return text.translate(_FOLD)


def _spell(raw: str, *, prompt: bool) -> str:
    """A word's canonical spelling: leet symbols always, leet digits only in a word that holds a letter."""
    word = raw.translate(_PROMPT_SYMBOLS if prompt else _ENTRY_SYMBOLS)
    return word.translate(_LEET_DIGITS) if _LETTER.search(word) else word


@functools.lru_cache(maxsize=8192)
def _prompt_spellings(raw: str) -> frozenset[str]:
    """Every spelling of a word read in a prompt (prompts repeat words: cached); stretched letters (``gooore``)
    are also read once and twice."""
    word = _spell(raw, prompt=True)
    if not _STRETCHED.search(word):
        return _spellings(word)
    return _spellings(word) | _spellings(_STRETCHED.sub(r"\1", word)) | _spellings(_STRETCHED.sub(r"\1\1", word))


def _spellings(word: str) -> frozenset[str]:
    """Every reading of a canonical word's wildcards (``1`` as i or l, ``6`` as b or g)."""
    if ("1" not in word and "6" not in word) or not _LETTER.search(word):
        return frozenset((word,))
    spots = [index for index, char in enumerate(word) if char in _WILDCARDS][:_MAX_WILDCARDS]
    chars = list(word)
    for index, char in enumerate(chars):
        if char in _WILDCARDS and index not in spots:
            chars[index] = _WILDCARDS[char][0]
    readings = set()
    for choice in itertools.product(*(_WILDCARDS[word[spot]] for spot in spots)):
        for spot, letter in zip(spots, choice, strict=True):
            chars[spot] = letter
        readings.add("".join(chars))
    return frozenset(readings)


class _Reading:
    """The words of a folded text: its pieces, and every span of pieces that may be read as one word."""

    def __init__(self, folded: str, *, prompt: bool) -> None:
        self.pieces: list[str] = []
        self.gaps: list[str] = []  # what separates each piece from the one before it in its token
        self.spans: list[tuple[int, int, str]] = []  # (first piece, end piece, the word read there)
        tokens: list[tuple[int, int]] = []  # each token's pieces
        for token in folded.split():
            if token.isalnum():  # the common case: a plain word is one piece
                tokens.append((len(self.pieces), len(self.pieces) + 1))
                self.pieces.append(token)
                self.gaps.append("")
                continue
            found = list((_PIECE if prompt else _ENTRY_PIECE).finditer(token)) or list(_SYMBOL_WORD.finditer(token))
            if not found:
                continue  # a token of punctuation or emoji only is transparent
            first = len(self.pieces)
            tokens.append((first, first + len(found)))
            self.pieces.extend(match.group() for match in found)
            pairs = itertools.pairwise([found[0], *found])
            self.gaps.extend(token[before.end() : after.start()] for before, after in pairs)
            if prompt:
                self._add_leet(token, found, first)
        self.spans.extend((index, index + 1, piece) for index, piece in enumerate(self.pieces))
        # The blocks: each longer piece, and each run of one-letter pieces (within a token or across tokens).
        self.primary: list[tuple[int, int]] = []
        for start, end in tokens:
            inside: list[tuple[int, int]] = []  # the same, within this token alone
            for index in range(start, end):
                single = len(self.pieces[index]) == 1
                if index > 0 and single and len(self.pieces[index - 1]) == 1:
                    self.primary[-1] = (self.primary[-1][0], index + 1)
                else:
                    self.primary.append((index, index + 1))
                if index > start and single and len(self.pieces[index - 1]) == 1:
                    inside[-1] = (inside[-1][0], index + 1)
                else:
                    inside.append((index, index + 1))
            for block_start, block_end in inside:
                if block_end - block_start > 1:
                    self._add_run(block_start, block_end)  # spelled out within a token is a word: ``a g.o.r.e``
            if len(inside) > 1:
                self._add_joined(inside)
        for start, end in self.primary:
            if end - start > 1:
                self._add_run(start, end)

    def _add_leet(self, token: str, found: list[re.Match[str]], first: int) -> None:
        """Pieces read with the leet symbols @ $ ! | around and between them as letters (``$ex``, ``sh!t``)."""
        if not any(symbol in token for symbol in "@$!|"):
            return
        for match in _LEET_PIECE.finditer(token):
            covered = [i for i, piece in enumerate(found) if match.start() <= piece.start() < match.end()]
            if len(match.group()) > sum(len(found[i].group()) for i in covered):
                self.spans.append((first + covered[0], first + covered[-1] + 1, match.group()))

    def _add_run(self, start: int, end: int) -> None:
        """A spelled-out run, also without a leading or trailing one-letter word or digit (``a n s f w``)."""
        first, last = (self.pieces[i] in _ONE_LETTER_WORDS or self.pieces[i].isdigit() for i in (start, end - 1))
        for trimmed_start, trimmed_end in (
            (start, end),
            (start + first, end),
            (start, end - last),
            (start + first, end - last),
        ):
            if trimmed_end - trimmed_start > 1:
                self.spans.append((trimmed_start, trimmed_end, self.text(trimmed_start, trimmed_end)))

    def _add_joined(self, blocks: list[tuple[int, int]]) -> None:
        """Neighbouring blocks of one token joined into one word (``go.re``, ``g.o.r.e-scene``)."""
        for first, (start, _) in enumerate(blocks):
            for last in range(first + 1, len(blocks)):
                end = blocks[last][1]
                if _APOSTROPHES.intersection(self.gaps[blocks[last][0]]):
                    break  # he'll is not hell
                if end - start > _MAX_JOINED_PIECES or sum(map(len, self.pieces[start:end])) > _MAX_WORD_CHARS:
                    break
                self.spans.append((start, end, self.text(start, end)))

    def text(self, start: int, end: int) -> str:
        return "".join(self.pieces[start:end])


def normalise_words(text: str) -> list[str]:
    """The canonical words of a text, as stored for a blocked entry: folded, leetspeak undone, spelled-out joined.

    ``1`` and ``6`` are kept where they stand (each is tried as either letter when matching); ``!`` reads ``i`` and
    ``|`` reads ``l``. Feeding the result back in gives the same words.
    """
    reading = _Reading(_fold_text(text, prompt=False), prompt=False)
    return [_spell(reading.text(start, end), prompt=False) for start, end in reading.primary]


@functools.lru_cache(maxsize=64)
def _entry_index(entries: tuple[str, ...]) -> dict[str, list[tuple[int, tuple[frozenset[str], ...]]]]:
    """Blocked entries by every spelling of their first word: (position in the list, spellings of the rest)."""
    index: dict[str, list[tuple[int, tuple[frozenset[str], ...]]]] = {}
    for order, entry in enumerate(entries):
        words = [_spellings(word) for word in normalise_words(entry)]
        if not words:
            continue
        for spelling in words[0]:
            index.setdefault(spelling, []).append((order, tuple(words[1:])))
    return index


def find_blocked(prompt: str, blocked: Iterable[str]) -> str | None:
    """The first blocked entry (as given) whose words the prompt contains as whole words, or None."""
    entries = tuple(blocked)
    if not entries:
        return None
    index = _entry_index(entries)
    reading = _Reading(_fold_text(prompt, prompt=True), prompt=True)
    following: dict[int, list[tuple[int, frozenset[str]]]] = {}
    for start, end, text in dict.fromkeys(reading.spans):
        following.setdefault(start, []).append((end, _prompt_spellings(text)))

    def continues(position: int, rest: tuple[frozenset[str], ...]) -> bool:
        if not rest:
            return True
        return any(spellings & rest[0] and continues(end, rest[1:]) for end, spellings in following.get(position, ()))

    best: int | None = None
    for spans in following.values():
        for end, spellings in spans:
            for spelling in spellings:
                for order, rest in index.get(spelling, ()):
                    if (best is None or order < best) and continues(end, rest):
                        best = order
    return None if best is None else entries[best]


def channel_allowed(rules: dict[int, bool], channel_id: int) -> bool:
    """Channel policy: a denied channel never; when any channel is allowed, only allowed ones; else all."""
    if rules.get(channel_id) is False:
        return False
    if any(rules.values()):
        return rules.get(channel_id) is True
    return True
