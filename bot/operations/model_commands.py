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

from bot.operations.exit_codes import EXIT_CONFIG, EXIT_OK
from bot.operations.folders import check_model_folders
from bot.operations.interrupts import say_interrupted
from bot.requests.preparation import config_name, local_model_problem
from bot.running.child_signals import children_ignore_sigint
from config.errors import did_you_mean
from config.settings import Settings
from engine.hub_download import format_bytes
from engine.model_sources import SourceSpec, model_folder, model_is_present, source_kind, weights_on_disk, weights_size

PULL_STOP_S = 5.0
"""After Ctrl-C, how long a download may take to stop (SIGTERM) before it is killed."""


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
    problem: str | None = None
    """What is wrong with a local folder or file: the model cannot be used by anyone until it is fixed."""

    @property
    def members(self) -> str:
        """``yes``, ``no``, or ``not usable`` for a model offered to members whose local source has a problem."""
        if not self.for_members:
            return "no"
        return "not usable" if self.problem is not None else "yes"


def model_rows(settings: Settings) -> list[ModelRow]:
    """Every registry model with where it comes from, whether members may pick it, and whether it is on disk."""
    members = set(settings.member_models)
    rows = []
    for name, spec in sorted(settings.registry.items()):
        kind = source_kind(spec.source)
        problem = local_model_problem(spec)
        on_disk = f"no: {problem}" if problem is not None else _on_disk(name, kind, spec, settings.models_dir)
        rows.append(
            ModelRow(
                name=name,
                kind=kind,
                source=spec.source,
                family=spec.family,
                default=name == settings.model,
                for_members=name in members,
                on_disk=on_disk,
                problem=problem,
            )
        )
    return rows


def _on_disk(name: str, kind: str, spec: SourceSpec, models_dir: Path) -> str:
    """``yes (fp16, 2.6 GiB)``, ``built on first use`` or ``no (what to run)``, for a source without a local problem
    (a local folder or file is then on disk)."""
    if not _built(spec, kind, models_dir):
        return "built on first use" if kind == "tiny" else f"no (python -m bot models pull {name})"
    folder = model_folder(spec, models_dir)
    return _weights(folder) if folder is not None else "yes"


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
            row.members,
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
    footer = "* the default model; members may pick the others marked yes"
    if any(row.problem is not None for row in rows):
        footer += "; a model whose files are missing is not usable until its source is fixed"
    return "\n".join(line.rstrip() for line in text) + "\n" + footer


def list_models(settings: Settings) -> int:
    print(format_rows(model_rows(settings)))
    return EXIT_OK


def pull_model(settings: Settings, name: str) -> int:
    """Fetch (hub), build (tiny) or check (local) one registry model in a child process; its exit code.

    Refused with exit 2 before the child starts: an unknown name, a local source that is missing or incomplete
    (there is nothing to download: the files or the configuration must change), or a folder the pull must write
    (the models folder for a tiny model, the Hugging Face cache for a hub model) that cannot be written."""
    spec = settings.registry.get(name)
    if spec is None:
        known = ", ".join(sorted(settings.registry))
        print(
            f"error: there is no model {name!r}{did_you_mean(name, settings.registry)}; use one of: {known}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    problem = local_model_problem(spec)
    if problem is not None:
        print(
            f"error: model {name}: {problem}; fix [models.{name}] source in {config_name(public=False)} "
            "(a local source: there is nothing to download)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    kind = source_kind(spec.source)
    if kind in ("tiny", "hub") and not _built(spec, kind, settings.models_dir):
        unwritable = check_model_folders(settings, kind)
        if unwritable is not None:
            print(f"error: {unwritable}", file=sys.stderr)
            return EXIT_CONFIG
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
        "--fuse-lora",
        spec.fuse_lora,
    ]
    with children_ignore_sigint():  # Ctrl-C reaches the download too: it is stopped here, in order
        child = subprocess.Popen(command)
    try:
        return child.wait()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see bot.operations.interrupts.terminate_as_interrupt)
        child.terminate()
        try:
            child.wait(PULL_STOP_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        bar_end = "\n" if kind == "hub" else ""  # a download's progress bar may be mid-line
        return say_interrupted(
            f"{bar_end}interrupted; run `python -m bot models pull {name}` again to finish (a download resumes)"
        )


def _built(spec: SourceSpec, kind: str, models_dir: Path) -> bool:
    """Whether a tiny model is built or a hub model fully cached (then pull writes nothing: a read-only cache that
    holds the model is fine)."""
    if kind == "tiny":
        folder = model_folder(spec, models_dir)
        return folder is not None and (folder / "model_index.json").is_file()
    return model_is_present(spec)


def check_default_model(settings: Settings) -> str | None:
    """None when the default model's source can be used; else one line for ``run`` to refuse with (exit 2).

    Only what is known locally: a local folder or file that is missing or incomplete. A hub model that is not
    downloaded yet is fetched by the engine at start-up."""
    problem = local_model_problem(settings.registry[settings.model])
    if problem is None:
        return None
    name = settings.model
    return (
        f"the default model `{name}` cannot be used: {problem}; fix [models.{name}] source in "
        f"{config_name(public=False)}, or set model to another model"
    )
