"""Blocklist matching and channel policy: pure rules, table-tested, with hypothesis properties for evasions."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import unicodedata
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.application.permissions import is_moderator
from bot.requests.blocklist import DEFAULT_IGNORABLE_RANGES, channel_allowed, find_blocked, normalise_words

BLOCKED = ["gore", "blood bath", "nsfw"]
SERVER_BLOCKLIST = ["gore", "nsfw", "ass", "blood bath", "lewd", "hell"]

# Unicode's Default_Ignorable_Code_Point set, every code point of it.
DEFAULT_IGNORABLE = [chr(code) for low, high in DEFAULT_IGNORABLE_RANGES for code in range(low, high + 1)]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a calm lake", None),
        ("lots of GORE please", "gore"),
        ("g0re", "gore"),
        ("a blood bath scene", "blood bath"),
        ("a bloodbath scene", None),
        ("blood and a bath", None),
        ("n.s.f.w art", "nsfw"),
        ("n s f w art", "nsfw"),
        ("g\u200bore", "gore"),
        ("ｇｏｒｅ", "gore"),
        ("górë", "gore"),
        ("gorengan (a snack)", None),
        ("gore--ar 3:2", "gore"),
    ],
)
def test_find_blocked(prompt: str, expected: str | None) -> None:
    """Whole words match after case, width, accents, zero-width, leetspeak and spelled-out letters are undone."""
    assert find_blocked(prompt, BLOCKED) == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        # Spelled-out words next to one-letter words, digits and emoji.
        ("a g.o.r.e scene", "gore"),
        ("a n s f w pic", "nsfw"),
        ("i n s f w", "nsfw"),
        ("u n s f w", "nsfw"),
        ("a.n.s.f.w", "nsfw"),
        ("n s f w i guess", "nsfw"),
        ("2 n s f w pics", "nsfw"),
        ("a 🔥 g 🔥 o 🔥 r 🔥 e", "gore"),
        ("a b.l.o.o.d b.a.t.h", "blood bath"),
        # Punctuation inside a word; stretched letters; leet symbols that are also punctuation.
        ("n.sfw", "nsfw"),
        ("nsf.w", "nsfw"),
        ("go-re scene", "gore"),
        ("a g.ore", "gore"),
        ("x g.o.r.e-scene", "gore"),
        ("g**o**re", "gore"),
        ("gooooore and asssss", "gore"),
        ("what an asssss", "ass"),
        ("lots of gore!!!", "gore"),
        ("gore@night", "gore"),
        ("what an @$$!", "ass"),
        # Look-alike letters from other scripts.
        ("n\u0455fw", "nsfw"),
        ("g\u043er\u0435", "gore"),
        ("g\u03bfre", "gore"),
        ("\u039d\u0405FW", "nsfw"),
        ("\u0430\u0455\u0455", "ass"),
        ("a bl\u043e\u043ed b\u0430th", "blood bath"),
        ("\u0261ore", "gore"),
        ("\u0261\U0001d5c8\uab47\u0435", "gore"),
        ("\u0262\u1d0f\u0280\u1d07", "gore"),
        ("gO\u0280e", "gore"),
        ("gor\u0435\u0301", "gore"),
        ("\U0001f156\U0001f15e\U0001f161\U0001f154", "gore"),
        ("\U0001f176\U0001f17e\U0001f181\U0001f174", "gore"),
        ("\U0001f1ec\U0001f1f4\U0001f1f7\U0001f1ea", "gore"),
        # I, l, 1 and | stand in for each other.
        ("1ewd", "lewd"),
        ("|ewd", "lewd"),
        ("|3wd", "lewd"),
        ("IewD", "lewd"),
        ("\u04c0ewd", "lewd"),
        ("\u01c0ewd", "lewd"),
        # Invisible characters and marks inside a word.
        ("g\u034fore", "gore"),
        ("go\u180ere", "gore"),
        ("g\u061core", "gore"),
        ("g\u115fore", "gore"),
        ("g\u17b4ore", "gore"),
        ("g\u206aore", "gore"),
        ("g\u3164ore", "gore"),
        ("g\ufe0fore", "gore"),
        ("g\uffa0ore", "gore"),
        ("g\U0001bca0ore", "gore"),
        ("g\U0001d173ore", "gore"),
        ("g\U000e0067ore", "gore"),
        ("g\u0600ore", "gore"),
        ("g\u0903ore", "gore"),
        ("go\u034fre\u180e", "gore"),
    ],
)
def test_evasion_is_caught(prompt: str, expected: str) -> None:
    """Spelled-out letters, look-alikes, leet symbols and invisible marks do not hide a blocked word."""
    assert find_blocked(prompt, SERVER_BLOCKLIST) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "a s s e t management",
        "a.s.s.e.t",
        "a first class ticket",
        "c l a s s",
        "an assassin in the night",
        "a bass guitar, mass-produced glassware",
        "passage through the grass, sausage and molasses",
        "gorengan (a snack), gorgeous view",
        "he'll paint a shell, he’ll say hello",
        "Hello, Helsinki! HELLO",
        "shell-shocked soldier",
        "I love my iPhone, Iceland and lilies",
        "1girl, solo, long hair, masterpiece, (best quality:1.2) --ar 16:9 --v 6",
        "a cat in a hat, 8k, 4k uhd, 3d render, score_9, u.s.a flag",
        "Кот сидит на окне под солнцем, Москва",
        "Ένα σκυλί τρέχει στην παραλία της Αθήνας",
        "桜の木の下で猫が眠っている、東京タワーの夜景",
        "bath blood, a bloodbath",
    ],
)
def test_innocent_prompt_passes(prompt: str) -> None:
    """Words that merely contain a blocked word, and ordinary prompts in other scripts, are not blocked."""
    assert find_blocked(prompt, SERVER_BLOCKLIST) is None


def test_normalise_words_joins_single_letters() -> None:
    """Letters spelled one by one become one word."""
    assert normalise_words("a b c dog") == ["abc", "dog"]


@pytest.mark.parametrize(
    ("entry", "stored"),
    [
        ("n\u0455fw", ["nsfw"]),
        ("G\u043eRE, Blood  bath", ["gore", "blood", "bath"]),
        ("\u01c0ewd", ["1ewd"]),
        ("gore!", ["gore"]),
        ("g\u034fore", ["gore"]),
    ],
)
def test_normalise_words_stores_entries_folded(entry: str, stored: list[str]) -> None:
    """A blocked entry is stored with look-alikes, invisible marks and leet symbols undone."""
    assert normalise_words(entry) == stored


def test_blocked_entry_is_returned_as_given() -> None:
    """The entry comes back as the server wrote it, the first one in the list that matches."""
    assert find_blocked("a g.o.r.e scene in n\u0455fw", ["NSFW", "Gore"]) == "NSFW"


def test_lookalike_table_is_built_on_first_use() -> None:
    """Importing the module leaves the confusables data unread; the first check builds the table once."""
    script = (
        "import sys, bot.requests.blocklist as b\n"
        "assert b._lookalikes.cache_info().currsize == 0\n"
        "assert 'confusable_homoglyphs' not in sys.modules\n"
        "assert b.find_blocked('n\\u0455fw', ['nsfw']) == 'nsfw'\n"
        "assert b._lookalikes.cache_info().currsize == 1\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


@functools.cache
def _confusables_of(letter: str) -> list[str]:
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    found = {entry["c"] for case in (letter, letter.upper()) for entry in data.get(case, [])}
    return sorted(char for char in found if len(char) == 1 and not char.isascii())


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_any_lookalike_letter_is_folded(data: st.DataObject) -> None:
    """Each letter of a blocked word swapped for any look-alike Unicode lists for it still matches."""
    word = data.draw(st.sampled_from(["gore", "nsfw", "ass"]))
    letters = [data.draw(st.sampled_from([letter, *_confusables_of(letter)])) for letter in word]
    assert find_blocked(f"a picture of {''.join(letters)} today", SERVER_BLOCKLIST) == word


@given(
    st.sampled_from(["gore", "nsfw", "ass", "lewd"]),
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4),
            st.sampled_from(DEFAULT_IGNORABLE) | st.characters(categories=["Cf"]),
        ),
        min_size=1,
        max_size=4,
    ),
)
@settings(max_examples=300, deadline=None)
def test_invisible_characters_never_hide_a_blocked_word(word: str, inserts: list[tuple[int, str]]) -> None:
    """Any default-ignorable or format character anywhere inside a blocked word leaves it blocked."""
    chars = list(word)
    for position, invisible in inserts:
        chars.insert(min(position, len(chars)), invisible)
    assert find_blocked(f"draw {''.join(chars)} now", SERVER_BLOCKLIST) == word


SAFE_WORDS = [
    "class",
    "bass",
    "assassin",
    "asset",
    "glass",
    "gorgeous",
    "gorengan",
    "shell",
    "hello",
    "blood",
    "lewis",
    "castle",
    "1girl",
    "masterpiece",
    "8k",
    "(best",
    "quality:1.2)",
    "--ar",
    "16:9",
    "a",
    "I",
    "\u043a\u043e\u0442",
    "\u0441\u043e\u0431\u0430\u043a\u0430",
    "\u03c3\u03ba\u03c5\u03bb\u03af",
    "\u03b8\u03ac\u03bb\u03b1\u03c3\u03c3\u03b1",
    "\u685c",
    "\u732b\u304c\u7720\u308b",
]


@given(st.lists(st.sampled_from(SAFE_WORDS), min_size=1, max_size=30), st.sampled_from([" ", ", ", " - ", "; "]))
@settings(max_examples=300, deadline=None)
def test_prompt_of_safe_words_never_matches(words: list[str], separator: str) -> None:
    """A prompt made only of safe words, in any order, is never blocked."""
    assert find_blocked(separator.join(words), SERVER_BLOCKLIST) is None


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_normalised_entry_reads_back_the_same(text: str) -> None:
    """A stored entry (normalised words joined by spaces) normalises to the same words again."""
    words = normalise_words(text)
    assert normalise_words(" ".join(words)) == words
    assert all(unicodedata.is_normalized("NFC", word) for word in words)


@pytest.mark.parametrize(
    ("rules", "channel", "allowed"),
    [
        ({}, 1, True),
        ({1: False}, 1, False),
        ({1: False}, 2, True),
        ({1: True}, 1, True),
        ({1: True}, 2, False),
        ({1: True, 2: False}, 2, False),
    ],
)
def test_channel_allowed(rules: dict[int, bool], channel: int, allowed: bool) -> None:
    """Denied never; when any channel is allowed, only those; otherwise everywhere."""
    assert channel_allowed(rules, channel) is allowed


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"manage_guild": True}, True),
        ({"administrator": True}, True),
        ({"is_owner": True}, True),
        ({"role_names": ["Mods"], "moderator_roles": ["mods"]}, True),
        ({"role_ids": [42], "moderator_roles": ["42"]}, True),
        ({"role_names": ["Members"], "moderator_roles": ["mods"]}, False),
        ({}, False),
    ],
)
def test_is_moderator(kwargs: dict[str, object], expected: bool) -> None:
    """Manage Server, Administrator, owner, or a configured role."""
    base: dict[str, object] = {
        "manage_guild": False,
        "administrator": False,
        "is_owner": False,
        "role_ids": [],
        "role_names": [],
        "moderator_roles": [],
    }
    base.update(kwargs)
    assert is_moderator(**base) is expected  # type: ignore[arg-type]
