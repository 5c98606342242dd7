"""SD3.5 and FLUX.1 requests: a job gets the model's own defaults (the flow sampler, FLUX.1's distilled guidance as
its --cfg), and what the family has no use for is refused in preparation, before anything is charged, saying what
to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.errors import PromptError
from bot.jobs import Kind, Origin
from bot.requests.blend import prepare_blend
from bot.requests.preferences import Preferences
from bot.requests.preparation import prepare_imagine
from bot.requests.request_options import ImageInput, RequestOptions
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from tests.conftest import make_settings
from tests.flow_models import SCHNELL


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The tiny FLUX.1 (dev-like) by default; tiny SD3, a schnell-like FLUX.1 and tiny SD1.5 besides; a LoRA."""
    lora = tmp_path / "grain.safetensors"
    lora.write_bytes(b"")
    return make_settings(
        tmp_path,
        loras={
            "grain": {"path": str(lora)},
            "sdxl-grain": {"path": str(lora), "family": "sdxl"},
            "flux-grain": {"path": str(lora), "family": "flux"},
        },
        model="tiny-flux",
        models={"tiny-schnell": SCHNELL},
        enabled_models=["tiny-sd3", "tiny-schnell", "tiny"],
    )


def _params(settings: Settings, prompt: str, preferences: Preferences | None = None, **options: object):  # type: ignore[no-untyped-def]
    [prepared] = prepare_imagine(settings, prompt, preferences, RequestOptions(**options) if options else None)  # type: ignore[arg-type]
    return prepared.params


@pytest.mark.parametrize(
    ("prompt", "steps", "cfg", "sampler", "size"),
    [
        ("a fox", 4, 3.5, "euler", (64, 64)),
        ("a fox --cfg 6 --steps 8", 8, 6.0, "euler", (64, 64)),
        ("a fox --ar 3:2", 4, 3.5, "euler", (72, 48)),
        ("a fox --model tiny-sd3", 4, 4.5, "euler", (64, 64)),
        ("a fox --model tiny-sd3 --no blur --cfg 7", 4, 7.0, "euler", (64, 64)),
        ("a fox --model tiny-schnell", 4, 0.0, "euler", (64, 64)),
        ("a fox --model tiny-schnell --cfg 0 --sampler euler", 4, 0.0, "euler", (64, 64)),
        ("a fox --model tiny", 4, 5.0, "euler_a", (64, 64)),
    ],
)
def test_a_job_gets_the_flow_models_defaults(
    settings: Settings, prompt: str, steps: int, cfg: float, sampler: str, size: tuple[int, int]
) -> None:
    """Steps, guidance and sampler come from the model; --cfg on FLUX.1-dev is its distilled guidance."""
    params = _params(settings, prompt)
    assert (params.steps, params.cfg, params.sampler, (params.width, params.height)) == (steps, cfg, sampler, size)


def test_a_sampler_from_settings_gives_way_to_the_flow_sampler(settings: Settings) -> None:
    """A member's /settings sampler (euler_a) was not asked of FLUX.1: its job samples with euler."""
    assert _params(settings, "a fox", Preferences(sampler="euler_a")).sampler == "euler"


@pytest.mark.parametrize(
    ("prompt", "options", "flag", "fragment"),
    [
        ("a fox --no blur", {}, "no", "`--no` has no effect on model `tiny-flux`: flux models render with distilled"),
        ("a fox --no blur", {}, "no", "remove --no and say what you want in the prompt"),
        (
            "a fox <lora:sdxl-grain:0.6>",
            {},
            "lora",
            "LoRA `sdxl-grain` is for sdxl models and model `tiny-flux` is flux",
        ),
        ("a fox <lora:flux-grain> --model tiny-sd3", {}, "lora", "use a LoRA made for sd3, or use --model with a flux"),
        ("a (red:1.3) fox", {}, "prompt", "prompt weights such as `(word:1.2)` or `[word]` do not apply to model"),
        ("a [red] fox --model tiny-sd3", {}, "prompt", "it reads the prompt through T5"),
        ("a (red:1.3) fox", {}, "prompt", "or weigh whole parts with `::` (`a cat:: a dog::2`)"),
        (
            "a cat:: a dog::-0.5",
            {},
            "::",
            "negative multi-prompt weights (`part::-0.5`) do not work on model `tiny-flux`",
        ),
        ("a " * 512, {}, "prompt", "model `tiny-flux`: it reads at most 512 T5 tokens and yours is at least 513"),
        ("fox " * 300 + "--model tiny-schnell", {}, "prompt", "it reads at most 256 T5 tokens"),
        ("a fox --chaos 40", {}, "chaos", "`--chaos` varies the CFG scale, and model `tiny-flux` (flux) has none"),
        ("a fox --tile --model tiny-sd3", {}, "tile", "`--tile` does not work on model `tiny-sd3` (sd3)"),
        ("a fox", {"control": ImageInput.announced()}, "controlnet", "ControlNets do not work with model `tiny-flux`"),
        ("a fox", {"image_prompts": (ImageInput.announced(),)}, "iw", "image prompts do not work with model"),
        ("a fox --sampler euler_a", {}, "sampler", "`--sampler euler_a` does not work with model `tiny-flux`"),
        ("a fox --sampler dpmpp_2m --model tiny-sd3", {}, "sampler", "use --sampler NAME with one of euler"),
        ("a fox --cfg 11", {}, "cfg", "use --cfg X with X from 0 to 10"),
        ("a fox --model tiny-schnell --cfg 3", {}, "cfg", "`--cfg` does nothing on model `tiny-schnell`"),
        ("a fox --model tiny-schnell --steps 8", {}, "steps", "use --steps N with N from 1 to 4"),
        ("a fox", {"sweeps": ("sampler=euler,euler_a",)}, "sweep", "use some of: euler"),
    ],
)
def test_what_the_family_cannot_do_is_refused_before_charging(
    settings: Settings, prompt: str, options: dict[str, object], flag: str, fragment: str
) -> None:
    """Each refusal is a PromptError naming the flag and what to change."""
    with pytest.raises(PromptError) as caught:
        _params(settings, prompt, **options)
    assert fragment in str(caught.value)
    if flag != "sweep":
        assert caught.value.flag == flag


@pytest.mark.parametrize(
    "prompt",
    [
        "a fox <lora:flux-grain:0.6>",
        "a fox <lora:grain:0.6> --model tiny-sd3",
        "a cat:: a dog::2",
        "a cat:: a dog::-0.5 --model tiny-sd3",
        "fox " * 255 + "--model tiny-schnell",
    ],
)
def test_what_the_flow_families_take_is_accepted(settings: Settings, prompt: str) -> None:
    """LoRAs of the family (or of none said), multi-prompts (negative parts on SD3) and prompts that may fit T5."""
    assert _params(settings, prompt).model in ("tiny-flux", "tiny-sd3", "tiny-schnell")


def test_a_blend_on_a_flow_model_is_refused_saying_why(settings: Settings) -> None:
    """/blend needs image prompts, which FLUX.1 does not take here: refused naming the families that do."""
    with pytest.raises(PromptError, match="image prompts do not work with model `tiny-flux` \\(flux\\) yet"):
        prepare_blend(settings, 2)


@pytest.mark.parametrize("sweeps", [("cfg=2,3.5,5",), ("steps=2,4", "seed=1,2")], ids=["guidance", "steps-and-seeds"])
def test_a_sweep_of_what_flux_has_is_accepted(settings: Settings, sweeps: tuple[str, ...]) -> None:
    """FLUX.1's guidance, steps and seeds may be swept."""
    [prepared] = prepare_imagine(settings, "a fox", options=RequestOptions(sweeps=sweeps))
    assert prepared.kind is Kind.SWEEP


async def test_through_the_service_a_refused_request_charges_nothing(tmp_path: Path) -> None:
    """A member's --no on FLUX.1 is refused at the service's door; their balance is untouched, no job exists;
    the same prompt without --no is admitted and charged."""
    settings = make_settings(tmp_path, model="tiny-flux", credits={"unit_pixels": 64 * 64, "unit_steps": 1})
    service = await ImagineService.open(settings, engine=EngineSupervisor(engine_config(settings)))  # never spawned
    member = Actor(9, Origin(source="cli"))
    try:
        await service.ledger.set_balance(9, 100, actor="mod", reason="test")
        with pytest.raises(PromptError, match="`--no` has no effect on model `tiny-flux`"):
            await service.prepare(member, "a fox --no blur")
        assert await service.ledger.balance(9) == 100
        assert await service.store.fetch_all("SELECT id FROM jobs") == []
        admitted = await service.submit(member, await service.prepare(member, "a fox"))
        assert (admitted.jobs[0].job.params.sampler, admitted.cost, admitted.balance) == ("euler", 16, 84)
    finally:
        await service.close()


def test_a_lora_family_reaches_the_engine_and_an_unknown_one_is_a_configuration_error(
    settings: Settings, tmp_path: Path
) -> None:
    """`[loras.NAME] family` goes to the engine's LoRA entries ('' when not said); a family that does not exist is
    refused when the configuration loads."""
    families = {entry.name: entry.family for entry in engine_config(settings).loras}
    assert families == {"grain": "", "sdxl-grain": "sdxl", "flux-grain": "flux"}
    with pytest.raises(ValueError, match="family"):
        make_settings(tmp_path, loras={"x": {"path": str(tmp_path / "grain.safetensors"), "family": "sd4"}})


async def test_through_the_service_a_lora_of_another_family_charges_nothing(tmp_path: Path) -> None:
    """A LoRA made for SDXL on FLUX.1, or a prompt longer than its T5 reads, is refused at the service's door with
    the balance untouched; a multi-prompt with the FLUX.1 LoRA is admitted and charged."""
    lora = tmp_path / "grain.safetensors"
    lora.write_bytes(b"")
    settings = make_settings(
        tmp_path,
        model="tiny-flux",
        credits={"unit_pixels": 64 * 64, "unit_steps": 1},
        loras={
            "sdxl-grain": {"path": str(lora), "family": "sdxl"},
            "flux-grain": {"path": str(lora), "family": "flux"},
        },
    )
    service = await ImagineService.open(settings, engine=EngineSupervisor(engine_config(settings)))  # never spawned
    member = Actor(9, Origin(source="cli"))
    try:
        await service.ledger.set_balance(9, 100, actor="mod", reason="test")
        with pytest.raises(PromptError, match="LoRA `sdxl-grain` is for sdxl models and model `tiny-flux` is flux"):
            await service.prepare(member, "a fox <lora:sdxl-grain:0.7>")
        with pytest.raises(PromptError, match="it reads at most 512 T5 tokens"):
            await service.prepare(member, "a " * 600)
        assert await service.ledger.balance(9) == 100
        assert await service.store.fetch_all("SELECT id FROM jobs") == []
        admitted = await service.submit(member, await service.prepare(member, "a fox <lora:flux-grain:0.7>:: a cat::2"))
        assert admitted.jobs[0].job.params.weighted_prompts and admitted.balance == 84
    finally:
        await service.close()
