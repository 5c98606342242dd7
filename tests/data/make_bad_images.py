"""Rebuild the crafted and odd-but-valid images under ``tests/data/bad`` (``python tests/data/make_bad_images.py``).

Hostile files are assembled chunk by chunk (PNG, WebP, GIF, BMP, JPEG segments) so each one breaks exactly one
rule; valid but unusual files come from Pillow itself. The older fixtures of the folder (``bomb.png``,
``truncated.*``, ``cmyk.jpg`` …) are left as they are.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

BAD = Path(__file__).resolve().parent / "bad"
BOMB_BYTES = 8 * 1024 * 1024  # inflates far past Pillow's 1 MiB limit for one text chunk or ICC profile


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def ihdr(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))


def rgb_scanlines(width: int, height: int, colour: tuple[int, int, int] = (200, 60, 40)) -> bytes:
    """Raw PNG image data (filter byte 0 on every row) of a plain colour."""
    return (b"\x00" + bytes(colour) * width) * height


def png(*chunks: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def plain_png(width: int = 64, height: int = 64, *, before: bytes = b"", after: bytes = b"") -> bytes:
    """A valid RGB PNG with extra chunks before and after its image data."""
    data = zlib.compress(rgb_scanlines(width, height), 9)
    return png(ihdr(width, height), before, chunk(b"IDAT", data), after, chunk(b"IEND", b""))


def bomb(size: int = BOMB_BYTES) -> bytes:
    return zlib.compress(b"\x00" * size, 9)


def pillow(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def frames(size: tuple[int, int] = (64, 64)) -> list[Image.Image]:
    return [Image.new("RGB", size, colour) for colour in ((255, 0, 0), (0, 0, 255))]


def marked(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A grey picture with a red 8×8 block in its stored top-left corner (shows where a rotation moved it)."""
    image = Image.new(mode, size, (128, 128, 128))
    image.paste((255, 0, 0), (0, 0, 8, 8))
    return image


# --- hostile files ----------------------------------------------------------------------------------------------


def apng() -> bytes:
    first, *rest = frames()
    return pillow(first, "PNG", save_all=True, append_images=rest, duration=100, loop=0)


def animated_webp() -> bytes:
    first, *rest = frames()
    return pillow(first, "WEBP", save_all=True, append_images=rest, duration=100, loop=0, lossless=True)


def ztxt_bomb() -> bytes:
    """A compressed comment that inflates to 8 MiB, read while the header is parsed."""
    return plain_png(before=chunk(b"zTXt", b"Comment\x00\x00" + bomb()))


def iccp_bomb() -> bytes:
    """A colour profile that inflates to 8 MiB."""
    return plain_png(before=chunk(b"iCCP", b"icc\x00\x00" + bomb()))


def itxt_bomb_after_data() -> bytes:
    """A compressed international comment after the image data: it is only read when the pixels are decoded."""
    return plain_png(after=chunk(b"iTXt", b"Comment\x00\x01\x00\x00\x00" + bomb()))


def one_pixel() -> bytes:
    return pillow(Image.new("RGB", (1, 1), "white"), "PNG")


def ratio_1_to_100() -> bytes:
    return pillow(Image.new("RGB", (40, 4000), "white"), "PNG")


def ihdr_1x1_garbage() -> bytes:
    """IHDR claims one pixel; the image data is not even zlib."""
    return png(ihdr(1, 1), chunk(b"IDAT", bytes(range(256)) * 4), chunk(b"IEND", b""))


def garbage_idat() -> bytes:
    """A plausible 64×64 header followed by image data that is not a zlib stream."""
    return png(
        ihdr(64, 64), chunk(b"IDAT", bytes((index * 37 + 11) % 256 for index in range(2048))), chunk(b"IEND", b"")
    )


def bad_crc() -> bytes:
    """A valid PNG whose header chunk has a wrong checksum."""
    data = bytearray(plain_png())
    data[8 + 8 + 13] ^= 0xFF  # signature, IHDR length and type, 13 bytes of IHDR data: the first CRC byte
    return bytes(data)


def text_memory_bomb() -> bytes:
    """Seventy compressed comments of just under 1 MiB each: every one is allowed, together they pass 64 MiB."""
    comment = chunk(b"zTXt", b"Comment\x00\x00" + bomb(1024 * 1024 - 1))
    return plain_png(before=comment * 70)


def short_ihdr() -> bytes:
    """A header chunk of 5 bytes instead of 13."""
    return png(chunk(b"IHDR", struct.pack(">IB", 64, 8)), chunk(b"IEND", b""))


def bad_bit_depth() -> bytes:
    """RGB with 3 bits a sample, which PNG does not define."""
    return png(ihdr(64, 64, bit_depth=3), chunk(b"IDAT", zlib.compress(b"\x00" * 64)), chunk(b"IEND", b""))


def huge_claim() -> bytes:
    """IHDR claims 4096×4096 (allowed) but the image data stops after a few rows."""
    return png(ihdr(4096, 4096), chunk(b"IDAT", zlib.compress(rgb_scanlines(4096, 4))), chunk(b"IEND", b""))


def pixel_flood() -> bytes:
    """IHDR claims 10000×10000: under Pillow's hard limit but past its warning and far past the upload limit."""
    return png(ihdr(10000, 10000), chunk(b"IDAT", zlib.compress(b"\x00" * 1024)), chunk(b"IEND", b""))


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """``jpeg`` with an extra APP1 segment right after SOI."""
    return jpeg[:2] + jpeg_segment(0xE1, payload) + jpeg[2:]


def exif_loop() -> bytes:
    """A 64 KiB EXIF block whose IFDs point at themselves (a loop) and whose entries claim gigabytes of data."""
    entries = [(0x8769, 4, 1, 8), (0x0112, 3, 1, 6 << 16)]  # Exif sub-IFD -> IFD0 itself; orientation 6
    entries += [(0x010E + index, 2, 0x7FFFFFFF, 0xFFFFFF00) for index in range(2, 5000)]
    ifd = struct.pack(">H", len(entries))
    ifd += b"".join(struct.pack(">HHII", *entry) for entry in entries) + struct.pack(">I", 8)  # next IFD: itself
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    payload = (b"Exif\x00\x00" + tiff)[:65533]
    return with_app1(pillow(Image.new("RGB", (64, 64), "teal"), "JPEG", quality=90), payload)


def jpeg_huge_dimensions() -> bytes:
    """A valid JPEG whose frame header claims 65500×65500."""
    data = bytearray(pillow(Image.new("RGB", (64, 64), "olive"), "JPEG"))
    position = data.index(b"\xff\xc0")
    data[position + 5 : position + 9] = struct.pack(">HH", 65500, 65500)
    return bytes(data)


def bad_mpo_header() -> bytes:
    """A JPEG with a multi-picture (MPF) segment whose index points outside the file."""
    entry = struct.pack(">HHII", 0xB002, 7, 16 * 2, 0x7FFFFFF0)
    ifd = struct.pack(">H", 2) + struct.pack(">HHI4s", 0xB000, 7, 4, b"0100") + entry + b"\x00\x00\x00\x00"
    payload = b"MPF\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    data = pillow(Image.new("RGB", (64, 64), "navy"), "JPEG")
    return data[:2] + jpeg_segment(0xE2, payload) + data[2:]


def jpeg_zero_height() -> bytes:
    """A JPEG whose frame header says 0 rows (a height to be given later, which never comes)."""
    data = bytearray(pillow(Image.new("RGB", (64, 64), "olive"), "JPEG"))
    position = data.index(b"\xff\xc0")
    data[position + 5 : position + 7] = struct.pack(">H", 0)
    return bytes(data)


def webp_bad_chunk_size() -> bytes:
    """A lossless WebP whose image chunk claims almost 4 GiB."""
    data = bytearray(pillow(Image.new("RGB", (64, 64), "maroon"), "WEBP", lossless=True))
    data[16:20] = struct.pack("<I", 0xFFFFFFF0)
    return bytes(data)


def webp_truncated() -> bytes:
    data = pillow(Image.new("RGB", (64, 64), "maroon"), "WEBP", quality=80)
    return data[: len(data) // 2]


def bmp_header(width: int, height: int, pixels: bytes) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info)) + info + pixels


def bmp_min_height() -> bytes:
    """A BMP whose height is -2**31 (its absolute value does not fit in 32 bits)."""
    return bmp_header(64, -(2**31), b"\x00" * 192)


def bmp_zero_width() -> bytes:
    return bmp_header(0, 64, b"")


def bmp_bad_rle() -> bytes:
    """An 8-bit run-length encoded BMP whose runs and deltas jump far outside the picture."""
    palette = b"".join(bytes((index, index, index, 0)) for index in range(256))
    runs = b"\x00\x02\xff\xff" * 64 + b"\xff\x07" * 64 + b"\x00\x01"
    info = struct.pack("<IiiHHIIiiII", 40, 64, 64, 1, 8, 1, len(runs), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(runs), 0, 0, offset) + info + palette + runs


def bmp_huge_palette() -> bytes:
    """An 8-bit BMP that claims 2**31 palette colours."""
    info = struct.pack("<IiiHHIIiiII", 40, 64, 64, 1, 8, 0, 4096, 2835, 2835, 0x7FFFFFFF, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + 4096, 0, 0, 14 + len(info)) + info + b"\x00" * 4096


def gif_frame_outside() -> bytes:
    """A 64×64 GIF whose only frame is placed at (60000, 60000)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 64, 64, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 60000, 60000, 64, 64, 0)
    return header + descriptor + b"\x02\x02\x4c\x01\x00" + b"\x3b"


def gif_bad_lzw() -> bytes:
    """A 64×64 GIF whose image data uses a code size GIF does not allow and then garbage."""
    header = b"GIF89a" + struct.pack("<HHBBB", 64, 64, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, 64, 64, 0)
    data = b"\x0b" + b"\xff" + bytes((index * 53 + 7) % 256 for index in range(255)) + b"\x00"
    return header + descriptor + data + b"\x3b"


def tiff() -> bytes:
    return pillow(Image.new("RGB", (64, 64), "gray"), "TIFF")


# --- odd but valid files ----------------------------------------------------------------------------------------


def exif_rotated() -> bytes:
    """Stored 64 wide × 32 high with orientation 6: shown (and rendered) 32 wide × 64 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return pillow(marked((64, 32)), "JPEG", quality=95, exif=exif.tobytes())


def rgba() -> bytes:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((0, 128, 0, 255), (0, 0, 32, 64))
    return pillow(image, "PNG")


def la() -> bytes:
    image = Image.new("LA", (64, 64), (0, 0))
    image.paste((80, 255), (0, 0, 32, 64))
    return pillow(image, "PNG")


def rgb_colour_key() -> bytes:
    """RGB with a tRNS colour key: pure blue pixels are transparent."""
    image = Image.new("RGB", (64, 64), (0, 0, 255))
    image.paste((200, 0, 0), (0, 0, 32, 64))
    return pillow(image, "PNG", transparency=(0, 0, 255))


def rgba_sixteen_bit() -> bytes:
    """16 bits a sample with alpha, assembled by hand (Pillow writes no 16-bit RGBA)."""
    row = b"\x00" + (b"\x80\x00\x40\x00\x20\x00\xff\xff") * 64
    return png(ihdr(64, 64, bit_depth=16, colour_type=6), chunk(b"IDAT", zlib.compress(row * 64)), chunk(b"IEND", b""))


def grayscale_jpeg() -> bytes:
    return pillow(Image.linear_gradient("L").resize((64, 64)), "JPEG", quality=90)


def progressive_jpeg() -> bytes:
    return pillow(marked((64, 48)), "JPEG", quality=90, progressive=True)


def mpo() -> bytes:
    """A multi-picture JPEG (what phone cameras write): the first picture is the photo."""
    first = marked((64, 64))
    second = Image.new("RGB", (64, 64), "black")
    return pillow(first, "MPO", save_all=True, append_images=[second])


def one_bit() -> bytes:
    return pillow(Image.new("1", (64, 64), 1), "PNG")


def single_frame_gif() -> bytes:
    return pillow(marked((64, 64)).convert("P"), "GIF")


def top_down_bmp() -> bytes:
    """A negative height means rows are stored top first (valid BMP)."""
    rows = [
        bytes((0, 0, 255)) * 8 + bytes((128, 128, 128)) * 56 if y < 8 else bytes((128, 128, 128)) * 64
        for y in range(64)
    ]
    return bmp_header(64, -64, b"".join(rows))


def lossy_webp() -> bytes:
    return pillow(marked((64, 64)), "WEBP", quality=80)


def alpha_webp() -> bytes:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((0, 0, 200, 255), (0, 0, 32, 64))
    return pillow(image, "WEBP", lossless=True)


def ratio_4_to_1() -> bytes:
    return pillow(Image.new("RGB", (128, 32), "white"), "PNG")


FIXTURES: dict[str, Callable[[], bytes]] = {
    "apng.png": apng,
    "animated.webp": animated_webp,
    "ztxt_bomb.png": ztxt_bomb,
    "iccp_bomb.png": iccp_bomb,
    "itxt_bomb_after_data.png": itxt_bomb_after_data,
    "one_pixel.png": one_pixel,
    "ratio_1_to_100.png": ratio_1_to_100,
    "ihdr_1x1_garbage.png": ihdr_1x1_garbage,
    "garbage_idat.png": garbage_idat,
    "bad_crc.png": bad_crc,
    "text_memory_bomb.png": text_memory_bomb,
    "short_ihdr.png": short_ihdr,
    "bad_bit_depth.png": bad_bit_depth,
    "huge_claim.png": huge_claim,
    "pixel_flood.png": pixel_flood,
    "exif_loop.jpg": exif_loop,
    "jpeg_huge_dimensions.jpg": jpeg_huge_dimensions,
    "bad_mpo_header.jpg": bad_mpo_header,
    "zero_height.jpg": jpeg_zero_height,
    "bad_chunk_size.webp": webp_bad_chunk_size,
    "truncated.webp": webp_truncated,
    "min_height.bmp": bmp_min_height,
    "zero_width.bmp": bmp_zero_width,
    "bad_rle.bmp": bmp_bad_rle,
    "huge_palette.bmp": bmp_huge_palette,
    "frame_outside.gif": gif_frame_outside,
    "bad_lzw.gif": gif_bad_lzw,
    "picture.tif": tiff,
    "exif_rotated.jpg": exif_rotated,
    "rgba.png": rgba,
    "la.png": la,
    "colour_key.png": rgb_colour_key,
    "rgba_sixteen_bit.png": rgba_sixteen_bit,
    "grayscale.jpg": grayscale_jpeg,
    "progressive.jpg": progressive_jpeg,
    "multi_picture.jpg": mpo,
    "one_bit.png": one_bit,
    "single_frame.gif": single_frame_gif,
    "top_down.bmp": top_down_bmp,
    "lossy.webp": lossy_webp,
    "alpha.webp": alpha_webp,
    "ratio_4_to_1.png": ratio_4_to_1,
}


def main() -> None:
    BAD.mkdir(parents=True, exist_ok=True)
    for name, build in FIXTURES.items():
        data = build()
        (BAD / name).write_bytes(data)
        print(f"{name}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
