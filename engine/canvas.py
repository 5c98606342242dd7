"""Pure image geometry for the image tasks: masks fitted to images, zoom-out and pan canvases, upscale sizes.

No torch here: the bot uses the same rules to size and price a job before it is charged."""

from __future__ import annotations

from PIL import Image, ImageOps

PAN_DIRECTIONS = ("left", "right", "up", "down")
ZOOM_FACTORS = (1.5, 2.0)
ASPECT_TOLERANCE = 0.02


def round_to(value: float, multiple: int) -> int:
    """``value`` rounded to the nearest multiple (at least one multiple)."""
    return max(multiple, round(value / multiple) * multiple)


def mask_shape_problem(mask_size: tuple[int, int], image_size: tuple[int, int]) -> str | None:
    """Why a mask cannot be fitted to an image (its shape differs), or None. Pure: the bot checks it before a job
    is charged, the engine again before it renders."""
    if mask_size == image_size:
        return None
    mask_ratio = mask_size[0] / mask_size[1]
    image_ratio = image_size[0] / image_size[1]
    if abs(mask_ratio / image_ratio - 1) <= ASPECT_TOLERANCE:
        return None
    return (
        f"the mask is {mask_size[0]}x{mask_size[1]} but the image is {image_size[0]}x{image_size[1]}: the shapes "
        "differ, so the mask cannot be resized to match; draw the mask on a copy of the image"
    )


def fit_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The mask as grayscale at ``size`` (white repaints). A mask of another aspect ratio is refused."""
    mask = mask.convert("L")
    if mask.size == size:
        return mask
    problem = mask_shape_problem(mask.size, size)
    if problem is not None:
        raise ValueError(problem)
    return mask.resize(size, Image.Resampling.NEAREST)


def pan_size(size: tuple[int, int], direction: str, multiple: int) -> tuple[int, int]:
    """The size of an image extended by half its width (left/right) or height (up/down)."""
    if direction not in PAN_DIRECTIONS:
        raise ValueError(f"pan={direction!r} is not one of {', '.join(PAN_DIRECTIONS)}")
    width, height = size
    if direction in ("left", "right"):
        return round_to(width * 1.5, multiple), height
    return width, round_to(height * 1.5, multiple)


def zoom_out_canvas(image: Image.Image, factor: float) -> tuple[Image.Image, Image.Image]:
    """Canvas of the same size with the image shrunk by ``factor`` in the middle, and the mask of the new border."""
    if factor not in ZOOM_FACTORS:
        raise ValueError(f"zoom={factor:g} is not one of {', '.join(f'{f:g}' for f in ZOOM_FACTORS)}")
    width, height = image.size
    inner = image.convert("RGB").resize((round(width / factor), round(height / factor)), Image.Resampling.LANCZOS)
    canvas = ImageOps.pad(inner, (width, height), color=_mean_color(inner))
    left, top = (width - inner.width) // 2, (height - inner.height) // 2
    mask = Image.new("L", (width, height), 255)
    mask.paste(0, (left + 1, top + 1, left + inner.width - 1, top + inner.height - 1))
    canvas.paste(inner, (left, top))
    return canvas, mask


def pan_canvas(image: Image.Image, direction: str, multiple: int) -> tuple[Image.Image, Image.Image]:
    """The image extended by half its width (left/right) or height (up/down), and the mask of the new strip."""
    image = image.convert("RGB")
    width, height = image.size
    new_width, new_height = pan_size(image.size, direction, multiple)
    left = new_width - width if direction == "left" else 0
    top = new_height - height if direction == "up" else 0
    canvas = Image.new("RGB", (new_width, new_height), _mean_color(image))
    canvas.paste(image, (left, top))
    mask = Image.new("L", (new_width, new_height), 255)
    mask.paste(0, (left, top, left + width, top + height))
    return canvas, mask


def upscaled_size(size: tuple[int, int], factor: float, multiple: int) -> tuple[int, int]:
    """Output size of an upscale, rounded to the model's size multiple."""
    if not 1 < factor <= 4:
        raise ValueError(f"upscale_factor={factor:g} must be above 1 and at most 4")
    return round_to(size[0] * factor, multiple), round_to(size[1] * factor, multiple)


def _mean_color(image: Image.Image) -> tuple[int, int, int]:
    pixel = image.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))
