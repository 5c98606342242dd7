"""The grid of a job's images: its shape for each count, and where each image lands."""

from __future__ import annotations

import pytest
from PIL import Image

from engine.grid import compose_grid, grid_shape


@pytest.mark.parametrize(
    ("count", "shape"),
    [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)), (5, (3, 2)), (9, (3, 3))],
)
def test_grid_shape(count: int, shape: tuple[int, int]) -> None:
    """Columns and rows: one image alone, two side by side, three or four in a 2×2."""
    assert grid_shape(count) == shape


def test_a_grid_of_no_images_is_refused() -> None:
    """Zero images is a ValueError that says a grid needs at least one."""
    with pytest.raises(ValueError, match="at least one image, got 0"):
        grid_shape(0)


@pytest.mark.parametrize(
    ("count", "size"),
    [(1, (6, 4)), (2, (12, 4)), (3, (12, 8)), (4, (12, 8))],
)
def test_compose_grid_places_images_left_to_right_then_down(count: int, size: tuple[int, int]) -> None:
    """Image i sits at column i % columns, row i // columns; an empty cell stays black."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)][:count]
    grid = compose_grid([Image.new("RGB", (6, 4), colour) for colour in colours])
    assert grid.size == size
    columns, _rows = grid_shape(count)
    for index, colour in enumerate(colours):
        assert grid.getpixel(((index % columns) * 6 + 3, (index // columns) * 4 + 2)) == colour
    if count == 3:
        assert grid.getpixel((9, 6)) == (0, 0, 0)


def test_compose_grid_converts_to_rgb() -> None:
    """Images with alpha or in grey end up in one RGB picture."""
    grid = compose_grid([Image.new("RGBA", (2, 2), (10, 20, 30, 0)), Image.new("L", (2, 2), 200)])
    assert grid.mode == "RGB"
    assert grid.getpixel((0, 0)) == (10, 20, 30)
    assert grid.getpixel((2, 0)) == (200, 200, 200)


def test_images_of_different_sizes_are_refused() -> None:
    """A grid's images must share one size."""
    with pytest.raises(ValueError, match="same size"):
        compose_grid([Image.new("RGB", (4, 4)), Image.new("RGB", (4, 5))])
