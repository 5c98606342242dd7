"""The A1111 API in our words and back (the pure modules web/a1111_requests, a1111_samplers, a1111_mapping and
a1111_info): samplers both ways, requests as prompt text and options, finished jobs as A1111's info and parameters,
and parameters text parsed as A1111 parses it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core import ImageInput, ImageResult, Job, Kind, Lane, Origin, RenderParams, Status
from bot.requests.permutations import expand_permutations
from bot.requests.prompt import PromptLimits, clean_text, parse_prompt
from engine.metadata import ImageParameters, format_parameters
from engine.samplers import SAMPLERS
from tests.web.a1111_keys import CLIENT_INFO_KEYS
from web.a1111_info import a1111_guidance, filled_parameters, generation_info, parse_infotext, progress_and_eta
from web.a1111_mapping import (
    format_cfg,
    iteration_seeds,
    prompt_text,
    requested_size,
    resolve_checkpoint,
    translate,
)
from web.a1111_requests import A1111RequestError, Img2ImgRequest, Txt2ImgRequest
from web.a1111_samplers import A1111_SAMPLERS, a1111_sampler, resolve_sampler, sampler_items

ENGINE = tuple(SAMPLERS)
TURBO = ("euler_a_trailing", "euler_trailing")
INFO_KEYS = CLIENT_INFO_KEYS | {"denoising_strength", "styles", "version"}
"""The keys of A1111's info that clients read."""


def test_the_sampler_table_is_the_engines() -> None:
    """Every engine sampler, and only those, with the label and schedule type the engine writes into its PNGs."""
    assert {item.name: (item.label, item.schedule) for item in A1111_SAMPLERS} == {
        name: (sampler.label, sampler.schedule) for name, sampler in SAMPLERS.items()
    }


@pytest.mark.parametrize(
    ("sampler", "scheduler", "allowed", "expected"),
    [
        ("Euler a", None, None, "euler_a"),
        ("euler a", "Automatic", None, "euler_a"),
        ("Euler a", "SGM Uniform", None, "euler_a_trailing"),
        ("Euler", "sgm_uniform", None, "euler_trailing"),
        ("Euler a", None, TURBO, "euler_a_trailing"),
        ("Euler", "", TURBO, "euler_trailing"),
        ("DPM++ 2M", None, None, "dpmpp_2m"),
        ("DPM++ 2M", "Karras", None, "dpmpp_2m_karras"),
        ("DPM++ 2M Karras", None, None, "dpmpp_2m_karras"),
        ("DPM++ 2M Karras", "karras", None, "dpmpp_2m_karras"),
        ("DDIM", None, None, "ddim"),
        ("UniPC", None, None, "unipc"),
        ("LCM", None, ("lcm",), "lcm"),
        ("k_euler_a", None, None, "euler_a"),
        ("k_dpmpp_2m_ka", None, None, "dpmpp_2m_karras"),
        ("euler_a_trailing", None, None, "euler_a_trailing"),
        ("dpmpp_2m_karras", "Karras", None, "dpmpp_2m_karras"),
        (0, None, None, "euler_a"),
        (3, None, None, "dpmpp_2m_karras"),
        (None, None, None, None),
        ("", None, None, None),
    ],
)
def test_a1111_sampler_names_resolve_to_ours(
    sampler: str | int | None, scheduler: str | None, allowed: tuple[str, ...] | None, expected: str | None
) -> None:
    """A label (with its scheduler), an old label, a k-diffusion alias, our own name or an index into /samplers."""
    assert resolve_sampler(sampler, scheduler, available=ENGINE, allowed=allowed, model="m") == expected


@pytest.mark.parametrize(
    ("sampler", "scheduler", "allowed", "code", "says"),
    [
        ("Heun", None, None, "unknown_sampler", "use one of: Euler a, Euler, DPM++ 2M, DPM++ 2M Karras, DDIM"),
        ("DPM++ SDE", None, None, "unknown_sampler", "UniPC, LCM"),
        (99, None, None, "unknown_sampler", "out of range"),
        ("Euler a", "Karras", None, "unknown_scheduler", "use scheduler Automatic or SGM Uniform"),
        ("Euler a", "Beta", None, "unknown_scheduler", "Automatic, Karras, SGM Uniform"),
        ("DPM++ 2M Karras", "SGM Uniform", None, "unknown_scheduler", "uses the Karras schedule"),
        ("DDIM", None, TURBO, "unknown_sampler", "does not work with model `m`; use Euler a with scheduler SGM"),
        (None, "Karras", None, "unknown_sampler", "needs a sampler_name"),
    ],
)
def test_a_sampler_this_server_lacks_is_refused_with_the_names_that_exist(
    sampler: str | int | None, scheduler: str | None, allowed: tuple[str, ...] | None, code: str, says: str
) -> None:
    """The message names what to send instead."""
    with pytest.raises(A1111RequestError) as raised:
        resolve_sampler(sampler, scheduler, available=ENGINE, allowed=allowed, model="m")
    assert raised.value.code == code
    assert says in raised.value.message


def test_only_samplers_the_engine_has_are_offered() -> None:
    """A sampler missing from the engine is neither listed nor accepted."""
    available = ("euler_a", "ddim")
    assert [item["name"] for item in sampler_items(available)] == ["Euler a", "DDIM"]
    assert sampler_items(available)[0]["aliases"] == ["euler_a", "k_euler_a", "k_euler_ancestral"]
    with pytest.raises(A1111RequestError, match="use one of: Euler a, DDIM"):
        resolve_sampler("UniPC", None, available=available)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("euler_a", ("Euler a", "Automatic")),
        ("dpmpp_2m_karras", ("DPM++ 2M Karras", "Karras")),
        ("euler_a_trailing", ("Euler a", "SGM Uniform")),
        ("lcm", ("LCM", "Automatic")),
        ("someday", ("someday", "Automatic")),
    ],
)
def test_our_sampler_names_in_a1111_words(name: str, expected: tuple[str, str]) -> None:
    """The label our PNGs write and the schedule type."""
    assert a1111_sampler(name) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"prompt": "a red fox"}, "a red fox"),
        ({"prompt": "a fox", "seed": 7, "steps": 20, "cfg": 7.0}, "a fox --steps 20 --cfg 7 --seed 7"),
        ({"prompt": "a fox", "cfg": 6.25, "sampler": "euler_a"}, "a fox --sampler euler_a --cfg 6.25"),
        ({"prompt": "a fox", "model": "tiny", "tile": True}, "a fox --model tiny --tile"),
        ({"prompt": "a fox", "negative_prompt": "blur, text"}, "a fox --no blur, text"),
        ({"prompt": "a fox", "negative_prompt": " , ", "seed": 1}, "a fox --seed 1"),
        ({"prompt": "a {red, blue} fox"}, "a \\{red, blue\\} fox"),
        ({"prompt": "a \\(fox\\)"}, "a \\\\(fox\\\\)"),
    ],
)
def test_prompt_text_is_our_syntax(kwargs: dict[str, Any], expected: str) -> None:
    """The text, then flags; --no last; braces and backslashes escaped."""
    assert prompt_text(**kwargs) == expected


@pytest.mark.parametrize(
    ("prompt", "negative"),
    [
        ("a {red, blue} fox", ""),
        ("masterpiece, (a fox:1.2), [forest]", "lowres, (worst quality:1.4)"),
        ("a \\(literal\\) fox \\ with a backslash", "blur\\, text"),
        ("two\nlines of prompt", "{braces}"),
        ("<lora:style:0.8> a fox", "text"),
    ],
)
def test_prompt_text_reads_back_as_the_a1111_prompt(prompt: str, negative: str) -> None:
    """Through our permutations and parser, the A1111 text comes back as it was written: one job, nothing
    expanded, the negative prompt as --no."""
    text = prompt_text(prompt, negative, seed=5, steps=10, cfg=7, sampler="ddim")
    [variant] = expand_permutations(text, 8)
    parsed = parse_prompt(variant, PromptLimits(samplers=ENGINE))
    assert parsed.text == clean_text(prompt)
    assert parsed.negative_prompt == ", ".join(part.strip() for part in clean_text(negative).split(",") if part.strip())
    assert (parsed.seed, parsed.steps, parsed.cfg, parsed.sampler) == (5, 10, 7.0, "ddim")


@pytest.mark.parametrize(("value", "expected"), [(7.0, "7"), (6.5, "6.5"), (4.1234, "4.123"), (0.0, "0"), (30, "30")])
def test_cfg_as_the_flag_takes_it(value: float, expected: str) -> None:
    """At most three decimals, no trailing zeros."""
    assert format_cfg(value) == expected


@pytest.mark.parametrize(
    ("seed", "batch", "n_iter", "expected"),
    [
        (-1, 2, 3, [None, None, None]),
        (None, 1, 1, [None]),
        (100, 2, 3, [100, 102, 104]),
        (2**32 - 1, 1, 2, [2**32 - 1, 0]),
    ],
)
def test_each_job_starts_where_a1111_counts_its_seeds(
    seed: int | None, batch: int, n_iter: int, expected: list[int | None]
) -> None:
    """A1111 gives image i of the whole request seed + i; job j starts at seed + j * batch_size."""
    assert iteration_seeds(seed, batch, n_iter) == expected


@pytest.mark.parametrize(
    ("width", "height", "expected"), [(None, None, None), (640, 384, (640, 384)), (768, None, (768, 512))]
)
def test_requested_size(width: int | None, height: int | None, expected: tuple[int, int] | None) -> None:
    """Neither side: the model's size; one side: A1111's 512 for the other."""
    assert requested_size(width, height) == expected


def _translate(request: Txt2ImgRequest, **overrides: Any) -> Any:
    values: dict[str, Any] = {"images_per_job": 4, "max_jobs": 8, "available_samplers": ENGINE, "model": "tiny"}
    values.update(overrides)
    return translate(request, **values)


def test_a_txt2img_request_in_our_words() -> None:
    """n_iter prompts with consecutive seeds, batch_size images each, the exact size, the lane; unknown fields
    (styles, override settings, hires fix, scripts) change nothing."""
    request = Txt2ImgRequest.model_validate(
        {
            "prompt": "a fox",
            "negative_prompt": "blur",
            "seed": 10,
            "steps": 12,
            "cfg_scale": 6.5,
            "sampler_name": "DPM++ 2M Karras",
            "batch_size": 2,
            "n_iter": 3,
            "width": 96,
            "height": 64,
            "lane": "relax",
            "styles": ["None"],
            "enable_hr": True,
            "restore_faces": True,
            "alwayson_scripts": {"controlnet": {"args": []}},
            "a_field_from_the_future": 1,
        }
    )
    translated = _translate(request)
    assert translated.prompts == tuple(
        f"a fox --sampler dpmpp_2m_karras --steps 12 --cfg 6.5 --seed {seed} --no blur" for seed in (10, 12, 14)
    )
    assert translated.options.images == 2
    assert translated.options.size == (96, 64)
    assert translated.options.image is None
    assert translated.lane is Lane.RELAX


def test_a_model_override_becomes_the_model_flag() -> None:
    """override_settings.sd_model_checkpoint, resolved by the caller, is this request's --model."""
    translated = _translate(Txt2ImgRequest(prompt="a fox"), model_override="tiny")
    assert translated.prompts == ("a fox --model tiny",)


FLUX_DEV = "distilled"
FLUX_SCHNELL = "none"
CLIENT_GUIDANCE = {"prompt": "a fox", "negative_prompt": "lowres, blur", "cfg_scale": 7, "sampler_name": "Euler"}
"""What an A1111 client sends with every request, whatever the model."""


@pytest.mark.parametrize(
    ("fields", "guidance", "expected"),
    [
        ({}, "cfg", "a fox --sampler euler --cfg 7 --no lowres, blur"),
        ({"distilled_cfg_scale": 2.5}, "cfg", "a fox --sampler euler --cfg 7 --no lowres, blur"),
        ({}, FLUX_DEV, "a fox --sampler euler"),
        ({"distilled_cfg_scale": 2.5}, FLUX_DEV, "a fox --sampler euler --cfg 2.5"),
        ({"cfg_scale": 1, "distilled_cfg_scale": 3.5}, FLUX_DEV, "a fox --sampler euler --cfg 3.5"),
        ({"distilled_cfg_scale": 2.5}, FLUX_SCHNELL, "a fox --sampler euler"),
        ({"cfg_scale": None, "negative_prompt": ""}, FLUX_SCHNELL, "a fox --sampler euler"),
    ],
)
def test_guidance_fields_follow_how_the_model_is_guided(fields: dict[str, Any], guidance: str, expected: str) -> None:
    """CFG models take cfg_scale and the negative prompt; FLUX.1 takes neither (they are ignored, not refused:
    clients always send them) and its guidance from Forge's distilled_cfg_scale, unless it takes none (schnell)."""
    request = Txt2ImgRequest.model_validate({**CLIENT_GUIDANCE, **fields})
    assert _translate(request, model_samplers=("euler",), guidance=guidance).prompts == (expected,)


@pytest.mark.parametrize(
    ("cfg", "distilled", "expected"),
    [(5.0, False, (5.0, None)), (3.5, True, (1.0, 3.5)), (0.0, True, (1.0, None)), (0.0, False, (0.0, None))],
)
def test_a_jobs_guidance_in_a1111_and_forge_words(
    cfg: float, distilled: bool, expected: tuple[float, float | None]
) -> None:
    """A FLUX.1 job's --cfg is Forge's distilled CFG scale beside a CFG scale of 1; schnell's 0 is none."""
    assert a1111_guidance(cfg, distilled=distilled) == expected


def test_a_flux_jobs_info_and_parameters_say_distilled_cfg_scale() -> None:
    """info's cfg_scale is 1 with the guidance under extra_generation_params, and parameters fill both fields."""
    job = _job(4, 1)
    info = generation_info([(job, _results(job))], ["t0", "t1"], batch_size=2, distilled=True)
    assert info["cfg_scale"] == 1.0
    assert info["extra_generation_params"]["Distilled CFG Scale"] == 5.0
    parameters = filled_parameters(Txt2ImgRequest(prompt="a fox"), job, distilled=True)
    assert (parameters["cfg_scale"], parameters["distilled_cfg_scale"]) == (1.0, 5.0)


def test_an_img2img_request_announces_its_images() -> None:
    """The image (and mask) come with the request; strength is A1111's default 0.75 unless given."""
    plain = _translate(Img2ImgRequest(prompt="a fox", init_images=["AAAA"]))
    assert plain.options.image == ImageInput.announced()
    assert (plain.options.mask, plain.options.strength) == (None, 0.75)
    masked = _translate(Img2ImgRequest(prompt="a fox", init_images=["AAAA"], mask="BBBB", denoising_strength=0.4))
    assert masked.options.mask == ImageInput.announced()
    assert masked.options.strength == 0.4


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        (Txt2ImgRequest(prompt="a", batch_size=5), "batch_size 5 is out of range; a job makes 1 to 4 images"),
        (Txt2ImgRequest(prompt="a", n_iter=9), "n_iter 9 is out of range; this server takes 1 to 8 jobs"),
        (Txt2ImgRequest(prompt="a", sampler_name="Heun"), "sampler `Heun` is not available"),
        (Txt2ImgRequest(prompt="a", lane="ludicrous"), "lane `ludicrous` is not a lane; use one of: turbo, fast"),
        (Img2ImgRequest(prompt="a"), "img2img needs init_images"),
        (Img2ImgRequest(prompt="a", init_images=["A"], mask="B", inpainting_mask_invert=1), "send the mask inverted"),
    ],
)
def test_requests_this_server_cannot_honour_are_refused(request_: Txt2ImgRequest, says: str) -> None:
    """Before anything is prepared or charged, with what to send instead."""
    with pytest.raises(A1111RequestError, match=None) as raised:
        _translate(request_)
    assert says in raised.value.message


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("tiny", "tiny"),
        ("TINY", "tiny"),
        ("tiny.safetensors [0123abcd45]", "tiny"),
        ("models/Stable-diffusion/tiny-sdxl.ckpt", "tiny-sdxl"),
    ],
)
def test_checkpoint_titles_resolve_to_our_models(title: str, expected: str) -> None:
    """Our title, or an A1111-style title of the same name."""
    assert resolve_checkpoint(title, ("tiny", "tiny-sdxl")) == expected


def test_an_unknown_checkpoint_names_the_models_there_are() -> None:
    """Only models the member may use."""
    with pytest.raises(A1111RequestError, match="use one of: tiny, tiny-sdxl") as raised:
        resolve_checkpoint("sdxl", ("tiny", "tiny-sdxl"))
    assert raised.value.code == "unknown_model"


def _job(job_id: int, seed: int, *, images: int = 2, kind: Kind = Kind.IMAGINE) -> Job:
    params = RenderParams(
        prompt="a fox",
        negative_prompt="blur",
        model="tiny",
        width=64,
        height=96,
        steps=4,
        cfg=5.0,
        seed=seed,
        images=images,
        sampler="euler_a_trailing",
        strength=0.6,
    )
    return Job(
        job_id, 1, kind, Status.COMPLETED, Lane.FAST, "a fox", params, Origin(source="web"), 1_700_000_000.0, cost=1
    )


def _results(job: Job) -> list[ImageResult]:
    return [ImageResult(job.id, index, f"{index}.png", seed, 64, 96) for index, seed in enumerate(job.params.seeds)]


def test_finished_jobs_as_a1111_info() -> None:
    """Every key clients read; seeds and prompts per image over all jobs, the first job's settings."""
    jobs = [_job(7, 100), _job(8, 102)]
    info = generation_info([(job, _results(job)) for job in jobs], ["t0", "t1", "t2", "t3"], batch_size=2)
    assert set(info) >= INFO_KEYS
    assert json.loads(json.dumps(info)) == info
    assert info["all_seeds"] == [100, 101, 102, 103]
    assert info["seed"] == 100
    assert info["all_prompts"] == ["a fox"] * 4
    assert (info["width"], info["height"], info["steps"], info["cfg_scale"]) == (64, 96, 4, 5.0)
    assert (info["sampler_name"], info["extra_generation_params"]) == ("Euler a", {"Schedule type": "SGM Uniform"})
    assert info["infotexts"] == ["t0", "t1", "t2", "t3"]
    assert info["job_ids"] == [7, 8]
    assert info["denoising_strength"] is None
    assert len(info["job_timestamp"]) == 14 and info["job_timestamp"].isdigit()


def test_img2img_info_names_its_strength() -> None:
    """denoising_strength is the job's strength for an image-to-image job."""
    job = _job(9, 1, kind=Kind.IMG2IMG)
    assert generation_info([(job, _results(job))], ["t0", "t1"], batch_size=2)["denoising_strength"] == 0.6


def test_parameters_are_the_request_with_its_defaults_filled() -> None:
    """What the request left out comes from the job; what it said, unknown fields too, stays; images are not
    echoed."""
    request = Img2ImgRequest.model_validate(
        {"prompt": "a fox", "init_images": ["AAAA"], "seed": -1, "steps": 9, "styles": ["x"], "future": {"a": 1}}
    )
    parameters = filled_parameters(request, _job(3, 5, kind=Kind.IMG2IMG))
    assert parameters["steps"] == 9
    assert (parameters["cfg_scale"], parameters["width"], parameters["height"]) == (5.0, 64, 96)
    assert parameters["sampler_name"] == "Euler a"
    assert parameters["seed"] == -1
    assert parameters["init_images"] is None
    assert parameters["denoising_strength"] == 0.75
    assert (parameters["styles"], parameters["future"]) == (["x"], {"a": 1})


def test_our_parameters_text_parses_as_a1111_parses_it() -> None:
    """What the engine writes into every PNG reads back field by field."""
    text = format_parameters(
        ImageParameters(
            prompt="a fox, (forest:1.2)",
            negative_prompt="blur, text",
            steps=20,
            sampler="Euler a",
            cfg=7.5,
            seed=42,
            width=512,
            height=768,
            model="sd15",
            extra=(("Schedule type", "SGM Uniform"), ("Lora weights", "style: 0.8")),
        )
    )
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "a fox, (forest:1.2)"
    assert parsed["Negative prompt"] == "blur, text"
    assert (parsed["Steps"], parsed["Sampler"], parsed["CFG scale"], parsed["Seed"]) == ("20", "Euler a", "7.5", "42")
    assert (parsed["Size-1"], parsed["Size-2"], parsed["Model"]) == ("512", "768", "sd15")
    assert parsed["Schedule type"] == "SGM Uniform"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("just a prompt", {"Prompt": "just a prompt", "Negative prompt": ""}),
        (
            'a\nNegative prompt: b\nSteps: 1, Sampler: LCM, Seed: 3, Note: "x, y"',
            {"Prompt": "a", "Negative prompt": "b", "Steps": "1", "Sampler": "LCM", "Seed": "3", "Note": "x, y"},
        ),
    ],
)
def test_parameters_text_table(text: str, expected: dict[str, str]) -> None:
    """A prompt alone, quoted values, no text at all."""
    assert parse_infotext(text) == expected


@pytest.mark.parametrize(
    ("step", "total", "elapsed", "expected"),
    [(0, 20, 5.0, (0.0, 0.0)), (5, 20, 2.0, (0.25, 6.0)), (20, 20, 8.0, (1.0, 0.0)), (3, 0, 1.0, (0.0, 0.0))],
)
def test_progress_and_time_left(step: int, total: int, elapsed: float, expected: tuple[float, float]) -> None:
    """The fraction of steps done and the time left at the pace so far."""
    assert progress_and_eta(step, total, elapsed) == pytest.approx(expected)
