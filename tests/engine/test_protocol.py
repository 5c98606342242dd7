"""The bot/engine vocabulary: task kinds, failure reasons, lanes, and the one batch key both sides group by."""

from __future__ import annotations

import dataclasses

import pytest

from engine.protocol import FailureReason, Lane, RenderTask, TaskKind, batch_key
from engine.render import group_tasks

BASE = RenderTask(
    job_id=1,
    prompt="a red fox",
    negative_prompt="",
    width=64,
    height=64,
    steps=4,
    cfg=5.0,
    seeds=(1, 2, 3, 4),
    sampler="euler_a",
    output_dir="/data/images/1",
)

# (what the second task changes, whether the engine renders both in one pipeline call)
PAIRS = [
    ({"job_id": 2, "output_dir": "/data/images/2"}, True),
    ({"prompt": "a blue whale", "seeds": (9,)}, True),
    ({"negative_prompt": "blur"}, False),
    ({"model": "other"}, False),
    ({"width": 128}, False),
    ({"height": 32}, False),
    ({"steps": 8}, False),
    ({"cfg": 7.0}, False),
    ({"sampler": "ddim"}, False),
    ({"tile": True}, False),
    ({"prompt": "a fox <lora:ink:0.8>"}, False),
    ({"kind": TaskKind.IMG2IMG}, False),
]


@pytest.mark.parametrize(("change", "together"), PAIRS)
def test_equal_keys_exactly_when_the_engine_groups(change: dict[str, object], together: bool) -> None:
    """Two tasks have one (non-None) key exactly when the engine's grouping runs them as one call."""
    other = dataclasses.replace(BASE, **change)
    first, second = batch_key(BASE), batch_key(other)
    same = first is not None and first == second
    grouped = group_tasks([BASE, other], max_batch=4)
    assert same is together
    assert (len(grouped) == 1) is together


@pytest.mark.parametrize("kind", [kind for kind in TaskKind if kind is not TaskKind.TXT2IMG])
def test_only_txt2img_batches(kind: TaskKind) -> None:
    """Every kind but txt2img runs alone, even beside an identical task."""
    task = dataclasses.replace(BASE, kind=kind, init_image="/data/uploads/a.png")
    assert batch_key(task) is None
    assert group_tasks([task, dataclasses.replace(task, job_id=2)], max_batch=4) == [
        [task],
        [dataclasses.replace(task, job_id=2)],
    ]


def test_the_key_ignores_where_files_go() -> None:
    """Job id, output folder, seeds, prompt text and return_bytes never split a batch."""
    other = dataclasses.replace(
        BASE, job_id=7, output_dir="/elsewhere", seeds=(5,), prompt="owl", negative_prompt="", return_bytes=True
    )
    assert batch_key(other) == batch_key(BASE)


def test_vocabulary_values() -> None:
    """The enums carry the exact strings both processes and the database use."""
    assert [str(kind) for kind in TaskKind] == [
        "txt2img",
        "img2img",
        "inpaint",
        "variation",
        "upscale",
        "zoom",
        "pan",
        "sweep",
        "describe",
        "control",
    ]
    assert {str(reason) for reason in FailureReason} == {"oom", "bad_input", "cancelled", "timeout", "internal"}
    assert [str(lane) for lane in Lane] == ["turbo", "fast", "relax"]
    assert RenderTask(1, "p", "", 8, 8, 1, 1.0, (1,), "euler_a", "/o").kind is TaskKind.TXT2IMG
