"""Uploaded images: the bad-input corpus gets clear errors; odd but valid images are normalised."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from bot.uploads import UploadError, UploadLimits, check_upload, store_upload

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("not_an_image.png", "not an image this bot can read"),
        ("empty.png", "empty (0 bytes)"),
        ("truncated.png", "damaged or truncated"),
        ("truncated.jpg", "damaged or truncated"),
        ("bomb.png", "far too many pixels"),
        ("animated.gif", "animated images are not supported"),
    ],
)
def test_bad_files_are_refused_with_what_to_do(name: str, fragment: str) -> None:
    """Each file of the bad-input corpus is refused with a message a member can act on."""
    with pytest.raises(UploadError) as caught:
        check_upload((BAD / name).read_bytes())
    assert fragment in str(caught.value)


def test_oversized_file_is_refused_before_decoding() -> None:
    """A 30 MB attachment is refused by its size alone."""
    with pytest.raises(UploadError, match="the limit is 10 MiB"):
        check_upload(b"\x89PNG" + b"\x00" * (30 * 1024 * 1024))


@pytest.mark.parametrize(("name", "mode"), [("cmyk.jpg", "RGB"), ("sixteen_bit.png", "RGB"), ("palette.png", "RGB")])
def test_unusual_modes_become_rgb(name: str, mode: str) -> None:
    """CMYK, 16-bit and palette images are converted, not refused."""
    checked = check_upload((BAD / name).read_bytes())
    assert checked.mode == mode
    with Image.open(io.BytesIO(checked.png)) as image:
        assert image.mode == mode
        assert image.size == (48, 48)


def test_masks_become_single_channel_and_transparency_counts() -> None:
    """A mask is L; on a transparent canvas the painted (opaque) pixels are the ones to repaint."""
    canvas = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    canvas.paste((255, 0, 0, 255), (0, 0, 8, 16))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    checked = check_upload(buffer.getvalue(), mask=True)
    assert checked.mode == "L"
    with Image.open(io.BytesIO(checked.png)) as mask:
        assert mask.getpixel((2, 2)) == 255
        assert mask.getpixel((12, 2)) == 0


def test_pixel_limit_is_configurable() -> None:
    """Servers choose their own pixel limit."""
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buffer, "PNG")
    with pytest.raises(UploadError, match="100x100"):
        check_upload(buffer.getvalue(), limits=UploadLimits(max_pixels=5000))


def test_stored_by_content_inside_the_folder(tmp_path: Path) -> None:
    """The stored name comes from the content; the same image is stored once."""
    checked = check_upload((BAD / "palette.png").read_bytes())
    first = store_upload(checked, tmp_path / "uploads")
    second = store_upload(checked, tmp_path / "uploads")
    assert first == second
    assert first.parent == tmp_path / "uploads"
    assert first.read_bytes() == checked.png
