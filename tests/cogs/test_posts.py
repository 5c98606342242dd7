"""What is posted about a job: the grid file under Discord's upload limit, without re-encoding anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core import ImagineError
from cogs.posts import result_file


@pytest.mark.parametrize(
    ("png_size", "jpg_size", "expected"),
    [
        (900, None, "imagine_1.png"),
        (1000, 400, "imagine_1.png"),
        (1001, 400, "imagine_1.jpg"),
        (5000, 1000, "imagine_1.jpg"),
    ],
)
def test_the_png_or_the_engines_compact_copy(
    tmp_path: Path, png_size: int, jpg_size: int | None, expected: str
) -> None:
    """Within the limit the PNG is posted as is; above it, the JPEG the engine wrote beside it."""
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"p" * png_size)
    if jpg_size is not None:
        grid.with_suffix(".jpg").write_bytes(b"j" * jpg_size)
    file = result_file(grid, "imagine_1", limit=1000)
    assert file.filename == expected
    assert file.fp.read() == (grid if expected.endswith(".png") else grid.with_suffix(".jpg")).read_bytes()


@pytest.mark.parametrize("jpg_size", [None, 1001])
def test_too_large_without_a_small_copy_is_refused(tmp_path: Path, jpg_size: int | None) -> None:
    """No copy, or a copy still over the limit: a clear error (the delivery is then given up, not retried)."""
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"p" * 2000)
    if jpg_size is not None:
        grid.with_suffix(".jpg").write_bytes(b"j" * jpg_size)
    with pytest.raises(ImagineError, match="too large to post"):
        result_file(grid, "imagine_1", limit=1000)


def test_a_grid_jpeg_is_posted_under_its_own_name(tmp_path: Path) -> None:
    """The engine's grid is a JPEG: it is posted as ``.jpg`` with its bytes unchanged."""
    grid = tmp_path / "grid.jpg"
    grid.write_bytes(b"j" * 900)
    file = result_file(grid, "imagine_1", limit=1000)
    assert file.filename == "imagine_1.jpg" and file.fp.read() == grid.read_bytes()
