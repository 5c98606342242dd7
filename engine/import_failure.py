"""One line for an engine whose libraries do not import: the real cause and what to do about it.

The engine imports torch, diffusers and transformers when it starts. When that fails the owner must learn why in
one line, not from a traceback in the engine's log nor from "the engine exited". The usual cause is a torch older
than transformers 5 accepts: transformers then turns PyTorch off, and its modules (and diffusers', which use
them) fail on import with errors such as ``NameError: name 'nn' is not defined`` that name no version at all.

Nothing here imports torch or the other libraries: versions are read from the installed packages' metadata.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from pathlib import PurePath

TORCH_FLOOR = (2, 6)
"""The oldest torch the engine runs with: transformers 5 turns PyTorch off below 2.6 (pyproject.toml's floor is the
same; a test keeps the two equal)."""

LIBRARIES = ("torch", "diffusers", "transformers", "huggingface_hub", "accelerate", "safetensors", "peft", "compel")
"""The engine's libraries, as imported (a missing one is named in the answer)."""

REINSTALL = "reinstall the bot's dependencies (pip install -e . in its folder) or rebuild the Docker image"


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed (read from its metadata)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version: ``2.5.1+cu124`` -> ``(2, 5, 1)``."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain: diffusers wraps the real import error in RuntimeErrors."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = error.__cause__ or error.__context__
        if inner is None:
            break
        error = inner
    return error


def origin(error: BaseException) -> str:
    """The file that raised the error: inside an installed library as ``transformers/models/...py``, else the full
    path (a stray module named like a library, found before the real one, shows up here)."""
    traceback = error.__traceback__
    if traceback is None:
        return ""
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    parts = PurePath(traceback.tb_frame.f_code.co_filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(marker) :])
    return str(PurePath(*parts))


def describe_import_failure(error: BaseException) -> str:
    """One line: the cause of the failed import and what the owner should do."""
    cause = root_cause(error)
    text = str(cause).strip().splitlines()
    what = f"{type(cause).__name__}: {text[-1]}" if text else type(cause).__name__
    prefix = "the engine cannot import its libraries"
    floor = ".".join(str(part) for part in TORCH_FLOOR)
    torch_version = installed_version("torch")
    if torch_version is None:
        return f'{prefix}: torch is not installed ({what}); install it (pip install "torch>={floor}")'
    if release(torch_version) < TORCH_FLOOR:
        transformers = installed_version("transformers") or "5"
        return (
            f"{prefix}: torch {torch_version} is too old for transformers {transformers}, which turns PyTorch off "
            f'below {floor} ({what}); install torch >= {floor} (pip install --upgrade "torch>={floor}") or '
            "rebuild the Docker image"
        )
    if isinstance(cause, ModuleNotFoundError) and (cause.name or "").split(".")[0] in LIBRARIES:
        return f"{prefix}: {cause.name} is not installed ({what}); {REINSTALL}"
    where = origin(cause)
    return f"{prefix}: {what}{f' (in {where})' if where else ''}; {REINSTALL}"


def main() -> int:
    """``python -m engine.import_failure``: import what the engine imports (the Docker build runs this, so an image
    whose libraries do not fit together fails to build); one line either way, exit 1 on failure."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import diffusers
        import torch
        import transformers

        import engine.pipelines
        import engine.render  # noqa: F401
    except Exception as error:
        print(f"error: {describe_import_failure(error)}", file=sys.stderr)
        return 1
    print(
        f"the engine's libraries import: torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"transformers {transformers.__version__}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
