"""Model downloads: only the start-up model may come from the hub (any other hub model loads from the local cache
or is refused before anything is evicted); fp16 variants are downloaded where a repository has them, and loaded
when the engine runs in fp16; download progress is measured on disk. conftest sets HF_HUB_OFFLINE=1, so nothing here
can reach the network."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from engine.hub_download import (
    DownloadPlan,
    DownloadProgress,
    DownloadWatcher,
    download_hub_model,
    format_bytes,
    hub_components,
    measure_download,
    planned_files,
    repository_variant,
)
from engine.model_sources import (
    WeightsOnDisk,
    choose_variant,
    component_parameters,
    hub_snapshot,
    weight_variant,
    weights_on_disk,
)
from engine.pipelines import ModelCache, ModelLoadError, cache_only, load_entry
from engine.protocol import EngineConfig, ModelEntry
from tests.engine.variants import copy_model, put_in_hub_cache, write_fp16_variant

TINY = ModelEntry("tiny", "tiny:sd15", "sd15")
SDXL = ModelEntry("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "sdxl")
SD15 = ModelEntry("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd15")


@pytest.mark.parametrize(
    ("startup", "entry", "expected"),
    [
        ("sd15", SD15, False),  # the configured default is fetched at start-up as before
        ("sd15", SDXL, True),
        ("tiny", SD15, True),
        ("tiny", TINY, False),
        ("sd15", ModelEntry("mine", "/models/mine", "sd15"), False),
    ],
)
def test_cache_only(startup: str, entry: ModelEntry, expected: bool) -> None:
    """A hub model other than the start-up one must come from the cache; local and tiny models never download."""
    config = EngineConfig(startup, "", "sd15", "data", models=(TINY, SDXL, SD15))
    assert cache_only(entry, config) is expected


def test_a_member_request_for_an_uncached_hub_model_is_refused_without_evicting(tmp_path: Path) -> None:
    """Asking for sdxl while tiny is loaded: a ModelLoadError that says how to pull it; tiny stays loaded."""
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(tmp_path), models=(TINY, SDXL), max_loaded_models=1)
    cache = ModelCache(config)
    loaded = cache.get("tiny")
    with pytest.raises(ModelLoadError) as caught:
        cache.get("sdxl")
    message = str(caught.value)
    assert "is not downloaded on this machine" in message
    assert "python -m bot models pull sdxl" in message
    assert cache.loaded_names == ["tiny"]
    assert cache.get("tiny") is loaded


# --- fp16 variants: what is downloaded, what is on disk, what loads ---------------------------------------------

SD15_FILES = {  # the diffusers files of stable-diffusion-v1-5/stable-diffusion-v1-5, with their sizes
    "model_index.json": 541,
    "v1-5-pruned-emaonly.safetensors": 4_265_146_304,
    "feature_extractor/preprocessor_config.json": 342,
    "safety_checker/config.json": 4_723,
    "safety_checker/model.safetensors": 1_215_981_830,
    "safety_checker/model.fp16.safetensors": 608_018_440,
    "safety_checker/pytorch_model.bin": 1_216_064_769,
    "safety_checker/pytorch_model.fp16.bin": 608_103_564,
    "scheduler/scheduler_config.json": 308,
    "text_encoder/config.json": 617,
    "text_encoder/model.safetensors": 492_265_168,
    "text_encoder/model.fp16.safetensors": 246_144_152,
    "text_encoder/pytorch_model.bin": 492_305_335,
    "tokenizer/merges.txt": 524_619,
    "tokenizer/special_tokens_map.json": 472,
    "tokenizer/tokenizer_config.json": 806,
    "tokenizer/vocab.json": 1_059_962,
    "unet/config.json": 743,
    "unet/diffusion_pytorch_model.safetensors": 3_438_167_536,
    "unet/diffusion_pytorch_model.fp16.safetensors": 1_719_125_304,
    "unet/diffusion_pytorch_model.non_ema.safetensors": 3_438_167_536,
    "unet/diffusion_pytorch_model.bin": 3_438_375_973,
    "vae/config.json": 547,
    "vae/diffusion_pytorch_model.safetensors": 334_643_268,
    "vae/diffusion_pytorch_model.fp16.safetensors": 167_335_342,
}
SD15_COMPONENTS = ["feature_extractor", "safety_checker", "scheduler", "text_encoder", "tokenizer", "unet", "vae"]


@pytest.mark.parametrize(
    ("name", "variant"),
    [
        ("diffusion_pytorch_model.safetensors", ""),
        ("diffusion_pytorch_model.fp16.safetensors", "fp16"),
        ("model.fp16-00001-of-00002.safetensors", "fp16"),
        ("model-00001-of-00002.safetensors", ""),
        ("pytorch_model.fp16.bin", "fp16"),
        ("diffusion_pytorch_model.non_ema.safetensors", "non_ema"),
        ("model.safetensors.index.json", None),
        ("config.json", None),
        ("v1-5-pruned-emaonly.safetensors", None),
    ],
)
def test_weight_variant(name: str, variant: str | None) -> None:
    """A weight file's variant from its name, as diffusers names them; other files have none."""
    assert weight_variant(name) == variant


def test_a_download_takes_the_fp16_variant_where_the_repository_has_one() -> None:
    """The SD1.5 repository: the fp16 weights of each network, nothing of .bin, EMA or the single-file checkpoint;
    the weights are those diffusers' own selection takes for variant="fp16"; about half the full-precision bytes."""
    from diffusers.pipelines.pipeline_loading_utils import variant_compatible_siblings

    variant = repository_variant(SD15_FILES, SD15_COMPONENTS)
    assert variant == "fp16"
    plan = planned_files(SD15_FILES, SD15_COMPONENTS, variant)
    weights = {name for name in plan if weight_variant(name.rpartition("/")[2]) is not None}
    assert weights == {
        "safety_checker/model.fp16.safetensors",
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    }
    in_folders = [name for name in SD15_FILES if name.rpartition("/")[0] in SD15_COMPONENTS]
    diffusers_pick, _ = variant_compatible_siblings(in_folders, variant="fp16", ignore_patterns=["*.bin", "*.msgpack"])
    assert weights == {name for name in diffusers_pick if weight_variant(name.rpartition("/")[2]) is not None}
    assert "tokenizer/vocab.json" in plan and "unet/config.json" in plan and "model_index.json" in plan
    full = planned_files(SD15_FILES, SD15_COMPONENTS, None)
    assert 0.49 < sum(plan.values()) / sum(full.values()) < 0.51


def test_a_repository_without_fp16_is_downloaded_with_its_default_files() -> None:
    """No fp16 file anywhere: no variant, the full-precision safetensors; diffusers itself refuses variant="fp16"
    for such a listing (the ValueError download_hub_model falls back on)."""
    from diffusers.pipelines.pipeline_loading_utils import variant_compatible_siblings

    files = {name: size for name, size in SD15_FILES.items() if ".fp16." not in name}
    assert repository_variant(files, SD15_COMPONENTS) is None
    plan = planned_files(files, SD15_COMPONENTS, None)
    assert "unet/diffusion_pytorch_model.safetensors" in plan
    assert not any(name.endswith(".bin") or "non_ema" in name for name in plan)
    with pytest.raises(ValueError, match="variant=fp16"):
        variant_compatible_siblings(list(files), variant="fp16", ignore_patterns=["*.bin"])


@pytest.mark.parametrize(
    ("components", "label", "fp16_engine", "fp32_engine"),
    [
        ((("unet", {"fp16", ""}), ("vae", {"fp16", ""})), "fp16 + full precision", "fp16", None),
        ((("unet", {"fp16"}), ("vae", {"fp16"})), "fp16", "fp16", "fp16"),  # fp32 loads them upcast
        ((("unet", {""}), ("vae", {""})), "full precision", None, None),
        ((("unet", {"fp16", ""}), ("vae", {""})), "fp16 (some parts full precision)", "fp16", None),
        ((("unet", {"fp16"}), ("vae", {""})), "fp16 (some parts full precision)", "fp16", "fp16"),
        ((), "", None, None),
    ],
)
def test_which_variant_is_on_disk_and_which_loads(
    components: tuple[tuple[str, set[str]], ...], label: str, fp16_engine: str | None, fp32_engine: str | None
) -> None:
    """fp16 files load in an fp16/bf16 engine; an fp32 engine takes the full-precision files when they are all there."""
    weights = WeightsOnDisk(tuple((name, frozenset(kinds)) for name, kinds in components))
    assert weights.label() == label
    assert choose_variant("fp16", weights) == fp16_engine
    assert choose_variant("torch.bfloat16", weights) == fp16_engine
    assert choose_variant("fp32", weights) == fp32_engine


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD1.5 model, built once for the module (copy it before changing its files)."""
    from engine.tiny import ensure_tiny_model

    return ensure_tiny_model("sd15", tmp_path_factory.mktemp("models"))


def test_safetensors_headers_count_the_parameters_torch_loads(tiny_folder: Path) -> None:
    """Parameters from the headers alone equal those of the loaded networks; an fp16 copy has the same count."""
    import diffusers

    pipe = diffusers.StableDiffusionPipeline.from_pretrained(tiny_folder)
    loaded = {name: sum(p.numel() for p in pipe.components[name].parameters()) for name in ("unet", "vae")}
    counted = component_parameters(tiny_folder, None)
    assert counted["unet"] == loaded["unet"] and counted["vae"] == loaded["vae"]
    assert set(counted) == {"unet", "vae", "text_encoder"}


@pytest.mark.parametrize(
    ("files", "dtype", "variant", "loaded_dtype"),
    [
        ("fp16 + full", "fp16", "fp16", torch.float16),
        ("fp16 only", "fp32", "fp16", torch.float32),  # only the variant is there: loaded, upcast
        ("full only", "fp16", "", torch.float16),  # no variant: the default files, cast
    ],
)
def test_a_folder_loads_with_the_variant_the_engine_wants(
    tiny_folder: Path, tmp_path: Path, files: str, dtype: str, variant: str, loaded_dtype: torch.dtype
) -> None:
    """The real from_pretrained of a tiny folder with an fp16 variant (written as hub repositories ship it)."""
    folder = copy_model(tiny_folder, tmp_path / "mine")
    if files != "full only":
        write_fp16_variant(folder, keep_full=files == "fp16 + full")
    entry = ModelEntry("mine", str(folder), "sd15")
    model = load_entry(entry, EngineConfig("mine", str(folder), "sd15", str(tmp_path), dtype=dtype))
    assert model.variant == variant
    assert model.pipeline.unet.dtype == loaded_dtype
    assert model.pipeline.vae.dtype == loaded_dtype


def test_a_cached_hub_model_with_fp16_loads_its_variant_from_the_cache(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub model laid out in the Hugging Face cache as a download leaves it, fp16 files only (as pull fetches
    them): found complete, labelled fp16, and loaded (cache only: not the start-up model) with its variant."""
    from huggingface_hub import constants

    folder = copy_model(tiny_folder, tmp_path / "art")
    write_fp16_variant(folder, keep_full=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = put_in_hub_cache(folder, tmp_path / "hub", "someone/tiny-art")
    assert hub_snapshot("someone/tiny-art") == snapshot
    assert weights_on_disk(snapshot).label() == "fp16"
    art = ModelEntry("art", "someone/tiny-art", "sd15")
    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(tmp_path), dtype="fp16", models=(TINY, art))
    model = ModelCache(config).get("art")
    assert model.variant == "fp16" and model.pipeline.unet.dtype == torch.float16


def test_download_progress_is_measured_on_disk_while_a_file_arrives(tmp_path: Path) -> None:
    """A slow, real copy into a cache folder the way the hub client writes (a growing ``blobs/*.incomplete``,
    renamed to its blob, then linked from the snapshot): the watcher reports the bytes as they grow, and the
    files once linked, ending at the plan's total."""
    chunk, chunks = 64 * 1024, 12
    weights = "unet/diffusion_pytorch_model.fp16.safetensors"
    files = {"model_index.json": 100, "unet/config.json": 50, weights: chunk * chunks}
    plan = DownloadPlan("org/x", "c" * 40, "fp16", files, files, ("unet",))
    repo = tmp_path / "models--org--x"
    snapshot = repo / "snapshots" / plan.commit
    (repo / "blobs").mkdir(parents=True)

    def write(name: str, size: int, pieces: int) -> None:
        incomplete = repo / "blobs" / f"{name.replace('/', '_')}.incomplete"
        with incomplete.open("wb") as file:
            for _ in range(pieces):
                file.write(b"\0" * (size // pieces))
                file.flush()
                time.sleep(0.05)
        blob = incomplete.with_suffix("")
        incomplete.rename(blob)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)

    seen: list[DownloadProgress] = []
    with DownloadWatcher(lambda: measure_download(repo, plan), seen.append, interval_s=0.02):
        write("model_index.json", 100, 1)
        write("unet/config.json", 50, 1)
        write(weights, chunk * chunks, chunks)
    assert seen[-1] == DownloadProgress(plan.total_bytes, plan.total_bytes, 3, 3)
    midway = {progress.done_bytes for progress in seen if 150 < progress.done_bytes < plan.total_bytes}
    assert len(midway) >= 4, seen  # the big file was seen growing, not only before and after
    assert [progress.done_files for progress in seen] == sorted(progress.done_files for progress in seen)


def test_format_bytes() -> None:
    """Sizes in binary units with one decimal."""
    assert [format_bytes(n) for n in (512, 3 * 2**20 + 2**19, int(2.6 * 2**30))] == ["512 B", "3.5 MiB", "2.6 GiB"]


def test_models_list_and_pull_say_which_variant_is_on_disk(tiny_folder: Path, tmp_path: Path) -> None:
    """A hub model cached with its fp16 variant only: list shows ``yes (fp16, size)``, pull says it is there."""
    from tests.bot.operations.test_cli import run_cli

    folder = copy_model(tiny_folder, tmp_path / "art")
    write_fp16_variant(folder, keep_full=False)
    snapshot = put_in_hub_cache(folder, tmp_path / "hub", "someone/tiny-art")
    toml = tmp_path / "bot.toml"
    toml.write_text('model = "tiny"\n[models.art]\nsource = "someone/tiny-art"\n')
    env = {
        "IMAGINE_CONFIG": str(toml),
        "IMAGINE_DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_CACHE": str(tmp_path / "hub"),
    }
    size = format_bytes(sum(path.stat().st_size for path in folder.rglob("*.fp16.safetensors")))
    listed = run_cli("models", "list", cwd=tmp_path, env=env)
    assert f"yes (fp16, {size})" in next(line for line in listed.stdout.splitlines() if " art " in line)
    pulled = run_cli("models", "pull", "art", cwd=tmp_path, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == f"model art: someone/tiny-art is already downloaded (fp16, {snapshot})"


def test_download_hub_model_reports_progress_to_the_end(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's download step through DiffusionPipeline.download, offline on a cached repository (diffusers then
    returns the cached snapshot): the watcher runs beside it and its last report is the whole plan."""
    from huggingface_hub import constants

    folder = copy_model(tiny_folder, tmp_path / "art")
    write_fp16_variant(folder, keep_full=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    commit = "2" * 40
    snapshot = put_in_hub_cache(folder, tmp_path / "hub", "someone/tiny-art", commit)
    listing = {str(path.relative_to(folder)): path.stat().st_size for path in folder.rglob("*") if path.is_file()}
    components = tuple(hub_components(json.loads((folder / "model_index.json").read_text())))
    assert components == ("scheduler", "text_encoder", "tokenizer", "unet", "vae")
    plan = DownloadPlan(
        "someone/tiny-art", commit, "fp16", planned_files(listing, components, "fp16"), listing, components
    )
    assert plan.files == listing  # every file of this fp16-only folder is one the download takes
    reports: list[tuple[DownloadPlan, DownloadProgress]] = []
    path, used = download_hub_model("someone/tiny-art", plan=plan, on_progress=lambda *report: reports.append(report))
    assert path == snapshot and used is plan
    assert reports[-1] == (plan, DownloadProgress(plan.total_bytes, plan.total_bytes, len(listing), len(listing)))
