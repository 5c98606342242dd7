"""``python -m bot models list|pull``: which models this server has, which members may use, which are on disk.

Pulling runs ``python -m engine.pull`` in a child process: downloading goes through diffusers, which the bot
process never imports. Members never cause a download: a model that is not on disk is refused (see
:func:`engine.model_sources.model_is_present`) until the owner pulls it here.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings, did_you_mean
from engine.model_sources import SourceSpec, model_folder, model_is_present, source_kind, weights_on_disk, weights_size
from engine.pull import format_bytes

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class ModelRow:
    """One line of ``models list``."""

    name: str
    kind: str
    source: str
    family: str
    default: bool
    for_members: bool
    on_disk: str


def model_rows(settings: Settings) -> list[ModelRow]:
    """Every registry model with where it comes from, whether members may pick it, and whether it is on disk."""
    members = set(settings.member_models)
    rows = []
    for name, spec in sorted(settings.registry.items()):
        kind = source_kind(spec.source)
        rows.append(
            ModelRow(
                name=name,
                kind=kind,
                source=spec.source,
                family=spec.family,
                default=name == settings.model,
                for_members=name in members,
                on_disk=_on_disk(name, kind, spec, model_is_present(spec), settings.models_dir),
            )
        )
    return rows


def _on_disk(name: str, kind: str, spec: SourceSpec, present: bool, models_dir: Path) -> str:
    """``yes (fp16, 2.6 GiB)``, ``built on first use`` or ``no (what to run)``."""
    folder = model_folder(spec, models_dir)
    if kind == "tiny":
        built = folder is not None and (folder / "model_index.json").is_file()
        return _weights(folder) if built and folder is not None else "built on first use"
    if present:
        return _weights(folder) if folder is not None else "yes"
    if kind == "hub":
        return f"no (python -m bot models pull {name})"
    return "no (missing or incomplete: python -m bot doctor says why)"


def _weights(folder: Path) -> str:
    """``yes (fp16, 2.6 GiB)``: which weight variant is on disk and how much disk the weight files take."""
    label = weights_on_disk(folder).label()
    return f"yes ({label}, {format_bytes(weights_size(folder))})" if label else "yes"


def format_rows(rows: list[ModelRow]) -> str:
    """An aligned table; ``*`` marks the default model."""
    header = ("", "model", "family", "members", "on disk", "source")
    lines = [
        (
            "*" if row.default else "",
            row.name,
            row.family,
            "yes" if row.for_members else "no",
            row.on_disk,
            f"{row.kind}: {row.source}",
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in [header, *lines]) for column in range(len(header) - 1)]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in [header, *lines]
    ]
    return "\n".join(line.rstrip() for line in text) + "\n* the default model; members may pick the others marked yes"


def list_models(settings: Settings) -> int:
    print(format_rows(model_rows(settings)))
    return EXIT_OK


def pull_model(settings: Settings, name: str) -> int:
    """Fetch (hub), build (tiny) or check (local) one registry model in a child process; its exit code."""
    spec = settings.registry.get(name)
    if spec is None:
        known = ", ".join(sorted(settings.registry))
        print(
            f"error: there is no model {name!r}{did_you_mean(name, settings.registry)}; use one of: {known}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    command = [
        sys.executable,
        "-m",
        "engine.pull",
        name,
        "--source",
        spec.source,
        "--config",
        spec.config,
        "--models-dir",
        str(settings.models_dir),
    ]
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        return EXIT_FAILED
