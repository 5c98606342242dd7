"""/imagine with an image, /edit and /sweep through simcord; bad uploads are refused privately and cost nothing."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
import simcord
from PIL import Image

from bot.requests.uploads import UploadError, UploadLimits
from cogs.imagine import read_attachment
from tests.conftest import posts, scene, wait_until

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"


def _png(size: tuple[int, int], color: str | int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()


async def _jobs(env: simcord.Env) -> list[tuple[str, str]]:
    rows = await env.bot.service.store.fetch_all("SELECT kind, status FROM jobs ORDER BY id")
    return [(row[0], row[1]) for row in rows]


@pytest.mark.slow
async def test_imagine_with_an_image_is_img2img(discord_env: simcord.Env) -> None:
    _guild, channel, jo = scene(discord_env, "jo")

    result = await jo.slash(
        channel, "imagine", prompt="a red fox --seed 2", image=("photo.png", _png((96, 64), "red")), strength=0.6
    )
    assert result.response is not None
    assert "(From your image) — queued" in result.response.content
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the img2img grid")
    assert await _jobs(discord_env) == [("img2img", "completed")]
    stored = list((discord_env.bot.settings.data_dir / "uploads").glob("*.png"))
    assert stored
    assert all("photo" not in path.name for path in stored)


@pytest.mark.slow
async def test_edit_inpaints_and_sweep_posts_a_labelled_grid(discord_env: simcord.Env) -> None:
    _guild, channel, kim = scene(discord_env, "kim")

    edited = await kim.slash(
        channel,
        "edit",
        image=("in.png", _png((64, 64), "blue")),
        mask=("mask.png", _png((128, 128), 255, "L")),  # twice the size, same shape: resized
        prompt="a yellow sun",
    )
    assert edited.response is not None
    assert "(Edit) — queued" in edited.response.content
    swept = await kim.slash(channel, "sweep", prompt="a lamp --seed 1", x="cfg=3,7", y="steps=2,4")
    assert swept.response is not None
    assert "(Sweep) — queued" in swept.response.content

    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="the edit and the sweep")
    assert await _jobs(discord_env) == [("inpaint", "completed"), ("sweep", "completed")]
    sweep_post = posts(channel)[-1]
    assert sweep_post.components == []  # a sweep grid has no buttons


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("not_an_image.png", "not an image this bot can read"),
        ("truncated.png", "damaged or truncated"),
        ("bomb.png", "far too many pixels"),
        ("animated.gif", "animated images are not supported"),
        ("empty.png", "empty (0 bytes)"),
    ],
)
async def test_bad_uploads_are_refused_and_cost_nothing(discord_env: simcord.Env, name: str, fragment: str) -> None:
    guild, channel, lee = scene(discord_env, "lee")
    balance = (await discord_env.bot.service.ledger.member(lee.id)).balance

    result = await lee.slash(channel, "imagine", prompt="a fox", image=(f"../../{name}\x07", (BAD / name).read_bytes()))

    assert result.ephemeral
    text = result.response.content if result.response else result.followups[-1].content
    assert fragment in text
    assert await _jobs(discord_env) == []
    assert await discord_env.bot.service.ledger.balance(lee.id) == balance
    assert posts(channel) == []
    next_member = guild.add_member(discord_env.create_user("next"))
    served = await next_member.slash(channel, "imagine", prompt="a fox --seed 1")
    assert served.response is not None
    assert "queued" in served.response.content  # the bot keeps serving
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the next member's grid")


async def test_mask_of_another_shape_is_refused_before_anything_is_charged(discord_env: simcord.Env) -> None:
    """The shapes are compared when the request is prepared: no job, no ledger row, no stored upload."""
    _guild, channel, max_ = scene(discord_env, "max")
    before = _stored(discord_env)

    result = await max_.slash(
        channel,
        "edit",
        image=("in.png", _png((64, 64), "blue")),
        mask=("m.png", _png((64, 32), 255, "L")),
        prompt="sun",
    )

    assert result.response is not None
    assert "the mask is 64x32 but the image is 64x64" in result.response.content
    assert "\n" not in result.response.content
    store = discord_env.bot.service.store
    assert await store.fetch_value("SELECT COUNT(*) FROM jobs") == 0
    assert await store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0
    assert _stored(discord_env) == before


def _all_jobs_ended(env: simcord.Env) -> bool:
    with sqlite3.connect(env.bot.settings.database_file) as db:
        (active,) = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()
    return active == 0


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("x" * 5999, "limit is 1500"),
        ("a fox --ar 1:0", "--ar W:H"),
        ("a fox --cfg nan", "--cfg X"),
        ("a fox --cfg inf", "--cfg X"),
        ("a fox --steps -3", "--steps N"),
        ("a fox --seed 99999999999999", "--seed N"),
        ("a fox --repeat 10000", "out of range"),
        ("a {red, {blue fox", "without its `}`"),
        ("a red} fox", "without its `{`"),
        ("\u200b\u202e --ar 3:2", "prompt is empty"),
    ],
)
async def test_hostile_prompts_through_discord(discord_env: simcord.Env, prompt: str, fragment: str) -> None:
    _guild, channel, tom = scene(discord_env, "tom")
    result = await tom.slash(channel, "imagine", prompt=prompt)
    assert result.ephemeral
    assert fragment in result.response.content
    assert await _jobs(discord_env) == []


@pytest.mark.slow
async def test_sql_and_right_to_left_text_is_just_a_prompt(discord_env: simcord.Env) -> None:
    _guild, channel, uma = scene(discord_env, "uma")
    result = await uma.slash(channel, "imagine", prompt="a fox'); DROP TABLE jobs;-- \u202eevil\u202c --seed 3")
    assert "queued" in result.response.content
    rows = await discord_env.bot.service.store.fetch_all("SELECT prompt FROM jobs")
    assert len(rows) == 1
    assert "DROP TABLE jobs" in rows[0][0]
    assert "\u202e" not in rows[0][0]
    await wait_until(discord_env, lambda: _all_jobs_ended(discord_env), what="the job")


def _stored(env: simcord.Env) -> set[Path]:
    """Every file under uploads/ (staging included); the module's tests share one data folder."""
    uploads = env.bot.settings.data_dir / "uploads"
    return {path for path in uploads.rglob("*") if path.is_file()} if uploads.exists() else set()


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("apng.png", "animated images are not supported"),
        ("animated.webp", "animated images are not supported"),
        ("ztxt_bomb.png", "oversized compressed metadata"),
        ("iccp_bomb.png", "oversized compressed metadata"),
        ("text_memory_bomb.png", "oversized compressed metadata"),
        ("one_pixel.png", "each side must be at least 32 pixels"),
        ("ratio_1_to_100.png", "longer than 4:1"),
        ("pixel_flood.png", "10000x10000"),
        ("jpeg_huge_dimensions.jpg", "far too many pixels"),
        ("garbage_idat.png", "damaged or truncated"),
        ("bad_lzw.gif", "damaged or truncated"),
        ("picture.tif", "not an image this bot can read"),
    ],
)
async def test_crafted_uploads_are_refused_in_one_line(discord_env: simcord.Env, name: str, fragment: str) -> None:
    """Animations, compressed-metadata bombs, slivers and broken streams: a private one-line refusal, no job, no
    charge, nothing stored."""
    _guild, channel, kit = scene(discord_env, "kit")
    before = _stored(discord_env)

    result = await kit.slash(channel, "imagine", prompt="a fox", image=(name, (BAD / name).read_bytes()))

    assert result.ephemeral
    text = result.response.content if result.response else result.followups[-1].content
    assert fragment in text
    assert "\n" not in text
    assert await _jobs(discord_env) == []
    assert await discord_env.bot.service.store.fetch_value("SELECT COUNT(*) FROM ledger") == 0
    assert _stored(discord_env) == before


async def test_a_banned_member_is_refused_before_the_download(discord_env: simcord.Env) -> None:
    """The ban is checked before the attachment is fetched: nothing is downloaded, stored or charged."""
    _guild, channel, bo = scene(discord_env, "bo")
    await discord_env.bot.service.ledger.set_banned(bo.id, True, actor="test")
    before = _stored(discord_env)

    result = await bo.slash(channel, "imagine", prompt="a fox", image=("p.png", _png((64, 64), "red")))

    assert result.response is not None
    assert "banned" in result.response.content
    assert not result.deferred
    assert not [r for r in discord_env.http_requests if "attachments" in r.path and r.method == "GET"]
    assert await _jobs(discord_env) == []
    assert _stored(discord_env) == before


@pytest.mark.slow
async def test_a_clean_jpeg_is_stored_as_sent_and_a_rotated_one_upright(discord_env: simcord.Env) -> None:
    """Uploads stay compact: a plain JPEG keeps its bytes; an EXIF-rotated photo is stored turned the right way."""
    _guild, channel, rio = scene(discord_env, "rio")
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), "green").save(buffer, "JPEG", quality=90)
    photo = buffer.getvalue()

    first = await rio.slash(channel, "imagine", prompt="a fox --seed 1", image=("photo.jpg", photo))
    rotated = await rio.slash(
        channel, "imagine", prompt="a fox --seed 2", image=("r.jpg", (BAD / "exif_rotated.jpg").read_bytes())
    )

    assert first.response is not None and "queued" in first.response.content
    assert rotated.response is not None and "queued" in rotated.response.content
    rows = await discord_env.bot.service.store.fetch_all("SELECT params FROM jobs ORDER BY id")
    stored = [Path(json.loads(row[0])["init_image"]) for row in rows]
    assert stored[0].suffix == ".jpg" and stored[0].read_bytes() == photo
    with Image.open(BAD / "exif_rotated.jpg") as original, Image.open(stored[1]) as upright:
        assert upright.size == original.size[::-1]
    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="both img2img grids")


class _LyingAttachment:
    """An attachment whose download is larger than the size Discord reported."""

    size = 100

    async def read(self) -> bytes:
        return b"\x89PNG" + b"\0" * 5000


async def test_an_attachment_read_is_capped_by_what_arrives() -> None:
    """The bytes that arrive are checked too, not only the reported size."""
    limits = UploadLimits(max_bytes=1024)
    with pytest.raises(UploadError, match="not the size Discord reported"):
        await read_attachment(_LyingAttachment(), limits, "image")  # type: ignore[arg-type]


@pytest.mark.slow
async def test_a_reroll_whose_upload_expired_is_refused_before_it_is_charged(discord_env: simcord.Env) -> None:
    """🔄 on an img2img grid re-uses the uploaded image; once expired, the button says so and costs nothing."""
    from bot.requests.upload_store import expire_uploads

    _guild, channel, una = scene(discord_env, "una")
    await una.slash(channel, "imagine", prompt="a fox --seed 3", image=("p.png", _png((64, 64), "red")))
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the img2img grid")
    grid = posts(channel)[0]
    uploads = discord_env.bot.settings.data_dir / "uploads"
    removed = expire_uploads(uploads, keep=(), older_than_s=0.0, now=time.time() + 1)
    assert removed
    charged = await discord_env.bot.service.store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'")

    reroll = next(button.custom_id for button in grid.components[0].children if button.custom_id.startswith("ib:R:"))
    clicked = await una.click(grid, custom_id=reroll)

    assert clicked.response is not None
    assert "no longer kept" in clicked.response.content
    after = await discord_env.bot.service.store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'")
    assert after == charged
