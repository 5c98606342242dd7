"""``python -m engine.pull NAME``: put a registry model on this machine, so it loads without the network.

The owner runs it through ``python -m bot models pull NAME`` (the bot never imports diffusers). What it does
depends on the model's source:

- a Hugging Face hub id: downloads the files a diffusers pipeline loads (``DiffusionPipeline.download``: the
  components ``model_index.json`` lists, safetensors weights, no EMA/single-file files) into the Hugging Face
  cache, with a progress bar; nothing when it is already there. Where the repository ships an fp16 variant
  (``*.fp16.safetensors``, as most Stable Diffusion repositories do) only that is fetched: half the download and
  the disk of the full-precision files. A repository without one is fetched with its default files;
- ``tiny:<family>``: builds the tiny random-weight model under the models folder;
- a local folder or ``.safetensors`` file: checks it (there is nothing to download).

A model that fuses a LoRA at load (``fuse_lora``, an LCM-LoRA) gets it too: a hub LoRA's weights file is downloaded
into the cache, a local one checked.

The download itself, its plan and its progress are :mod:`engine.hub_download`'s (the engine fetches its start-up
model through it too).

Exit codes: 0 the model is on this machine, 1 it could not be fetched or is incomplete (one line says why), 2 the
name or arguments are wrong, or a local source is missing or incomplete (the files or the configuration must
change: there is nothing to download). ``HF_HUB_OFFLINE=1`` or no network is one clear line, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.hub_download import download_hub_model, hub_problem, one_line_error, plan_download
from engine.model_sources import (
    TINY_PREFIX,
    fuse_lora_cached,
    fuse_lora_problem,
    hub_snapshot,
    source_kind,
    source_problem,
    weights_on_disk,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine.pull", description=__doc__.splitlines()[0])
    parser.add_argument("name", metavar="NAME", help="the registry name (sd15, sdxl, tiny, or one of [models.NAME])")
    parser.add_argument("--source", help="the model's source; read from the settings when left out")
    parser.add_argument("--config", default="", help="for a single-file source: its local diffusers config folder")
    parser.add_argument("--models-dir", type=Path, help="where tiny models are built (default: <data_dir>/models)")
    parser.add_argument("--fuse-lora", default="", help="the LoRA the model fuses at load (a local file or a hub id)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    source, config, models_dir, fuse_lora = args.source, args.config, args.models_dir, args.fuse_lora
    if source is None or models_dir is None:
        from config.errors import ConfigError, did_you_mean
        from config.settings import load_settings

        try:
            settings = load_settings()
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        spec = settings.registry.get(args.name)
        if source is None and spec is None:
            known = ", ".join(sorted(settings.registry))
            print(
                f"error: there is no model {args.name!r}{did_you_mean(args.name, settings.registry)}; "
                f"use one of: {known}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if source is None and spec is not None:
            source, config, fuse_lora = spec.source, spec.config, spec.fuse_lora
        models_dir = models_dir if models_dir is not None else settings.models_dir
    code = pull(args.name, source, config, models_dir)
    return pull_fuse_lora(args.name, fuse_lora) if code == EXIT_OK and fuse_lora else code


def pull_fuse_lora(name: str, fuse_lora: str) -> int:
    """Fetch (hub) or check (local) the LoRA a model fuses at load; one line of outcome. Returns the exit code."""
    from engine.fused_lora import FusedLoraError, download_fuse_lora

    problem = fuse_lora_problem(fuse_lora)
    if problem is not None:
        print(f"error: model {name}: {problem}; fix [models.{name}] fuse_lora in the configuration", file=sys.stderr)
        return EXIT_USAGE
    cached = fuse_lora_cached(fuse_lora)
    if cached is not None:
        print(f"model {name}: its LoRA {fuse_lora} is on this machine ({cached})")
        return EXIT_OK
    try:
        path = download_fuse_lora(fuse_lora, name)
    except FusedLoraError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"model {name}: its LoRA {fuse_lora} downloaded to {path}")
    return EXIT_OK


def pull(name: str, source: str, config: str, models_dir: Path) -> int:
    """Fetch, build or check one model; print one line of outcome (errors on stderr). Returns the exit code."""
    kind = source_kind(source)
    if kind == "tiny":
        return _build_tiny(name, source.removeprefix(TINY_PREFIX), models_dir)
    if kind in ("folder", "single_file"):
        problem = source_problem(source, config)
        if problem is not None:  # nothing to download: the files or the configuration must change
            print(
                f"error: model {name}: {problem}; fix [models.{name}] source in the configuration "
                "(a local source: there is nothing to download)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(f"model {name}: {source} is on this machine (a local {kind.replace('_', ' ')}; nothing to download)")
        return EXIT_OK
    return _download_hub(name, source)


def _build_tiny(name: str, family: str, models_dir: Path) -> int:
    from engine.tiny import TINY_FAMILIES, ensure_tiny_model

    if family not in TINY_FAMILIES:
        print(
            f"error: model {name}: there is no tiny {family!r} model; use one of: {', '.join(TINY_FAMILIES)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        path = ensure_tiny_model(family, models_dir)
    except OSError as error:
        print(f"error: model {name}: could not build it in {models_dir}: {error.strerror or error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"model {name}: tiny {family} model ready at {path}")
    return EXIT_OK


def _download_hub(name: str, repo_id: str) -> int:
    from huggingface_hub import constants

    present = hub_snapshot(repo_id)
    if present is not None:
        label = weights_on_disk(present).label()
        print(f"model {name}: {repo_id} is already downloaded ({label + ', ' if label else ''}{present})")
        return EXIT_OK
    if constants.is_offline_mode():
        print(
            f"error: model {name} ({repo_id}) is not downloaded, and HF_HUB_OFFLINE is set so nothing can be fetched; "
            "run this again without HF_HUB_OFFLINE on a machine that can reach huggingface.co",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        plan = plan_download(repo_id)
    except Exception as error:  # the hub's HTTP client raises its own errors: one line, no traceback
        print(f"error: model {name} ({repo_id}): {hub_problem(error)}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"downloading model {name} from the Hugging Face hub ({repo_id}, {plan.describe()}); this can take a while",
        file=sys.stderr,
    )
    try:
        path, plan = download_hub_model(repo_id, plan=plan, progress_bars=True)
    except KeyboardInterrupt:
        print(f"\nstopped; run `python -m bot models pull {name}` again to resume", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # network, disk full, a repository without diffusers files: one line, no traceback
        print(f"error: model {name} ({repo_id}) could not be downloaded: {one_line_error(error)}", file=sys.stderr)
        return EXIT_FAILED
    if hub_snapshot(repo_id) is None:
        print(
            f"error: model {name} ({repo_id}): the download finished but some components are missing from {path}; "
            "is it a diffusers repository (with model_index.json)?",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"model {name}: downloaded ({weights_on_disk(path).label() or 'no weights'}) to {path}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
