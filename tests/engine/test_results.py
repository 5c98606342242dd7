"""A task's finished files: each image and the grid (a sweep's sheet), their metadata, their bytes, atomic writes."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from engine import atomic_files, results
from engine.grid import compose_grid
from engine.metadata import ImageParameters, parameters_for, read_parameters
from engine.protocol import RenderTask, TaskKind
from engine.render import ImageInfo, Rendered

TASK = RenderTask(5, "a red fox <lora:ink:0.5>", "blur", 64, 48, 4, 5.0, (7, 8, 9, 10), "euler_a", "")
GRID_TEXT = (
    "a red fox <lora:ink:0.5>\nNegative prompt: blur\n"
    "Steps: 4, Sampler: Euler a, CFG scale: 5, Seed: 7, Size: 64x48, Model: tiny"
)
"""What the grid of TASK says: the job's own prompt, settings and first seed at one image's size, no extras."""


def _rendered(task: RenderTask, *, strength: float | None = None) -> Rendered:
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]
    images = [Image.new("RGB", (task.width, task.height), colours[i % 4]) for i in range(len(task.seeds))]
    infos = [ImageInfo(seed, "a red fox", task.steps, task.cfg, task.sampler, strength) for seed in task.seeds]
    return Rendered(images, infos, loras=(("ink", 0.5),))


def _task(tmp_path: Path, **changes: object) -> RenderTask:
    return dataclasses.replace(TASK, output_dir=str(tmp_path / "images" / "5"), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seeds", "grid_size"),
    [((7,), (64, 48)), ((7, 8), (128, 48)), ((7, 8, 9, 10), (128, 96))],
)
def test_every_task_gets_its_images_and_a_grid(
    tmp_path: Path, seeds: tuple[int, ...], grid_size: tuple[int, int]
) -> None:
    """1, 2 or 4 images: ``0.png``… and ``grid.jpg`` (1×1, 2×1, 2×2) beside them, listed in the reply."""
    task = _task(tmp_path, seeds=seeds)
    done = results.write_results("tiny", task, _rendered(task), 0.5)
    folder = Path(task.output_dir).resolve()
    assert done.paths == tuple(str(folder / f"{index}.png") for index in range(len(seeds)))
    assert done.grid_path == str(folder / "grid.jpg")
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [*(f"{i}.png" for i in range(len(seeds))), "grid.jpg"]
    )
    with Image.open(done.grid_path) as grid:
        assert (grid.format, grid.size) == ("JPEG", grid_size)
        assert all(abs(got - want) <= 4 for got, want in zip(grid.getpixel((1, 1)), (200, 0, 0), strict=True))
    assert read_parameters(Path(done.grid_path).read_bytes()) == GRID_TEXT
    assert (done.seeds, done.width, done.height, done.labels) == (seeds, 64, 48, ())


def test_each_image_says_how_it_was_made(tmp_path: Path) -> None:
    """An image's text has its own seed, its clean prompt, the denoising strength and the LoRA weights."""
    task = _task(tmp_path, kind=TaskKind.IMG2IMG)
    done = results.write_results("tiny", task, _rendered(task, strength=0.6), 0.5)
    assert read_parameters(Path(done.paths[1]).read_bytes()) == (
        "a red fox\nNegative prompt: blur\nSteps: 4, Sampler: Euler a, CFG scale: 5, Seed: 8, Size: 64x48, "
        "Model: tiny, Denoising strength: 0.6, Lora weights: ink: 0.5"
    )
    assert read_parameters(Path(done.grid_path).read_bytes()) == GRID_TEXT


@pytest.mark.parametrize(
    ("cfg", "guidance"),
    [(3.5, "CFG scale: 1, Distilled CFG Scale: 3.5"), (0.0, "CFG scale: 1")],
)
def test_a_distilled_guidance_is_written_as_forge_writes_it(tmp_path: Path, cfg: float, guidance: str) -> None:
    """FLUX.1's --cfg is a guidance input, not CFG: its images and grid say `CFG scale: 1, Distilled CFG Scale: 3.5`
    (FLUX.1-schnell, without one: `CFG scale: 1`), so A1111 tools read back what rendered them."""
    task = dataclasses.replace(_task(tmp_path), cfg=cfg, negative_prompt="")
    rendered = _rendered(task)
    rendered = dataclasses.replace(rendered, infos=[dataclasses.replace(info, cfg=cfg) for info in rendered.infos])
    done = results.write_results("tiny-flux", task, rendered, 0.5, distilled=True)
    for path in (done.paths[0], done.grid_path):
        text = read_parameters(Path(path).read_bytes())
        assert text is not None
        assert f"Sampler: Euler a, {guidance}, Seed: " in text


@pytest.mark.parametrize("return_bytes", [True, False])
def test_bytes_come_back_only_when_asked(tmp_path: Path, return_bytes: bool) -> None:
    """With ``return_bytes`` the reply carries each file's exact contents, the grid's too; without, none."""
    task = _task(tmp_path, return_bytes=return_bytes)
    done = results.write_results("tiny", task, _rendered(task), 0.5)
    if return_bytes:
        assert done.png_bytes == tuple(Path(path).read_bytes() for path in done.paths)
        assert done.grid_bytes == Path(done.grid_path).read_bytes()
    else:
        assert done.png_bytes is None and done.grid_bytes is None


def test_a_sweep_keeps_its_labelled_sheet_instead_of_a_grid(tmp_path: Path) -> None:
    """A sweep's grid is ``sweep.png`` (the sheet's size, its axes in the text), with the cells' labels."""
    task = _task(tmp_path, kind=TaskKind.SWEEP, seeds=(7,), sweep=(("cfg", ("3", "5")),))
    rendered = _rendered(_task(tmp_path, seeds=(7, 7)))
    rendered.infos = [
        dataclasses.replace(info, label=f"cfg={cfg}") for info, cfg in zip(rendered.infos, "35", strict=True)
    ]
    rendered.grid = Image.new("RGB", (128, 62), "white")
    done = results.write_results("tiny", task, rendered, 0.5)
    assert Path(done.grid_path).name == "sweep.png"
    assert not (Path(task.output_dir) / "grid.png").exists()
    assert done.labels == ("cfg=3", "cfg=5")
    text = read_parameters(Path(done.grid_path).read_bytes())
    assert text is not None and text.endswith("Seed: 7, Size: 128x62, Model: tiny, cfg: 3,5")


def test_a_grid_that_cannot_be_written_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename of the finished grid fails (a full disk, say): no grid.jpg and no temporary file remain."""
    real_replace = atomic_files.os.replace

    def failing_replace(source: str, target: Path) -> None:
        if Path(target).name == "grid.jpg":
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(atomic_files.os, "replace", failing_replace)
    task = _task(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        results.write_results("tiny", task, _rendered(task), 0.5)
    names = sorted(path.name for path in Path(task.output_dir).iterdir())
    assert names == ["0.png", "1.png", "2.png", "3.png"]


@pytest.mark.parametrize(
    ("image", "extra", "expected"),
    [
        (None, (), ImageParameters("a red fox <lora:ink:0.5>", "blur", 4, "Euler a", 5.0, 7, 64, 48, "tiny")),
        (
            ImageInfo(9, "a fox", 6, 3.0, "ddim", 0.4),
            (),
            ImageParameters("a fox", "blur", 6, "DDIM", 3.0, 9, 64, 48, "tiny", (("Denoising strength", "0.4"),)),
        ),
        (
            None,
            (("cfg", "3,5"),),
            ImageParameters(
                "a red fox <lora:ink:0.5>", "blur", 4, "Euler a", 5.0, 7, 64, 48, "tiny", (("cfg", "3,5"),)
            ),
        ),
    ],
)
def test_parameters_for(image: ImageInfo | None, extra: tuple[tuple[str, str], ...], expected: ImageParameters) -> None:
    """An image's own settings, or the task's with its first seed; sampler names as A1111 labels."""
    assert parameters_for(TASK, "tiny", 64, 48, image=image, extra=extra) == expected


def _noisy(task: RenderTask) -> Rendered:
    """Images that do not compress (random pixels), so their grid PNG is large."""
    images = [Image.effect_noise((task.width, task.height), 64).convert("RGB") for _ in task.seeds]
    infos = [ImageInfo(seed, "a red fox", task.steps, task.cfg, task.sampler, None) for seed in task.seeds]
    return Rendered(images, infos)


@pytest.mark.parametrize("limit", [20_000, 60_000])
def test_a_grid_over_the_upload_limit_is_made_to_fit(tmp_path: Path, limit: int) -> None:
    """A grid JPEG that would exceed the limit is written at a lower quality, then smaller, until it fits; it keeps
    the grid's shape and its parameters."""
    task = _task(tmp_path, width=256, height=256)
    done = results.write_results("tiny", task, _noisy(task), 0.5, compact_above=limit)
    assert 0 < Path(done.grid_path).stat().st_size <= limit
    with Image.open(done.grid_path) as image:
        assert image.format == "JPEG"
        assert image.width <= 512 and image.width == image.height  # the 2×2 grid's shape, maybe smaller
    assert read_parameters(Path(done.grid_path).read_bytes()) is not None


def test_a_grid_that_fits_keeps_the_grid_quality(tmp_path: Path) -> None:
    """Under the limit the grid is the full-size JPEG of quality 90 and nothing else is written beside it."""
    task = _task(tmp_path, width=256, height=256)
    rendered = _noisy(task)
    done = results.write_results("tiny", task, rendered, 0.5)
    expected = results.compact_jpeg(compose_grid(rendered.images), 10**9, parameters_for(task, "tiny", 256, 256))
    assert Path(done.grid_path).read_bytes() == expected
    assert sorted(path.name for path in Path(task.output_dir).iterdir()) == [
        "0.png",
        "1.png",
        "2.png",
        "3.png",
        "grid.jpg",
    ]


def _sweep(tmp_path: Path, size: int) -> tuple[RenderTask, Rendered]:
    task = _task(tmp_path, kind=TaskKind.SWEEP, seeds=(7,), sweep=(("cfg", ("3", "5")),), width=size, height=size)
    rendered = _noisy(_task(tmp_path, seeds=(7, 7), width=size, height=size))
    rendered.infos = [
        dataclasses.replace(info, label=f"cfg={cfg}") for info, cfg in zip(rendered.infos, "35", strict=True)
    ]
    rendered.grid = Image.effect_noise((size * 2, size), 64).convert("RGB")
    return task, rendered


def test_a_large_sweep_sheet_gets_a_compact_jpeg_beside_it(tmp_path: Path) -> None:
    """A sweep's PNG sheet over the limit stays lossless and gets sweep.jpg of at most the limit beside it."""
    task, rendered = _sweep(tmp_path, 256)
    done = results.write_results("tiny", task, rendered, 0.5, compact_above=40_000)
    sheet = Path(done.grid_path)
    assert sheet.name == "sweep.png" and sheet.stat().st_size > 40_000
    compact = sheet.with_suffix(".jpg")
    assert 0 < compact.stat().st_size <= 40_000
    with Image.open(compact) as image:
        assert image.format == "JPEG" and image.width == 2 * image.height


def test_a_small_sweep_sheet_gets_no_copy(tmp_path: Path) -> None:
    """Under the limit there is only the PNG sheet."""
    task, rendered = _sweep(tmp_path, 32)
    done = results.write_results("tiny", task, rendered, 0.5)
    assert not Path(done.grid_path).with_suffix(".jpg").exists()


def test_an_encoder_pool_writes_the_same_files(tmp_path: Path) -> None:
    """Encoded in parallel on a pool, every file has the same bytes as encoded one after another."""
    task = _task(tmp_path, width=128, height=128, return_bytes=True)
    rendered = _noisy(task)
    alone = results.write_results("tiny", task, rendered, 0.5)
    with ThreadPoolExecutor(4) as pool:
        pooled = results.write_results("tiny", task, rendered, 0.5, encoders=pool)
    assert pooled.png_bytes == alone.png_bytes and pooled.grid_bytes == alone.grid_bytes
    assert pooled.paths == alone.paths and pooled.grid_path == alone.grid_path
