"""Downloads from the Hugging Face hub: what a diffusers download of a repository takes, fetching it, and how far
it got (measured on disk, so a watcher tells a slow download from a stalled one).

``python -m engine.pull`` (:mod:`engine.pull`) downloads with huggingface_hub's progress bars; the engine fetches its
start-up model through :func:`download_hub_model` too, reporting its progress to the bot.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.model_sources import FP16, FULL, weight_variant

PROGRESS_EVERY_S = 2.0
"""How often a download watched by :func:`download_hub_model` reports its progress."""
IGNORED_SUFFIXES = (".bin", ".msgpack", ".onnx", ".pb", ".ckpt", ".h5", ".ot")
"""Files a diffusers download leaves out of a component folder that has safetensors weights."""


@dataclass(frozen=True)
class DownloadPlan:
    """What a diffusers download of a hub repository takes at one commit: the variant and the files, with sizes."""

    repo_id: str
    commit: str
    variant: str | None
    files: Mapping[str, int]
    listing: Mapping[str, int]
    """Every file of the repository at ``commit``, with its size."""
    components: tuple[str, ...]

    def with_variant(self, variant: str | None) -> DownloadPlan:
        """The same repository's plan for another variant."""
        files = planned_files(self.listing, self.components, variant)
        return DownloadPlan(self.repo_id, self.commit, variant, files, self.listing, self.components)

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    def describe(self) -> str:
        """``fp16 variant, 2.6 GiB in 14 files`` (``full-precision files`` where the repository has no fp16)."""
        kind = f"{self.variant} variant" if self.variant else "full-precision files (the repository has no fp16)"
        return f"{kind}, {format_bytes(self.total_bytes)} in {len(self.files)} files"


@dataclass(frozen=True)
class DownloadProgress:
    """How much of a :class:`DownloadPlan` is on disk: finished files, plus the bytes of files still arriving."""

    done_bytes: int
    total_bytes: int
    done_files: int
    total_files: int


def hub_components(index: Mapping[str, object]) -> list[str]:
    """The component folders a ``model_index.json`` lists (``safety_checker: [null, null]`` is none)."""
    return sorted(
        name
        for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and value and None not in value
    )


def repository_variant(files: Iterable[str], components: Iterable[str]) -> str | None:
    """``fp16`` when some component folder of the repository has fp16 weights, else None (the default files)."""
    folders = set(components)
    for name in files:
        folder, _, base = name.rpartition("/")
        if folder in folders and weight_variant(base) == FP16:
            return FP16
    return None


def planned_files(sizes: Mapping[str, int], components: Iterable[str], variant: str | None) -> dict[str, int]:
    """The files a diffusers download of ``variant`` takes from a repository listing (name -> size).

    ``model_index.json``; per component folder with weights: its ``config.json``, the weights of ``variant`` where
    the folder has them, else its full-precision ones (safetensors before bin), and their shard indexes; a folder
    without weights (tokenizer, scheduler): all its files but other frameworks' weights. It follows what
    ``DiffusionPipeline.download`` selects; the engine uses it for the size a progress line shows.
    """
    planned = {name: size for name, size in sizes.items() if name == "model_index.json"}
    for component in components:
        inside = {name: size for name, size in sizes.items() if name.rpartition("/")[0] == component}
        weights = {name: weight_variant(name.rpartition("/")[2]) for name in inside}
        weights = {name: kind for name, kind in weights.items() if kind is not None}
        if not weights:
            planned.update({name: size for name, size in inside.items() if not name.endswith(IGNORED_SUFFIXES)})
            continue
        wanted = variant if variant is not None and variant in weights.values() else FULL
        chosen = [name for name, kind in weights.items() if kind == wanted]
        chosen = [name for name in chosen if name.endswith(".safetensors")] or chosen
        planned.update({name: inside[name] for name in chosen})
        suffix = f".index.{wanted}.json" if wanted else ".index.json"
        extras = [name for name in inside if name.endswith("/config.json") or name.endswith(suffix)]
        planned.update({name: inside[name] for name in extras})
    return planned


def measure_download(repo_folder: Path, plan: DownloadPlan) -> DownloadProgress:
    """The progress of ``plan`` in a Hugging Face cache folder (``models--org--name``), read from the disk alone.

    A file counts once its snapshot link exists (the hub client links it after the whole blob arrived); the bytes
    of blobs still arriving (``blobs/*.incomplete``) count as they grow.
    """
    snapshot = repo_folder / "snapshots" / plan.commit
    done_files = done_bytes = 0
    for name, size in plan.files.items():
        if (snapshot / name).exists():
            done_files += 1
            done_bytes += size
    arriving = 0
    blobs = repo_folder / "blobs"
    if blobs.is_dir():
        for path in blobs.iterdir():
            if path.name.endswith(".incomplete"):
                with contextlib.suppress(FileNotFoundError):  # finished between the listing and the look
                    arriving += path.stat().st_size
    return DownloadProgress(done_bytes + arriving, plan.total_bytes, done_files, len(plan.files))


class DownloadWatcher:
    """Calls ``on_progress(measure())`` every ``interval_s`` seconds on a thread of its own, and once at the end.

    It reports also when nothing arrived, so whoever listens tells a slow download from a stalled one.
    """

    def __init__(
        self,
        measure: Callable[[], DownloadProgress],
        on_progress: Callable[[DownloadProgress], None],
        interval_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self._measure = measure
        self._on_progress = on_progress
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="download-watcher", daemon=True)

    def __enter__(self) -> DownloadWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            stopped = self._stop.wait(self._interval_s)
            self._on_progress(self._measure())
            if stopped:
                return


def plan_download(repo_id: str) -> DownloadPlan:
    """Ask the hub what a download of ``repo_id`` takes (two small requests: the file list and model_index.json).
    Raises the hub client's errors (see :func:`hub_problem`)."""
    from huggingface_hub import hf_hub_download, model_info

    info = model_info(repo_id, files_metadata=True)
    commit = info.sha or "main"
    sizes = {sibling.rfilename: int(sibling.size or 0) for sibling in info.siblings or []}
    index = json.loads(Path(hf_hub_download(repo_id, "model_index.json", revision=commit)).read_text("utf-8"))
    components = hub_components(index)
    variant = repository_variant(sizes, components)
    files = planned_files(sizes, components, variant)
    return DownloadPlan(repo_id, commit, variant, files, sizes, tuple(components))


def download_hub_model(
    repo_id: str,
    *,
    plan: DownloadPlan | None = None,
    on_progress: Callable[[DownloadPlan, DownloadProgress], None] | None = None,
    interval_s: float = PROGRESS_EVERY_S,
    progress_bars: bool = False,
) -> tuple[Path, DownloadPlan]:
    """Download what ``from_pretrained`` needs of ``repo_id`` (its fp16 variant where it has one) into the Hugging
    Face cache. ``on_progress`` hears every ``interval_s`` seconds how far it got, measured on disk;
    ``progress_bars`` shows huggingface_hub's own bars instead. Returns the snapshot folder and the plan.

    A repository whose fp16 files the listing showed but diffusers does not take as a variant is fetched with its
    default files (diffusers raises a ValueError for a variant it finds nowhere).
    """
    import diffusers
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    plan = plan if plan is not None else plan_download(repo_id)
    diffusers.utils.logging.set_verbosity_error()
    if progress_bars:
        enable_progress_bars()
    else:
        disable_progress_bars()
    repo_folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")

    def fetch(current: DownloadPlan) -> Path:
        if on_progress is None:
            return Path(diffusers.DiffusionPipeline.download(repo_id, variant=current.variant))
        with DownloadWatcher(
            lambda: measure_download(repo_folder, current), lambda progress: on_progress(current, progress), interval_s
        ):
            return Path(diffusers.DiffusionPipeline.download(repo_id, variant=current.variant))

    if plan.variant is None:
        return fetch(plan), plan
    try:
        return fetch(plan), plan
    except ValueError as error:
        if f"variant={plan.variant}" not in str(error):
            raise
    fallback = plan.with_variant(None)
    return fetch(fallback), fallback


def hub_problem(error: BaseException) -> str:
    """One sentence for an error of the hub client: gated, no such repository, offline, unreachable."""
    from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(error, GatedRepoError):
        return "the repository is gated: accept its licence on huggingface.co, then log in here with `hf auth login`"
    if isinstance(error, RepositoryNotFoundError):
        return "there is no such repository on the hub (or it is private); check the source in the configuration"
    if isinstance(error, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set, so nothing can be fetched; unset it on a machine that can reach huggingface.co"
    return f"cannot reach the Hugging Face hub ({one_line_error(error)}); check the network and try again"


def format_bytes(size: int) -> str:
    """``512 B``, ``3.4 MiB``, ``2.6 GiB``: binary units, one decimal."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def one_line_error(error: BaseException) -> str:
    """``Type: first line of the message``: an error in one line, for the owner."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
