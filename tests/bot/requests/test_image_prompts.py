"""Image prompts and /blend, as preparation checks them before anything is charged: the links that may be fetched
(Discord's CDN over https, nothing else), --iw, the number of images, the IP-Adapter of the model's family."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import PromptError
from bot.jobs import Kind
from bot.requests.blend import prepare_blend
from bot.requests.image_prompts import (
    DISCORD_CDN,
    attach_image_prompts,
    awaited_image_prompts,
    check_image_url,
    parse_image_weight,
    pending_image_urls,
    split_image_urls,
)
from bot.requests.preferences import Preferences
from bot.requests.preparation import prepare_imagine
from bot.requests.request_options import ImageInput, RequestOptions
from bot.scheduling.costs import job_cost
from config.settings import Settings
from tests.conftest import make_settings

LINK = "https://cdn.discordapp.com/attachments/1/2/fox.png?ex=1&hm=abc"
MEDIA = "https://media.discordapp.net/attachments/3/4/owl.webp"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, enabled_models=["tiny", "tiny-sdxl"])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (LINK, LINK),
        ("HTTPS://CDN.DISCORDAPP.COM/attachments/1/2/a.png", "https://cdn.discordapp.com/attachments/1/2/a.png"),
        (
            "https://cdn.discordapp.com:443/attachments/1/2/a.png",
            "https://cdn.discordapp.com:443/attachments/1/2/a.png",
        ),
        (MEDIA + "#frag", MEDIA),
        ("https://cdn.discordapp.com/ephemeral-attachments/1/2/a.png", None),
    ],
)
def test_discord_attachment_links_are_accepted(url: str, expected: str | None) -> None:
    """https links to files on Discord's CDN hosts pass, normalised (host lower-cased, fragment dropped)."""
    assert check_image_url(url) == (expected or url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://cdn.discordapp.com/attachments/1/2/a.png", "only https:// links"),
        ("ftp://cdn.discordapp.com/attachments/1/2/a.png", "only https:// links"),
        ("file:///etc/passwd", "only https:// links"),
        ("https://example.com/a.png", "example.com is not Discord's file server"),
        ("https://cdn.discordapp.com.evil.example/attachments/a.png", "is not Discord's file server"),
        ("https://evil.example/cdn.discordapp.com/attachments/a.png", "is not Discord's file server"),
        ("https://cdn.discordapp.com@evil.example/attachments/a.png", "user name or password"),
        ("https://user:pw@cdn.discordapp.com/attachments/a.png", "user name or password"),
        ("https://cdn.discordapp.com\\@evil.example/attachments/a.png", "backslash"),
        ("https://cdn.discordapp.com:8080/attachments/1/2/a.png", "port 8080 is not allowed"),
        ("https://cdn.discordapp.com:99999/attachments/1/2/a.png", "not a valid link"),
        ("https://127.0.0.1/attachments/1/2/a.png", "127.0.0.1 is not Discord's file server"),
        ("https://[::1]/attachments/a.png", "::1 is not Discord's file server"),
        ("https://169.254.169.254/latest/meta-data/", "is not Discord's file server"),
        ("https://localhost/attachments/a.png", "localhost is not Discord's file server"),
        ("https://cdn.discordapp.com./attachments/1/2/a.png", "is not Discord's file server"),
        ("https://cdn.dіscordapp.com/attachments/1/2/a.png", "non-ASCII"),  # a Cyrillic і
        ("https://cdn.discordapp.com%2eevil.example/attachments/a.png", "is not Discord's file server"),
        ("https://cdn.discordapp.com/avatars/1/a.png", "not a Discord attachment"),
        ("https://cdn.discordapp.com/attachments/../../api/x", "not a Discord attachment"),
        ("https://cdn.discordapp.com/attachments/1/2/a b.png", "spaces"),
        ("https://cdn.discordapp.com/attachments/" + "a" * 2100, "longer than 2048"),
    ],
)
def test_every_other_link_is_refused(url: str, why: str) -> None:
    """Another scheme, host, port, user info, an address, a path outside attachments, look-alike characters: each
    refused with the reason and what to do instead (never fetched)."""
    with pytest.raises(PromptError) as caught:
        check_image_url(url)
    message = str(caught.value)
    assert why in message
    assert "attach the image as image_prompt" in message


@given(st.text(min_size=1, max_size=80))
def test_no_text_makes_a_link_to_another_host(junk: str) -> None:
    """Whatever follows a Discord-looking prefix, an accepted link's host is one of Discord's."""
    for url in (f"https://{junk}", f"https://cdn.discordapp.com{junk}", f"https://{junk}@cdn.discordapp.com/x"):
        try:
            checked = check_image_url(url)
        except PromptError:
            continue
        host = checked.split("/")[2].split(":")[0]
        assert host in DISCORD_CDN.hosts


@pytest.mark.parametrize(
    ("text", "urls", "rest"),
    [
        (f"{LINK} {MEDIA} a red fox --iw 0.5", (LINK, MEDIA), "a red fox --iw 0.5"),
        (f"<{LINK}> a red fox", (LINK,), "a red fox"),
        (f"a red fox {LINK}", (), f"a red fox {LINK}"),  # a link later in the prompt is text, never fetched
        ("style:anime a cat", (), "style:anime a cat"),
        ("", (), ""),
    ],
)
def test_leading_links_are_split_off(text: str, urls: tuple[str, ...], rest: str) -> None:
    """Only the words at the start that look like links are image prompts."""
    assert split_image_urls(text) == (urls, rest)


def test_too_many_links_are_refused() -> None:
    with pytest.raises(PromptError, match="at most 5 image links"):
        split_image_urls(" ".join([LINK] * 6) + " fox")


@pytest.mark.parametrize(("value", "weight"), [("0", 0.0), ("0.5", 0.5), ("2", 2.0), (".25", 0.25), ("+1", 1.0)])
def test_image_weight_from_0_to_2(value: str, weight: float) -> None:
    assert parse_image_weight(value, "iw") == weight


@pytest.mark.parametrize("value", ["2.5", "-1", "nan", "inf", "1e1", "abc", "100"])
def test_image_weight_outside_0_to_2_is_refused(value: str) -> None:
    with pytest.raises(PromptError, match=r"--iw X with X a number from 0 to 2"):
        parse_image_weight(value, "iw")


def test_an_image_prompt_and_links_become_placeholders(settings: Settings) -> None:
    """The links, then one placeholder per attachment, the weight and the tiny model's tiny adapter; the prompt
    text keeps no link; the job is an /imagine at /imagine's price."""
    options = RequestOptions(image_prompts=(ImageInput.announced(),))
    [job] = prepare_imagine(settings, f"{LINK} a red fox --iw 0.8 --seed 3", None, options)
    assert job.kind is Kind.IMAGINE
    assert job.prompt == "a red fox --iw 0.8 --seed 3"
    assert job.params.image_prompts == (LINK, "")
    assert (job.params.image_weight, job.params.ip_adapter) == (0.8, "tiny-ip-adapter")
    assert pending_image_urls([job]) == (LINK,)
    assert awaited_image_prompts([job]) == 2
    [plain] = prepare_imagine(settings, "a red fox --seed 3")
    cost = {"kind": "imagine", "lane": job.lane or "fast", "model_multiplier": 1.0, "credits": settings.credits}
    assert job_cost(job.params, **cost) == job_cost(plain.params, **cost)  # type: ignore[arg-type]
    attached = attach_image_prompts([job], [ImageInput(Path("/d/u/a.png"), 64, 64), ImageInput(Path("/d/u/b.png"))])
    assert attached[0].params.image_prompts == ("/d/u/a.png", "/d/u/b.png")
    assert awaited_image_prompts(attached) == 0
    with pytest.raises(PromptError, match="announced 2 image prompt"):
        attach_image_prompts([job], [ImageInput(Path("/d/u/a.png"))])


def _owned_settings(tmp_path: Path, **changes: object) -> Settings:
    return make_settings(tmp_path, model="mine", models={"mine": {"source": "tiny:sd15", **changes}})


@pytest.mark.parametrize(
    ("prompt", "options", "fragment"),
    [
        ("a fox --iw 0.5", None, "--iw needs an image prompt"),
        (f"{LINK} a fox", RequestOptions(image_prompts=(ImageInput.announced(),) * 5), "at most 5 image prompts"),
        ("http://example.com/fox.png a fox", None, "only https:// links"),
        ("https://example.com/fox.png a fox", None, "example.com is not Discord's file server"),
        (f"{LINK} a fox --iw 3", None, "--iw X with X a number from 0 to 2"),
        (f"{LINK} a fox --model tiny-turbo", None, "no IP-Adapter for the sd2 family is configured"),
    ],
)
def test_bad_image_prompt_requests_are_refused(
    tmp_path: Path, prompt: str, options: RequestOptions | None, fragment: str
) -> None:
    """Each refusal comes from preparation (nothing charged yet) and says what to change."""
    settings = make_settings(tmp_path, enabled_models=["tiny-turbo"])
    with pytest.raises(PromptError, match=re.escape(fragment)):
        prepare_imagine(settings, prompt, None, options)


@pytest.mark.parametrize(
    ("model", "adapters", "fragment"),
    [
        ({"ip_adapter": "tiny-ip-adapter-sdxl"}, {}, "is for sdxl models but model `mine` is sd15"),
        ({"ip_adapter": "nope"}, {}, "names the IP-Adapter `nope`, which is not configured"),
        (
            {"ip_adapter": "local"},
            {"local": {"source": "/nonexistent/ip-adapter", "family": "sd15"}},
            "the IP-Adapter `local` cannot be used: /nonexistent/ip-adapter is not a folder",
        ),
        (
            {"ip_adapter": "hub"},
            {"hub": {"source": "someone/not-downloaded", "family": "sd15"}},
            "is not downloaded on this machine",
        ),
        ({"family": "sdxl", "source": "tiny:sdxl", "ip_adapter": ""}, {}, None),
    ],
)
def test_the_models_adapter_is_checked_before_charging(
    tmp_path: Path, model: dict, adapters: dict, fragment: str | None
) -> None:
    """Family mismatch, a missing entry, files not on this machine: refused at preparation, naming what to fix."""
    settings = make_settings(
        tmp_path, model="mine", models={"mine": {"source": "tiny:sd15", **model}}, ip_adapters=adapters
    )
    if fragment is None:
        [job] = prepare_blend(settings, 2, "square", owner=True)
        assert job.params.ip_adapter == "tiny-ip-adapter-sdxl"
        return
    with pytest.raises(PromptError) as caught:
        prepare_blend(settings, 2, "square", owner=True)
    assert fragment in str(caught.value)


def test_a_member_is_told_no_paths(tmp_path: Path) -> None:
    """A missing adapter folder: the owner sees the path, a member only what the owner can fix."""
    settings = make_settings(
        tmp_path,
        model="mine",
        models={"mine": {"source": "tiny:sd15", "ip_adapter": "local"}},
        ip_adapters={"local": {"source": "/srv/secret/ip-adapter", "family": "sd15"}},
    )
    with pytest.raises(PromptError) as caught:
        prepare_imagine(settings, f"{LINK} a fox")
    assert "/srv/secret" not in str(caught.value)
    assert "the owner can fix [ip_adapters.local]" in str(caught.value)


def test_a_configured_local_adapter_is_chosen_for_a_real_model(tmp_path: Path) -> None:
    """For a real SD1.5 model the first real adapter of its family: the server's own before the built-in one."""
    folder = tmp_path / "ipa"
    (folder / "models" / "image_encoder").mkdir(parents=True)
    (folder / "models" / "ip.safetensors").write_bytes(b"x")
    (folder / "models" / "image_encoder" / "config.json").write_text("{}")
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}")
    settings = make_settings(
        tmp_path,
        model="real",
        models={"real": {"source": str(model)}},
        ip_adapters={
            "mine": {"source": str(folder), "family": "sd15", "subfolder": "models", "weight_name": "ip.safetensors"}
        },
    )
    [job] = prepare_blend(settings, 3, "landscape")
    assert job.params.ip_adapter == "mine"


@pytest.mark.parametrize(
    ("images", "dimensions", "size"),
    [(2, "square", (64, 64)), (5, "portrait", (48, 72)), (3, "landscape", (72, 48))],
)
def test_a_blend_is_one_job_of_its_images(settings: Settings, images: int, dimensions: str, size: tuple) -> None:
    """2 to 5 images, a shape, the empty text prompt, the model's defaults, its own kind."""
    [job] = prepare_blend(settings, images, dimensions)
    assert job.kind is Kind.BLEND
    assert job.prompt == f"blend of {images} images ({dimensions})"
    assert job.params.prompt == ""
    assert job.params.image_prompts == ("",) * images
    assert (job.params.width, job.params.height) == size
    assert (job.params.steps, job.params.images, job.params.ip_adapter) == (4, 4, "tiny-ip-adapter")


@pytest.mark.parametrize(
    ("images", "dimensions", "fragment"),
    [
        (1, "square", "/blend mixes 2 to 5 images; 1 were given"),
        (6, "square", "/blend mixes 2 to 5 images; 6 were given"),
        (2, "wide", "`wide` is not a /blend shape; use one of: portrait, square, landscape"),
    ],
)
def test_bad_blends_are_refused(settings: Settings, images: int, dimensions: str, fragment: str) -> None:
    with pytest.raises(PromptError) as caught:
        prepare_blend(settings, images, dimensions)
    assert fragment in str(caught.value)


def test_a_blend_follows_the_members_settings_but_not_their_aspect(settings: Settings) -> None:
    """/settings picks the model and steps; the shape is the command's."""
    preferences = Preferences(model="tiny-sdxl", aspect="16:9", steps=3)
    [job] = prepare_blend(settings, 2, "square", preferences)
    assert (job.params.model, job.params.steps, job.params.width, job.params.height) == ("tiny-sdxl", 3, 64, 64)
    assert job.params.ip_adapter == "tiny-ip-adapter-sdxl"


def test_the_blend_kind_has_its_own_price(tmp_path: Path) -> None:
    """credits.kind_multipliers.blend prices blends apart from /imagine."""
    settings = make_settings(
        tmp_path, credits={"unit_pixels": 64 * 64, "unit_steps": 1, "kind_multipliers": {"blend": 3.0}}
    )
    [job] = prepare_blend(settings, 2)
    common = {"lane": "fast", "model_multiplier": 1.0, "credits": settings.credits}
    assert job_cost(job.params, kind="blend", **common) > job_cost(job.params, kind="imagine", **common)  # type: ignore[arg-type]


def test_the_examples_commented_adapter_is_a_valid_entry() -> None:
    """The [ip_adapters.*] example of config/bot.example.toml, uncommented, is an entry the registry accepts."""
    import tomllib

    from config.ip_adapters import IpAdapterSpec

    example = Path(__file__).resolve().parents[3] / "config" / "bot.example.toml"
    lines, inside = [], False
    for line in example.read_text(encoding="utf-8").splitlines():
        inside = re.fullmatch(r"# \[ip_adapters\.[\w-]+\]", line) is not None or (
            inside and re.match(r"# \w+ = ", line) is not None
        )
        if inside:
            lines.append(line.removeprefix("# "))
    [(name, fields)] = tomllib.loads("\n".join(lines))["ip_adapters"].items()
    spec = IpAdapterSpec(**fields)
    assert (name, spec.weight_path, spec.image_encoder_path) == (
        "my-sd15",
        "models/ip-adapter_sd15.safetensors",
        "models/image_encoder",
    )
