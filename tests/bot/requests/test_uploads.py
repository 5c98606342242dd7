"""Uploaded images: every crafted file gets a one-line error; odd but valid ones are stored compactly and read by
the engine exactly as normalised; a local file is checked with stat before it is read.

The corpus lives in ``tests/data/bad`` and is rebuilt by ``tests/data/make_bad_images.py``.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from bot.requests.upload_store import stage_upload
from bot.requests.uploads import UploadError, UploadLimits, check_upload, normalise, read_upload_file

# Pillow warns about the hostile metadata of some fixtures while it parses them; that is expected here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Tag data larger than file:UserWarning"),
    pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning"),
    pytest.mark.filterwarnings("ignore:Image appears to be a malformed MPO file:UserWarning"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]

BAD = Path(__file__).resolve().parents[2] / "data" / "bad"
ACTIONS = ("upload", "export", "crop", "downscale")

# --- helpers ----------------------------------------------------------------------------------------------------


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def engine_reads(data: bytes, mode: str) -> Image.Image:
    """What engine/render.py ``load_image`` makes of a stored file: ``Image.open(path).convert(mode)``."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert(mode)


def expected_pixels(data: bytes, *, mask: bool) -> Image.Image:
    """The reference: Pillow's own EXIF transpose of the upload, then the normalisation."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        return normalise(upright, mask=mask)


def photo_like(size: tuple[int, int], seed: int = 1) -> Image.Image:
    """Smooth gradients plus sensor-like noise: compresses like a photo, not like a flat graphic."""
    rng = random.Random(seed)
    small = Image.new("RGB", (8, 6))
    small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(48)])
    smooth = small.resize(size, Image.Resampling.BICUBIC)
    noise = Image.effect_noise(size, 12).convert("RGB")
    return Image.blend(smooth, noise, 0.15)


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


# --- crafted files are refused ----------------------------------------------------------------------------------

REFUSED = [
    ("not_an_image.png", "not an image this bot can read"),
    ("empty.png", "empty (0 bytes)"),
    ("truncated.png", "damaged or truncated"),
    ("truncated.jpg", "damaged or truncated"),
    ("bomb.png", "far too many pixels"),
    ("animated.gif", "animated images are not supported"),
    ("apng.png", "animated images are not supported"),
    ("animated.webp", "animated images are not supported"),
    ("ztxt_bomb.png", "oversized compressed metadata"),
    ("iccp_bomb.png", "oversized compressed metadata"),
    ("itxt_bomb_after_data.png", "oversized compressed metadata"),
    ("text_memory_bomb.png", "oversized compressed metadata"),
    ("one_pixel.png", "1x1; each side must be at least 32 pixels"),
    ("ihdr_1x1_garbage.png", "at least 32 pixels"),
    ("ratio_1_to_100.png", "40x4000, longer than 4:1"),
    ("garbage_idat.png", "damaged or truncated"),
    ("bad_crc.png", "not an image this bot can read"),
    ("short_ihdr.png", "not an image this bot can read"),
    ("bad_bit_depth.png", "not an image this bot can read"),
    ("pixel_flood.png", "10000x10000"),
    ("jpeg_huge_dimensions.jpg", "far too many pixels"),
    ("zero_height.jpg", "not an image this bot can read"),
    ("bad_chunk_size.webp", "not an image this bot can read"),
    ("truncated.webp", "not an image this bot can read"),
    ("min_height.bmp", "far too many pixels"),
    ("zero_width.bmp", "not an image this bot can read"),
    ("huge_palette.bmp", "not an image this bot can read"),
    ("frame_outside.gif", "far too many pixels"),
    ("bad_lzw.gif", "damaged or truncated"),
    ("picture.tif", "not an image this bot can read"),
]


@pytest.mark.parametrize(("name", "fragment"), REFUSED)
@pytest.mark.parametrize("mask", [False, True], ids=["picture", "mask"])
def test_crafted_files_are_refused_in_one_line_and_leave_nothing(
    tmp_path: Path, name: str, fragment: str, mask: bool
) -> None:
    """Each crafted file raises UploadError (nothing else) saying what to upload instead; nothing is stored."""
    uploads = tmp_path / "uploads"
    with pytest.raises(UploadError) as caught:
        stage_upload(check_upload((BAD / name).read_bytes(), mask=mask), uploads).commit()
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message
    assert any(action in message.lower() for action in ACTIONS), message
    assert files_under(uploads) == []


SEEDS = {
    "png": encode(Image.new("RGB", (40, 36), "teal"), "PNG"),
    "png_palette": encode(Image.new("P", (40, 36), 3), "PNG"),
    "jpeg": encode(photo_like((40, 36)), "JPEG", quality=80),
    "webp": encode(photo_like((40, 36)), "WEBP", quality=80),
    "gif": encode(Image.new("P", (40, 36), 1), "GIF"),
    "bmp": encode(Image.new("RGB", (40, 36), "navy"), "BMP"),
}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 0xFFFFFFFF)), max_size=6),
    cut=st.integers(0, 4096),
)
@example(seed="png", edits=[(8, 5)], cut=4096)  # IHDR length 5: a ValueError inside Image.open
@example(seed="png", edits=[(8, 0xFFFFFFFF)], cut=4096)
@example(seed="jpeg", edits=[(163, 0)], cut=4096)
def test_mutated_files_raise_only_upload_errors(seed: str, edits: list[tuple[int, int]], cut: int) -> None:
    """Whatever bytes are changed or cut, check_upload accepts or raises UploadError, never anything else."""
    data = bytearray(SEEDS[seed])
    for position, value in edits:
        start = position % len(data)
        data[start : start + 4] = value.to_bytes(4, "big")
    data = data[: max(1, cut)] if cut < len(data) else data
    try:
        checked = check_upload(bytes(data))
    except UploadError as error:
        assert "\n" not in str(error)
    else:
        assert checked.width >= 32 and checked.height >= 32


def test_oversized_file_is_refused_before_decoding() -> None:
    """A 30 MB attachment is refused by its size alone."""
    with pytest.raises(UploadError, match="the limit is 10 MiB"):
        check_upload(b"\x89PNG" + b"\x00" * (30 * 1024 * 1024))


def test_pixel_limit_is_configurable() -> None:
    """Servers choose their own pixel limit."""
    with pytest.raises(UploadError, match="100x100"):
        check_upload(encode(Image.new("RGB", (100, 100)), "PNG"), limits=UploadLimits(max_pixels=5000))


@pytest.mark.parametrize(
    ("size", "fragment"),
    [
        ((31, 64), "31x64; each side must be at least 32 pixels"),
        ((64, 31), "64x31; each side must be at least 32 pixels"),
        ((32, 129), "32x129, longer than 4:1; crop it to between 1:4 and 4:1"),
        ((129, 32), "129x32, longer than 4:1"),
        ((32, 32), None),
        ((32, 128), None),
        ((128, 32), None),
    ],
)
def test_shape_limits(size: tuple[int, int], fragment: str | None) -> None:
    """At least 32 pixels a side and no more elongated than 4:1 either way (the --ar range)."""
    data = encode(Image.new("RGB", size, "white"), "PNG")
    if fragment is None:
        assert (check_upload(data).width, check_upload(data).height) == size
    else:
        with pytest.raises(UploadError, match=fragment.replace("(", r"\(")):
            check_upload(data)


# --- odd but valid files are accepted ---------------------------------------------------------------------------

ACCEPTED = [
    # name, upright size, original bytes kept as a picture, kept as a mask
    ("cmyk.jpg", (48, 48), False, False),
    ("sixteen_bit.png", (48, 48), False, False),
    ("palette.png", (48, 48), False, False),
    ("mask_small.png", (32, 32), True, True),
    ("exif_rotated.jpg", (32, 64), False, False),
    ("rgba.png", (64, 64), False, False),
    ("la.png", (64, 64), False, False),
    ("colour_key.png", (64, 64), False, False),
    ("rgba_sixteen_bit.png", (64, 64), False, False),
    ("grayscale.jpg", (64, 64), True, True),
    ("progressive.jpg", (64, 48), True, True),
    ("multi_picture.jpg", (64, 64), True, True),
    ("one_bit.png", (64, 64), False, False),
    ("single_frame.gif", (64, 64), False, False),
    ("top_down.bmp", (64, 64), False, False),
    ("lossy.webp", (64, 64), True, True),
    ("alpha.webp", (64, 64), False, False),
    ("ratio_4_to_1.png", (128, 32), True, True),
    # crafted, but what Pillow decodes is harmless and the engine decodes the same
    ("huge_claim.png", (4096, 4096), True, True),
    ("exif_loop.jpg", (64, 64), False, False),
    ("bad_mpo_header.jpg", (64, 64), True, True),
    ("bad_rle.bmp", (64, 64), False, False),
]


@pytest.mark.parametrize(("name", "size", "kept_picture", "kept_mask"), ACCEPTED)
@pytest.mark.parametrize("mask", [False, True], ids=["picture", "mask"])
def test_odd_but_valid_files_are_accepted_and_read_by_the_engine_as_normalised(
    name: str, size: tuple[int, int], kept_picture: bool, kept_mask: bool, mask: bool
) -> None:
    """Right mode and upright size; the stored bytes are the original only when the engine reads them as the
    normalisation would, and either way the engine's pixels equal Pillow's EXIF transpose plus normalisation."""
    original = (BAD / name).read_bytes()
    checked = check_upload(original, mask=mask)
    mode = "L" if mask else "RGB"
    assert (checked.mode, (checked.width, checked.height)) == (mode, size)
    assert checked.kept_original is (kept_mask if mask else kept_picture)
    if checked.kept_original:
        assert checked.data == original
        assert (
            checked.extension
            == {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp"}[
                Image.open(io.BytesIO(original)).format or ""
            ]
        )
    else:
        assert checked.extension == (".png" if mask else ".webp")
    stored = engine_reads(checked.data, mode)
    assert stored.size == size
    assert stored.tobytes() == expected_pixels(original, mask=mask).tobytes()


@pytest.mark.parametrize(
    ("name", "point", "colour"),
    [
        ("exif_rotated.jpg", (28, 3), (255, 0, 0)),  # the stored top-left marker is now top-right
        ("exif_rotated.jpg", (3, 3), (128, 128, 128)),
        ("top_down.bmp", (3, 3), (255, 0, 0)),  # rows stored top first
        ("progressive.jpg", (3, 3), (255, 0, 0)),
        ("multi_picture.jpg", (3, 3), (255, 0, 0)),  # the first picture, not the black second one
        ("rgba.png", (50, 10), (255, 255, 255)),  # transparency flattened on white
        ("rgba.png", (10, 10), (0, 128, 0)),
        ("colour_key.png", (50, 10), (255, 255, 255)),  # the tRNS colour key counts as transparent
        ("la.png", (50, 10), (255, 255, 255)),
        ("alpha.webp", (50, 10), (255, 255, 255)),
    ],
)
def test_pixels_land_where_a_viewer_shows_them(name: str, point: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """Rotation, row order, the first of several pictures and transparency come out as a viewer shows them."""
    pixel = engine_reads(check_upload((BAD / name).read_bytes()).data, "RGB").getpixel(point)
    assert isinstance(pixel, tuple)
    assert all(abs(got - want) <= 24 for got, want in zip(pixel, colour, strict=True)), pixel  # JPEG tolerance


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_every_exif_orientation_matches_pillow(orientation: int, image_format: str) -> None:
    """All eight EXIF orientations, in JPEG, PNG and WebP, come out as ImageOps.exif_transpose shows them."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    picture = Image.new("RGB", (64, 40), (90, 90, 90))
    picture.paste((250, 10, 10), (0, 0, 12, 8))
    picture.paste((10, 10, 250), (52, 32, 64, 40))
    data = encode(picture, image_format, exif=exif.tobytes(), **({"lossless": True} if image_format == "WEBP" else {}))
    checked = check_upload(data)
    assert checked.kept_original is (orientation == 1)
    assert engine_reads(checked.data, "RGB").tobytes() == expected_pixels(data, mask=False).tobytes()
    upright = (64, 40) if orientation <= 4 else (40, 64)
    assert (checked.width, checked.height) == upright


def test_transparent_mask_uses_its_alpha() -> None:
    """A mask is L; on a transparent canvas the painted (opaque) pixels are the ones to repaint."""
    canvas = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    canvas.paste((255, 0, 0, 255), (0, 0, 16, 32))
    checked = check_upload(encode(canvas, "PNG"), mask=True)
    assert (checked.mode, checked.extension) == ("L", ".png")
    mask = engine_reads(checked.data, "L")
    assert mask.getpixel((2, 2)) == 255
    assert mask.getpixel((28, 2)) == 0


# --- compact storage --------------------------------------------------------------------------------------------


def test_clean_jpeg_is_stored_byte_for_byte(tmp_path: Path) -> None:
    """A plain RGB JPEG is stored as uploaded, named by its own hash, and the engine reads the same pixels."""
    original = encode(photo_like((640, 480)), "JPEG", quality=92)
    checked = check_upload(original)
    assert checked.kept_original and checked.data == original
    path = stage_upload(checked, tmp_path / "uploads").commit()
    assert path.read_bytes() == original
    assert path.name == hashlib.sha256(original).hexdigest()[:32] + ".jpg"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: photo_like((640, 480)), id="rotated-photo"),
        pytest.param(lambda: Image.new("RGB", (640, 480), "white"), id="rotated-flat"),
    ],
)
def test_normalised_images_are_smaller_than_the_old_png(make: object) -> None:
    """A rotated JPEG and an RGBA graphic are stored lossless, and smaller than the old default-level PNG."""
    exif = Image.Exif()
    exif[0x0112] = 6
    upload = encode(make(), "JPEG", quality=92, exif=exif.tobytes())  # type: ignore[operator]
    checked = check_upload(upload)
    old_png = encode(expected_pixels(upload, mask=False), "PNG")
    assert not checked.kept_original
    assert len(checked.data) < len(old_png)
    assert engine_reads(checked.data, "RGB").tobytes() == expected_pixels(upload, mask=False).tobytes()


def test_transparent_graphic_is_smaller_than_the_old_png() -> None:
    """A graphic with transparency is flattened and stored smaller than the old PNG."""
    graphic = Image.new("RGBA", (640, 480), (0, 0, 0, 0))
    for index in range(12):
        graphic.paste((20 * index, 100, 255 - 20 * index, 255), (40 * index, 30 * index, 40 * index + 120, 480))
    upload = encode(graphic, "PNG")
    checked = check_upload(upload)
    assert len(checked.data) < len(encode(expected_pixels(upload, mask=False), "PNG"))


# --- reading a local file ---------------------------------------------------------------------------------------


def test_read_upload_file_checks_with_stat_first(tmp_path: Path) -> None:
    """Missing, folder, pipe, empty and too large are refused before reading; a good file gives its bytes."""
    limits = UploadLimits(max_bytes=4096)
    good = tmp_path / "in.png"
    good.write_bytes(encode(Image.new("RGB", (48, 48), "red"), "PNG"))
    large = tmp_path / "large.png"
    with large.open("wb") as handle:
        handle.truncate(5 << 20)  # sparse: 5 MiB that stat reports and nobody reads
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)  # opening it to read would block: stat must refuse it first
    cases = {
        tmp_path / "missing.png": "does not exist",
        tmp_path: "not a regular file",
        pipe: "not a regular file",
        empty: "empty (0 bytes)",
        large: "5.0 MiB; the limit is 4 KiB",
    }
    for path, fragment in cases.items():
        with pytest.raises(UploadError) as caught:
            read_upload_file(path, limits)
        assert fragment in str(caught.value), path
    assert read_upload_file(good, limits) == good.read_bytes()
