"""The folders the bot writes, tried for real before it starts serving.

A folder the bot cannot write otherwise fails much later and far from its cause: the first upload, the first
image, the first model download. The usual cause is Docker creating a missing bind-mounted folder as root while
the container runs as uid 1000. Permission bits say nothing about what root (or a read-only mount) allows, so
each folder is created if missing and a nameless temporary file is written in it.
"""

from __future__ import annotations

import errno
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings

DOCKER_VARIABLE = "IMAGINEBOT_DOCKER"
"""Set by the project's Docker image: the fix is then a ``chown`` of the compose volumes on the host."""
DOCKER_VOLUMES = ("./data", "./models")
"""The host folders compose.yaml mounts for data and models (with the Hugging Face cache)."""


DATA_SETTING = "data_dir (IMAGINE_DATA_DIR)"
DATABASE_SETTING = "database_path (IMAGINE_DATABASE_PATH)"
CACHE_SETTING = "HF_HOME"


@dataclass(frozen=True)
class Folder:
    """A folder the bot writes, and the setting that moves it."""

    path: Path
    setting: str


@dataclass(frozen=True)
class Unwritable:
    """A folder the bot must write and cannot, the system's reason, and the setting that moves it."""

    path: Path
    reason: str
    errno: int | None
    setting: str


def folders_to_write(settings: Settings) -> list[Folder]:
    """The data folder, its uploads/images/models folders, the database's folder and the Hugging Face cache."""
    from huggingface_hub import constants  # light: no torch

    data = settings.data_dir
    candidates = [
        Folder(data, DATA_SETTING),
        Folder(data / "uploads", DATA_SETTING),
        Folder(settings.images_dir, DATA_SETTING),
        Folder(settings.models_dir, DATA_SETTING),
        Folder(settings.database_file.parent, DATABASE_SETTING if settings.database_path else DATA_SETTING),
        Folder(Path(constants.HF_HOME), CACHE_SETTING),
        Folder(Path(constants.HF_HUB_CACHE), CACHE_SETTING),
    ]
    unique: dict[Path, Folder] = {}
    for folder in candidates:
        unique.setdefault(folder.path.expanduser(), Folder(folder.path.expanduser(), folder.setting))
    return list(unique.values())


def try_writing(folder: Folder) -> Unwritable | None:
    """Create the folder if needed and write a nameless temporary file in it; None when that worked."""
    path = folder.path
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except (FileExistsError, NotADirectoryError) as error:
        blocking = next((part for part in (path, *path.parents) if part.exists() and not part.is_dir()), path)
        return Unwritable(path, f"{blocking} is a file, not a folder", error.errno, folder.setting)
    except OSError as error:
        return Unwritable(path, error.strerror or str(error), error.errno, folder.setting)
    return None


def unwritable_folders(folders: list[Folder]) -> list[Unwritable]:
    """Every folder that cannot be written (each tried; below a folder that failed, nothing more is tried)."""
    problems: list[Unwritable] = []
    for folder in folders:
        if any(folder.path.is_relative_to(problem.path) for problem in problems):
            continue
        problem = try_writing(folder)
        if problem is not None:
            problems.append(problem)
    return problems


def describe(problems: list[Unwritable], *, uid: int, gid: int, in_docker: bool) -> str:
    """One line: which folders cannot be written, why, and the command that fixes it."""
    listed = ", ".join(f"{problem.path} ({problem.reason})" for problem in problems)
    head = f"the bot (uid {uid}) cannot write {listed}"
    settings = " and ".join(dict.fromkeys(problem.setting for problem in problems))
    denied = all(problem.errno in (errno.EACCES, errno.EPERM) for problem in problems)
    if in_docker and denied:
        return (
            f"{head}. On the host, in the folder with compose.yaml, run: sudo chown -R {uid}:{gid} "
            f"{' '.join(DOCKER_VOLUMES)} && docker compose restart"
        )
    if denied:
        paths = shlex.join(str(problem.path) for problem in problems)
        return (
            f"{head}. Run: sudo mkdir -p {paths} && sudo chown -R {uid}:{gid} {paths}, or set {settings} to a folder "
            "this user can write"
        )
    if any(problem.errno == errno.EROFS for problem in problems):
        return f"{head}. It is on a read-only file system: mount it read-write, or set {settings} to a writable folder"
    return f"{head}. Set {settings} to a folder this user can write"


def check_folders(settings: Settings) -> str | None:
    """None when every folder the bot writes takes a file; else the one line that says what to do."""
    problems = unwritable_folders(folders_to_write(settings))
    if not problems:
        return None
    in_docker = os.environ.get(DOCKER_VARIABLE, "") not in ("", "0")
    return describe(problems, uid=os.getuid(), gid=os.getgid(), in_docker=in_docker)
