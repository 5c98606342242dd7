"""Multi-prompts (``::``), ``--chaos``, ``--stop`` and ``--q``: what parses, what is refused with which message, and
how preparation turns them into a job's parameters and price before anything is charged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import PromptError
from bot.jobs import ImageResult, Job, Kind, Lane, Origin, RenderParams, Status, engine_task
from bot.requests.custom_ids import Action
from bot.requests.multi_prompt import quality_steps
from bot.requests.preparation import prepare_follow_up, prepare_imagine, prompts_to_render
from bot.requests.prompt import ParsedPrompt, parse_prompt
from bot.requests.request_options import RequestOptions
from bot.scheduling.costs import job_cost
from config.settings import Settings
from engine.protocol import TaskKind, batch_key_of
from tests.conftest import make_settings

VALID = [
    ("a cat:: a dog::2", (("a cat", 1.0), ("a dog", 2.0))),
    ("a cat::2 a dog", (("a cat", 2.0), ("a dog", 1.0))),
    ("hot:: dog", (("hot", 1.0), ("dog", 1.0))),
    ("a cat:: blur::-0.5", (("a cat", 1.0), ("blur", -0.5))),
    ("a cat::1.5 a dog::.5", (("a cat", 1.5), ("a dog", 0.5))),
    ("a cat::2, a dog", (("a cat", 2.0), (", a dog", 1.0))),
    ("space::3d render", (("space", 1.0), ("3d render", 1.0))),  # "3d" is a word, not a weight
    ("a cat::", (("a cat", 1.0),)),  # a trailing `::` adds nothing
    ("a cat::100 a dog::-99", (("a cat", 100.0), ("a dog", -99.0))),
    ("a cat::0 a dog", (("a cat", 0.0), ("a dog", 1.0))),
    ("a  cat ::  a   dog", (("a cat", 1.0), ("a dog", 1.0))),
    ("cat:: dog::2 -- ::-0.5", (("cat", 1.0), ("dog", 2.0), ("--", -0.5))),
    ("a red fox", ()),  # no `::`: a plain prompt
    ("a red fox: portrait", ()),
]


@pytest.mark.parametrize(("raw", "parts"), VALID)
def test_multi_prompts_parse_into_parts_and_weights(raw: str, parts: tuple[tuple[str, float], ...]) -> None:
    """`::` splits the prompt; a number right after it weighs the part before; the text stays as typed."""
    parsed = parse_prompt(raw)
    assert parsed.weighted_prompts == parts
    assert parsed.text == " ".join(raw.split())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a fox --chaos 50", ParsedPrompt(text="a fox", chaos=50, flags=("chaos",))),
        ("a fox --c 0", ParsedPrompt(text="a fox", chaos=0, flags=("chaos",))),
        ("a fox --chaos 100", ParsedPrompt(text="a fox", chaos=100, flags=("chaos",))),
        ("a fox --stop 10", ParsedPrompt(text="a fox", stop=10, flags=("stop",))),
        ("a fox --stop 100", ParsedPrompt(text="a fox", stop=100, flags=("stop",))),
        ("a fox --q .25", ParsedPrompt(text="a fox", quality=0.25, flags=("q",))),
        ("a fox --q 0.5", ParsedPrompt(text="a fox", quality=0.5, flags=("q",))),
        ("a fox --quality 2", ParsedPrompt(text="a fox", quality=2.0, flags=("q",))),
        ("a fox --q 1", ParsedPrompt(text="a fox", quality=1.0, flags=("q",))),
        (
            "a cat::2 --no blur --chaos 5 --stop 50",
            ParsedPrompt(
                text="a cat::2",
                negative_prompt="blur",
                weighted_prompts=(("a cat", 2.0),),
                chaos=5,
                stop=50,
                flags=("no", "chaos", "stop"),
            ),
        ),
    ],
)
def test_the_new_flags_parse(raw: str, expected: ParsedPrompt) -> None:
    """--chaos (--c), --stop and --q (--quality) at their limits parse to exactly the expected request."""
    assert parse_prompt(raw) == expected


INVALID = [
    ("::2 a cat", "::", "`::` needs words before it"),
    ("a cat:::: a dog", "::", "`::` needs words before it"),
    ("a cat::2::3", "::", "`::` needs words before it"),
    ("a cat::1.2.3 a dog", "::", "`::1.2.3` is not a weight"),
    ("a cat::... a dog", "::", "is not a weight"),
    ("a cat::101", "::", "from -100 to 100"),
    ("a cat:: a dog::-100.5", "::", "from -100 to 100"),
    ("a cat:: blur::-1", "::", "add up to 0; the total must be above 0"),
    ("a cat::-1", "::", "add up to -1"),
    ("a cat:: blur::-0.5 --no text", "::", "(`--no` counts as -0.5)"),
    ("a cat::0.5 --no text", "::", "add up to 0 (`--no` counts as -0.5)"),
    ("a::b::c::d::e::f::g::h::i", "::", "at most 8 parts"),
    ("a fox --chaos 101", "chaos", "--chaos N with N from 0 to 100"),
    ("a fox --chaos -1", "chaos", "--chaos N with N from 0 to 100"),
    ("a fox --chaos 5.5", "chaos", "is not valid"),
    ("a fox --chaos", "chaos", "needs a value"),
    ("a fox --chaos 5 --c 6", "chaos", "given twice"),
    ("a fox --stop 9", "stop", "--stop N with N from 10 to 100"),
    ("a fox --stop 101", "stop", "out of range"),
    ("a fox --stop half", "stop", "is not valid"),
    ("a fox --q 3", "q", "not one of the qualities: use --q .25, --q .5, --q 1 or --q 2"),
    ("a fox --q 4", "q", "not one of the qualities"),
    ("a fox --quality 0", "q", "not one of the qualities"),
    ("a fox --q fast", "q", "is not valid"),
    ("a fox --q", "q", "needs a value"),
]


@pytest.mark.parametrize(("raw", "flag", "fragment"), INVALID)
def test_bad_multi_prompts_and_flags_are_named(raw: str, flag: str, fragment: str) -> None:
    """Each bad form raises PromptError naming `::` or the flag, with text that says what to write."""
    with pytest.raises(PromptError) as caught:
        parse_prompt(raw)
    assert caught.value.flag == flag
    assert fragment in str(caught.value)


@pytest.mark.parametrize(("steps", "quality", "expected"), [(4, 2.0, 8), (10, 0.25, 3), (4, 0.25, 1), (1, 0.25, 1)])
def test_quality_steps(steps: int, quality: float, expected: int) -> None:
    """--q multiplies the steps, rounding half up, never below one."""
    assert quality_steps(steps, quality) == expected


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def _one(settings: Settings, prompt: str, **options: object) -> RenderParams:
    [prepared] = prepare_imagine(settings, prompt, options=RequestOptions(**options) if options else None)  # type: ignore[arg-type]
    return prepared.params


def _credits_of(settings: Settings, params: RenderParams, kind: str = "imagine") -> int:
    """The price with one credit per 64x64 image step (the tiny model's 4 images of 64x64 at 4 steps cost 16)."""
    credits = settings.credits.model_copy(update={"unit_pixels": 64 * 64, "unit_steps": 1})
    return job_cost(params, kind=kind, lane=Lane.FAST, model_multiplier=1.0, credits=credits)


def test_a_plain_prompt_prepares_as_before(settings: Settings) -> None:
    """Without the new syntax a job's parameters carry the defaults: one pipeline call, every step, no jitter."""
    params = _one(settings, "a red fox --no blur --seed 3")
    assert (params.weighted_prompts, params.chaos, params.stop, params.steps) == ((), 0, 100, 4)
    assert batch_key_of(TaskKind.TXT2IMG, params) is not None
    assert _credits_of(settings, params) == 16


@pytest.mark.parametrize(
    ("prompt", "steps", "credits"),
    [
        ("a fox --q 2", 8, 32),
        ("a fox --q .5", 2, 8),
        ("a fox --q .25", 1, 4),
        ("a fox --steps 10 --q .25", 3, 12),
        ("a fox --steps 30 --q 2", 60, 240),  # the server's max_steps exactly
        ("a fox --stop 50", 4, 8),  # priced for the 2 steps that run
        ("a fox --stop 10", 4, 4),
        ("a fox --steps 25 --stop 50", 25, 52),  # 13 steps
        ("a fox --q 2 --stop 50", 8, 16),
        ("a cat:: a dog::2 --chaos 50", 4, 16),  # chaos and parts cost nothing more
    ],
)
def test_steps_and_price_follow_q_and_stop(settings: Settings, prompt: str, steps: int, credits: int) -> None:
    """--q sets the job's steps and so its price; --stop charges only the steps that run."""
    params = _one(settings, prompt)
    assert params.steps == steps
    assert _credits_of(settings, params) == credits


def test_a_stopped_sweep_is_charged_for_the_steps_its_cells_run(settings: Settings) -> None:
    """steps=10,20 at --stop 50: cells of 5 and 10 steps, one image each."""
    params = _one(settings, "a fox --stop 50", sweeps=("steps=10,20",))
    assert _credits_of(settings, params, kind="sweep") == 15


REFUSED = [
    ("a fox --steps 40 --q 2", "q", "`--q 2` makes 80 steps (40 × 2), more than model `tiny` allows (60)"),
    ("a fox --steps 60 --q 2", "q", "use a lower --q or fewer --steps"),
    ("a cat:: blur::-0.5 --cfg 1", "::", "a negative weight (`blur::-0.5`) has no effect at --cfg 1"),
    ("a cat:: blur::-0.5 --model tiny-turbo", "::", "has no effect on model `tiny-turbo`"),
    ("a fox --chaos 50 --cfg 1", "chaos", "`--chaos` has no effect here"),
    ("a fox --chaos 50 --model tiny-turbo", "chaos", "`--chaos` has no effect here"),
]


@pytest.mark.parametrize(("prompt", "flag", "fragment"), REFUSED)
def test_flags_past_the_models_limits_are_refused_before_any_charge(
    settings: Settings, prompt: str, flag: str, fragment: str
) -> None:
    """Preparation (which runs before the charge) refuses what the model cannot do, naming the flag."""
    with pytest.raises(PromptError) as caught:
        prepare_imagine(settings, prompt, owner=True)
    assert caught.value.flag == flag
    assert fragment in str(caught.value)


def test_chaos_without_guidance_still_varies_the_weights_of_parts(settings: Settings) -> None:
    """At --cfg 1 --chaos can only move the weights of two or more parts: that is allowed."""
    params = _one(settings, "a cat:: a dog --chaos 50 --cfg 1")
    assert params.chaos == 50


@pytest.mark.parametrize(
    ("prompt", "sweep", "flag", "fragment"),
    [
        ("a cat:: a dog", "prompt=cat,fox", "sweep", "a `prompt=` sweep cannot change a multi-prompt"),
        ("a fox --q 2", "steps=10,20", "q", "`--q` and a steps sweep both set the steps"),
    ],
)
def test_sweeps_that_clash_with_the_flags_are_refused(
    settings: Settings, prompt: str, sweep: str, flag: str, fragment: str
) -> None:
    """A sweep may not rewrite a multi-prompt's text, nor set steps --q would multiply."""
    with pytest.raises(PromptError) as caught:
        prepare_imagine(settings, prompt, options=RequestOptions(sweeps=(sweep,)))
    assert caught.value.flag == flag
    assert fragment in str(caught.value)


def test_moderation_sees_every_part(settings: Settings) -> None:
    """The blocklist checks the whole prompt and each part on its own, negative parts included."""
    prepared = prepare_imagine(settings, "a cat:: a dog::2 snow::-0.5")
    assert prompts_to_render(prepared) == ["a cat:: a dog::2 snow::-0.5", "a cat", "a dog", "snow"]


def test_parameters_reach_the_engine_and_survive_storage(settings: Settings) -> None:
    """The parts, chaos and stop are copied into the engine's task, round-trip through the stored JSON, and make
    the job run alone (one image conditioning or stop per call); a row from before them loads with defaults."""
    params = _one(settings, "a cat:: a dog::2 --chaos 30 --stop 60")
    task = engine_task(Kind.IMAGINE, params)
    assert (task.weighted_prompts, task.chaos, task.stop) == ((("a cat", 1.0), ("a dog", 2.0)), 30, 60)
    assert RenderParams.from_json(params.to_json()) == params
    old = {key: value for key, value in json.loads(params.to_json()).items()}
    for key in ("weighted_prompts", "chaos", "stop"):
        del old[key]
    loaded = RenderParams.from_json(json.dumps(old))
    assert (loaded.weighted_prompts, loaded.chaos, loaded.stop) == ((), 0, 100)
    for changes in ({"weighted_prompts": (("a", 1.0),)}, {"chaos": 1}, {"stop": 50}):
        alone = RenderParams(**{**loaded.__dict__, **changes})  # type: ignore[arg-type]
        assert batch_key_of(TaskKind.TXT2IMG, alone) is None
    assert batch_key_of(TaskKind.TXT2IMG, loaded) is not None


def test_a_reroll_keeps_the_parts_chaos_and_stop(settings: Settings) -> None:
    """🔄 renders the same multi-prompt with the same chaos and stop at new seeds, priced the same."""
    params = _one(settings, "a cat:: a dog::2 --chaos 30 --stop 50")
    parent = Job(9, 1, Kind.IMAGINE, Status.COMPLETED, Lane.FAST, "a cat:: a dog::2", params, Origin(), 0.0)
    images = [ImageResult(9, index, f"/img/{index}.png", 1 + index, 64, 64) for index in range(4)]
    reroll = prepare_follow_up(settings, parent, images, Action.REROLL, 0)
    assert (reroll.params.weighted_prompts, reroll.params.chaos, reroll.params.stop) == (
        params.weighted_prompts,
        30,
        50,
    )
    assert _credits_of(settings, reroll.params, kind="reroll") == _credits_of(settings, params)


def test_an_upscale_finishes_a_stopped_image_and_is_priced_for_every_step(settings: Settings) -> None:
    """As on Midjourney, --stop does not apply to an upscale; a variation keeps it (and its chaos)."""
    params = _one(settings, "a cat --chaos 30 --stop 50")
    parent = Job(9, 1, Kind.IMAGINE, Status.COMPLETED, Lane.FAST, "a cat", params, Origin(), 0.0)
    images = [ImageResult(9, index, f"/img/{index}.png", 1 + index, 64, 64) for index in range(4)]
    upscale = prepare_follow_up(settings, parent, images, Action.UPSCALE, 0)
    assert (upscale.params.stop, upscale.params.chaos) == (100, 30)
    assert _credits_of(settings, upscale.params, kind="upscale") == 8  # 128x128 at 4 steps, at the upscale's 0.5
    variation = prepare_follow_up(settings, parent, images, Action.VARY, 1)
    assert (variation.params.stop, variation.params.chaos) == (50, 30)
