"""A model's own defaults and limits (turbo and LCM-LoRA models: few steps, little or no guidance, their sampler)
reach every job through preparation; past a limit a request is refused, naming it, before anything is charged."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import PromptError
from bot.jobs import Kind, Lane
from bot.requests.preferences import Preferences
from bot.requests.preparation import prepare_imagine
from bot.requests.request_options import RequestOptions
from bot.scheduling.costs import job_cost
from config.settings import Settings
from tests.conftest import make_settings

LCM_MODEL = {
    "source": "tiny:sd15",
    "base_size": 64,
    "sampler": "lcm",
    "samplers": ["lcm"],
    "steps": 4,
    "max_steps": 8,
    "cfg": 1.0,
    "max_cfg": 2.0,
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The tiny turbo model by default; an LCM-LoRA model (a LoRA file that is there) and plain tiny besides."""
    lora = tmp_path / "lcm.safetensors"
    lora.write_bytes(b"")
    return make_settings(
        tmp_path,
        model="tiny-turbo",
        models={"tiny-lcm": {**LCM_MODEL, "fuse_lora": str(lora)}},
        enabled_models=["tiny-lcm", "tiny"],
    )


def _params(settings: Settings, prompt: str, preferences: Preferences | None = None, **options: object):  # type: ignore[no-untyped-def]
    [prepared] = prepare_imagine(settings, prompt, preferences, RequestOptions(**options) if options else None)  # type: ignore[arg-type]
    return prepared.params


@pytest.mark.parametrize(
    ("prompt", "steps", "cfg", "sampler"),
    [
        ("a fox", 1, 0.0, "euler_a_trailing"),
        ("a fox --steps 4 --cfg 1", 4, 1.0, "euler_a_trailing"),
        ("a fox --sampler euler_trailing", 1, 0.0, "euler_trailing"),
        ("a fox --model tiny-lcm", 4, 1.0, "lcm"),
        ("a fox --model tiny-lcm --steps 8 --cfg 2", 8, 2.0, "lcm"),
        ("a fox --model tiny", 4, 5.0, "euler_a"),
        ("a fox --model tiny --steps 60 --cfg 30 --sampler euler_a_trailing", 60, 30.0, "euler_a_trailing"),
    ],
)
def test_a_job_gets_its_models_defaults_and_may_ask_up_to_its_limits(
    settings: Settings, prompt: str, steps: int, cfg: float, sampler: str
) -> None:
    """Steps, CFG and sampler come from the model unless the prompt asks for allowed ones."""
    params = _params(settings, prompt)
    assert (params.steps, params.cfg, params.sampler) == (steps, cfg, sampler)


@pytest.mark.parametrize(
    ("prompt", "flag", "fragment"),
    [
        (
            "a fox --steps 50",
            "steps",
            "`--steps 50` is more than model `tiny-turbo` allows: use --steps N with N from 1 to 4",
        ),
        ("a fox --steps 5", "steps", "from 1 to 4"),
        ("a fox --cfg 7", "cfg", "`--cfg 7` is more than model `tiny-turbo` allows: use --cfg X with X from 0 to 1"),
        ("a fox --cfg 1.5", "cfg", "from 0 to 1"),
        ("a fox --sampler dpmpp_2m", "sampler", "use --sampler NAME with one of euler_a_trailing, euler_trailing"),
        ("a fox --model tiny-lcm --steps 9", "steps", "model `tiny-lcm` allows: use --steps N with N from 1 to 8"),
        ("a fox --model tiny-lcm --cfg 2.5", "cfg", "from 0 to 2"),
        ("a fox --model tiny-lcm --sampler euler_a", "sampler", "one of lcm"),
        ("a fox --no blur", "no", "`--no` has no effect on model `tiny-turbo`: it renders without guidance"),
        ("a fox --no blur --model tiny-lcm", "no", "`--no` has no effect at --cfg 1: a negative prompt needs --cfg"),
        ("a fox --no blur --model tiny --cfg 1", "no", "raise --cfg (up to 30 on model `tiny`) or remove --no"),
    ],
)
def test_past_a_models_limit_is_refused_naming_it(settings: Settings, prompt: str, flag: str, fragment: str) -> None:
    """A typed value the model does not allow is a PromptError naming the flag and the model's limit."""
    with pytest.raises(PromptError) as caught:
        prepare_imagine(settings, prompt)
    assert caught.value.flag == flag
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "prompt",
    [
        "a fox --no blur --model tiny-lcm --cfg 1.5",
        "a fox --no blur --model tiny --cfg 1.01",
        "a fox --no blur --model tiny",
    ],
)
def test_a_negative_prompt_with_guidance_is_accepted(settings: Settings, prompt: str) -> None:
    """Above CFG 1 classifier-free guidance runs, and the negative prompt with it."""
    assert _params(settings, prompt).negative_prompt == "blur"


@pytest.mark.parametrize(
    ("prompt", "sweeps", "fragment"),
    [
        ("a fox", ("steps=1,8",), "sweep steps value 8 is out of range: use a whole number from 1 to 4"),
        ("a fox", ("cfg=0,3",), "sweep cfg value 3 is out of range: use numbers from 0 to 1"),
        ("a fox", ("sampler=euler_a,euler_a_trailing",), "use some of: euler_a_trailing, euler_trailing"),
        ("a fox --model tiny-lcm", ("steps=4,12",), "from 1 to 8"),
        ("a fox --no blur --model tiny-lcm", ("seed=1,2",), "`--no` has no effect at --cfg 1"),
    ],
)
def test_a_sweep_obeys_the_models_limits(
    settings: Settings, prompt: str, sweeps: tuple[str, ...], fragment: str
) -> None:
    """A sweep's values obey the same per-model limits as the flags they stand for."""
    with pytest.raises(PromptError) as caught:
        prepare_imagine(settings, prompt, options=RequestOptions(sweeps=sweeps))
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("prompt", "sweeps"),
    [
        ("a fox", ("steps=1,2,3,4", "sampler=euler_a_trailing,euler_trailing", "cfg=0,1")),
        ("a fox --no blur --model tiny-lcm", ("cfg=1,2",)),  # the cfg 2 cells use the negative prompt
    ],
)
def test_a_sweep_within_the_models_limits_is_accepted(settings: Settings, prompt: str, sweeps: tuple[str, ...]) -> None:
    """Every value the model allows may be swept."""
    [prepared] = prepare_imagine(settings, prompt, options=RequestOptions(sweeps=sweeps))
    assert prepared.kind is Kind.SWEEP


@pytest.mark.parametrize(
    ("prompt", "steps", "sampler"),
    [
        ("a fox", 1, "euler_a_trailing"),  # the turbo model's own defaults, not the member's
        ("a fox --model tiny-lcm", 4, "lcm"),
        ("a fox --model tiny", 30, "dpmpp_2m"),  # a model that allows them takes the member's defaults
    ],
)
def test_settings_defaults_a_model_does_not_allow_give_way_to_its_own(
    settings: Settings, prompt: str, steps: int, sampler: str
) -> None:
    """A member's /settings steps and sampler are for every model: one this model cannot take is not refused, the
    model's default is used instead (it was not asked of this model)."""
    params = _params(settings, prompt, Preferences(steps=30, sampler="dpmpp_2m"))
    assert (params.steps, params.sampler) == (steps, sampler)


def test_a_typed_flag_still_wins_over_the_models_default_within_its_limits(settings: Settings) -> None:
    """/settings gives way; a flag within the limit is taken as typed."""
    params = _params(settings, "a fox --steps 3 --sampler euler_trailing", Preferences(steps=30, sampler="ddim"))
    assert (params.steps, params.sampler) == (3, "euler_trailing")


def test_the_servers_step_limit_applies_below_the_models(tmp_path: Path) -> None:
    """max_steps of the server below the model's own: the server's wins."""
    settings = make_settings(tmp_path, model="tiny-turbo", max_steps=2)
    with pytest.raises(PromptError, match="from 1 to 2"):
        prepare_imagine(settings, "a fox --steps 3")


def test_a_one_step_job_costs_a_25th_of_a_25_step_one(settings: Settings) -> None:
    """Costs follow the steps as for every model: a turbo grid at 1 step pays for 1 step."""
    credits = settings.credits.model_copy(update={"unit_pixels": 64 * 64, "unit_steps": 1})
    turbo = _params(settings, "a fox")
    slow = _params(settings, "a fox --model tiny --steps 25")
    turbo_cost = job_cost(turbo, kind="imagine", lane=Lane.FAST, model_multiplier=1.0, credits=credits)
    slow_cost = job_cost(slow, kind="imagine", lane=Lane.FAST, model_multiplier=1.0, credits=credits)
    assert (turbo_cost, slow_cost) == (4, 100)


@pytest.mark.parametrize(("owner", "fragment"), [(True, "fix [models.tiny-lcm] fuse_lora"), (False, "not available")])
def test_a_model_whose_fused_lora_file_is_missing_is_refused(tmp_path: Path, owner: bool, fragment: str) -> None:
    """The LoRA a model fuses is part of its files: missing, the model is refused before anything is charged."""
    missing = tmp_path / "gone.safetensors"
    settings = make_settings(tmp_path, models={"tiny-lcm": {**LCM_MODEL, "fuse_lora": str(missing)}})
    with pytest.raises(PromptError) as caught:
        prepare_imagine(settings, "a fox --model tiny-lcm", owner=owner)
    assert fragment in str(caught.value)
    assert (str(missing) in str(caught.value)) is owner
