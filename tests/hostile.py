"""Hostile requests shared by the Discord and the command-line suites: each must be refused with one line that says
what to change, before anything is charged or stored."""

from __future__ import annotations

PROMPTS: list[tuple[str, str]] = [
    # nesting and size
    ("{" * 600 + "fox" + "}" * 600, "nests { } 600 levels deep; permutations may nest at most 5"),
    ("{" * 600 + "fox", "nests { } 600 levels deep"),
    ("a {red, {blue, {green, {pink, {gold, {jade, fox}}}}}}", "nests { } 6 levels deep"),
    ("x" * 6000, "the prompt is 6000 characters long; the limit is 1500"),
    ("a fox " * 300, "characters long; the limit is 1500"),
    ("{a,b,c} {d,e,f} {g,h,i}", "more than 8 prompts"),
    ("a {fox, cat} --repeat 4 --repeat 4", "given twice"),
    ("a {fox, cat, owl} --repeat 3", "more than 8 jobs at once"),
    ("a {red, {blue fox", "without its `}`"),
    ("a red} fox", "without its `{`"),
    # control characters and empty prompts
    ("\x00\x01\x02\x1b\x7f", "the prompt is empty"),
    ("\u200b\u200d\u2060\ufeff --ar 3:2", "the prompt is empty"),
    ("a fox\x00\r\n --steps 999", "--steps N with N from 1 to 60"),
    # every flag just past its limit
    ("a fox --ar 1:5", "--ar W:H"),
    ("a fox --ar 5:1", "--ar W:H"),
    ("a fox --ar 65:1", "--ar W:H"),
    ("a fox --ar 0:1", "--ar W:H"),
    ("a fox --ar 3:2:1", "--ar W:H"),
    ("a fox --steps 61", "--steps N with N from 1 to 60"),
    ("a fox --steps 0", "--steps N with N from 1 to 60"),
    ("a fox --steps 1e3", "--steps N"),
    ("a fox --cfg 30.1", "--cfg X with X a number from 0 to 30"),
    ("a fox --cfg -1", "--cfg X"),
    ("a fox --cfg nan", "--cfg X"),
    ("a fox --seed 4294967296", "--seed N with N a whole number from 0 to 4294967295"),
    ("a fox --seed -1", "--seed N"),
    ("a fox --repeat 5", "--repeat N with N from 1 to 4"),
    ("a fox --repeat 0", "--repeat N"),
    ("a fox --no", "needs a value"),
    ("a fox --sampler warp9", "is not a sampler on this server"),
    ("a fox --model sdxl", "is not a model on this server"),
    ("a fox --model ../../etc", "is not a model on this server"),
    ("a fox --frobnicate", "unknown flag `--frobnicate`"),
    ("a fox --seed 1 --seed 2", "`--seed` is given twice"),
    ("a fox --fast --relax", "give one lane flag"),
    ("a fox --tile please", "unexpected text `please`"),
    ("a fox <lora:nope:0.8>", "unknown LoRA `nope`"),
    ("a fox <lora:nope:lots>", "is not a number"),
]
"""(prompt, a fragment of the refusal)."""

SWEEPS: list[tuple[str, tuple[str, ...], str]] = [
    ("a lamp", ("steps=10,61",), "use a whole number from 1 to 60"),
    ("a lamp", ("steps=135,150",), "use a whole number from 1 to 60"),
    ("a lamp", ("cfg=3,31",), "use numbers from 0 to 30"),
    ("a lamp", ("seed=1,4294967296",), "from 0 to 4294967295"),
    ("a lamp", ("seed=" + ",".join(map(str, range(17))),), "at most 16"),
    ("a lamp", ("seed=" + ",".join(map(str, range(13))), "cfg=1,2,3,4,5"), "makes 65 images; at most 64"),
    ("a lamp", ("strength=0.3,0.6",), "a strength sweep needs an image"),
    ("a lamp", ("strength=0,0.5",), "above 0 and at most 1"),
    ("a lamp", ("sampler=euler,warp",), "sweep sampler 'warp'"),
    ("a lamp", ("prompt=owl,cat",), "'owl' (the first value) does not occur in the prompt"),
    ("a lamp", ("prompt=lamp,<lora:nope:1>",), "unknown LoRA `nope`"),
    ("a lamp", ("size=1,2",), "axis 'size' is not one of"),
    ("a lamp", ("cfg=3", "cfg=4"), "appears twice"),
    ("a lamp --steps 61", ("cfg=3,5",), "--steps N with N from 1 to 60"),
]
"""(prompt, sweep axes, a fragment of the refusal)."""
