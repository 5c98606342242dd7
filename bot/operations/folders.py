"""The folders the bot writes, tried for real before it starts serving (and before ``models pull`` writes).

A folder the bot cannot write otherwise fails much later and far from its cause: the first upload, the first
image, the first model download. The usual cause is Docker creating a missing bind-mounted folder as root while
the container runs as uid 1000. Permission bits say nothing about what root (or a read-only mount) allows, so
each folder is created if missing and a nameless temporary file is written in it. When that fails, the folder
where it failed is looked at (its owner, its permission bits, its file system) so the advice fits the cause:
``chown`` for a folder another user owns, ``chmod u+w`` for the bot's own folder without write permission,
remounting for a read-only file system, another place for a kernel file system (``/proc``, ``/sys``) or a file.
"""

from __future__ import annotations

import errno
import os
import shlex
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from config.settings import Settings

DOCKER_VARIABLE = "IMAGINEBOT_DOCKER"
"""Set by the project's Docker image: the fix is then a ``chown`` of the compose volumes on the host."""
DOCKER_VOLUMES = ("./data", "./models")
"""The host folders compose.yaml mounts for data and models (with the Hugging Face cache)."""


def in_docker() -> bool:
    """Whether the bot runs in its Docker image (the image sets :data:`DOCKER_VARIABLE`)."""
    return os.environ.get(DOCKER_VARIABLE, "") not in ("", "0")


DATA_SETTING = "data_dir (IMAGINE_DATA_DIR)"
DATABASE_SETTING = "database_path (IMAGINE_DATABASE_PATH)"
CACHE_SETTING = "HF_HOME"


@dataclass(frozen=True)
class Folder:
    """A folder the bot writes, and the setting that moves it."""

    path: Path
    setting: str


SPECIAL_FILESYSTEMS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "securityfs",
        "selinuxfs",
        "sysfs",
        "tracefs",
    }
)
"""Kernel file systems: no permission or ownership change lets them hold the bot's files."""
MOUNTINFO = Path("/proc/self/mountinfo")


class Cause(StrEnum):
    """Why a folder cannot be written, as far as the fix goes."""

    FILE = "file"
    """A regular file stands where the folder (or a folder above it) must be."""
    READ_ONLY = "read_only"
    """The folder is on a read-only file system (EROFS)."""
    SPECIAL = "special"
    """A kernel file system (/proc, /sys), or the system refuses the operation itself (EPERM): no file goes there."""
    NO_WRITE_BIT = "no_write_bit"
    """The bot's own user owns the folder, but it lacks the owner's write permission (mode 555)."""
    OWNER = "owner"
    """Another user owns the folder (the Docker case: created by root, the bot runs as uid 1000)."""
    OTHER = "other"


@dataclass(frozen=True)
class Unwritable:
    """A folder the bot must write and cannot, the system's reason, and the setting that moves it."""

    path: Path
    reason: str
    errno: int | None
    setting: str
    blocking: Path | None = None
    """The existing folder where writing failed: ``path`` itself, or the closest existing folder above it."""
    owner: int | None = None
    """The uid that owns ``blocking`` (None: unknown)."""
    mode: int | None = None
    """The permission bits of ``blocking`` (None: unknown)."""
    filesystem: str = ""
    """The file system type of ``blocking`` (``ext4``, ``sysfs`` …; empty when unknown)."""


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
        return Unwritable(path, f"{blocking} is a file, not a folder", error.errno, folder.setting, blocking)
    except OSError as error:
        return _unwritable(folder, error)
    return None


def _unwritable(folder: Folder, error: OSError) -> Unwritable:
    """The failure with what the folder where it happened says about its cause (owner, mode, file system)."""
    path = folder.path
    reason = error.strerror or str(error)
    blocking = next((part for part in (path, *path.parents) if part.exists()), None)
    if blocking is None:
        return Unwritable(path, reason, error.errno, folder.setting)
    try:
        info = blocking.stat()
    except OSError:
        return Unwritable(path, reason, error.errno, folder.setting, blocking, filesystem=filesystem_type(blocking))
    return Unwritable(
        path,
        reason,
        error.errno,
        folder.setting,
        blocking,
        owner=info.st_uid,
        mode=stat.S_IMODE(info.st_mode),
        filesystem=filesystem_type(blocking),
    )


def filesystem_type(path: Path, mountinfo: Path = MOUNTINFO) -> str:
    """The type of the file system ``path`` is on, from the mount table (the longest mount point above it); empty
    where there is no mount table to read."""
    try:
        lines = mountinfo.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    target = os.path.realpath(path)
    best, kind = "", ""
    for line in lines:
        fields = line.split()
        if "-" not in fields or len(fields) < 5:
            continue
        mount_point = fields[4].encode().decode("unicode_escape")  # spaces are written as \040
        after = fields.index("-") + 1
        if after >= len(fields):
            continue
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fields[after]
    return kind


def cause_of(problem: Unwritable, uid: int) -> Cause:
    """Why ``problem`` happened, for the user ``uid`` the bot runs as: what decides which fix to suggest."""
    if problem.errno in (errno.ENOTDIR, errno.EEXIST):
        return Cause.FILE
    if problem.errno == errno.EROFS:
        return Cause.READ_ONLY
    if problem.filesystem in SPECIAL_FILESYSTEMS or problem.errno == errno.EPERM:
        return Cause.SPECIAL
    if problem.errno == errno.EACCES:
        if problem.owner is None or problem.owner != uid:
            return Cause.OWNER
        if problem.mode is not None and not problem.mode & stat.S_IWUSR:
            return Cause.NO_WRITE_BIT
    return Cause.OTHER


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
    """One line: which folders cannot be written, why, and the command that fixes each cause."""
    listed = ", ".join(f"{problem.path} ({problem.reason})" for problem in problems)
    head = f"the bot (uid {uid}) cannot write {listed}"
    by_cause: dict[Cause, list[Unwritable]] = {}
    for problem in problems:
        by_cause.setdefault(cause_of(problem, uid), []).append(problem)
    fixes = [_fix(cause, grouped, uid=uid, gid=gid, in_docker=in_docker) for cause, grouped in by_cause.items()]
    return f"{head}. {'; '.join([fixes[0], *(fix[0].lower() + fix[1:] for fix in fixes[1:])])}"


def _fix(cause: Cause, problems: list[Unwritable], *, uid: int, gid: int, in_docker: bool) -> str:
    """What to do about the folders that share one cause."""
    settings = " and ".join(dict.fromkeys(problem.setting for problem in problems))
    paths = shlex.join(str(problem.path) for problem in problems)
    blocking = shlex.join(dict.fromkeys(str(problem.blocking or problem.path) for problem in problems))
    if cause is Cause.OWNER and in_docker:
        return (
            f"On the host, in the folder with compose.yaml, run: sudo chown -R {uid}:{gid} "
            f"{' '.join(DOCKER_VOLUMES)} && docker compose restart"
        )
    if cause is Cause.OWNER:
        return (
            f"Run: sudo mkdir -p {paths} && sudo chown -R {uid}:{gid} {paths}, or set {settings} to a folder "
            "this user can write"
        )
    if cause is Cause.NO_WRITE_BIT and in_docker:
        return (
            f"The folder belongs to uid {uid} but has no write permission. On the host, in the folder with "
            f"compose.yaml, run: chmod -R u+w {' '.join(DOCKER_VOLUMES)} && docker compose restart"
        )
    if cause is Cause.NO_WRITE_BIT:
        return (
            f"{blocking} belongs to this user but has no write permission. Run: chmod -R u+w {blocking}, or set "
            f"{settings} to a folder this user can write"
        )
    if cause is Cause.READ_ONLY:
        return f"It is on a read-only file system: mount it read-write, or set {settings} to a writable folder"
    if cause is Cause.SPECIAL:
        kinds = sorted({problem.filesystem for problem in problems if problem.filesystem in SPECIAL_FILESYSTEMS})
        what = f"a {' and '.join(kinds)} file system" if kinds else "a place where the system permits no files"
        return f"{blocking} is {what}, which cannot hold the bot's files: set {settings} to another folder"
    return f"Set {settings} to a folder this user can write"


def check_folders(settings: Settings) -> str | None:
    """None when every folder the bot writes takes a file; else the one line that says what to do."""
    return check_these(folders_to_write(settings))


def model_folders(settings: Settings, kind: str) -> list[Folder]:
    """The folders ``models pull`` writes for a source of ``kind``: the models folder (a tiny model is built
    there) or the Hugging Face cache (a hub model is downloaded there); none for a local source."""
    if kind == "tiny":
        return [Folder(settings.models_dir.expanduser(), DATA_SETTING)]
    if kind == "hub":
        return [folder for folder in folders_to_write(settings) if folder.setting == CACHE_SETTING]
    return []


def check_model_folders(settings: Settings, kind: str) -> str | None:
    """:func:`check_folders` for the folders ``models pull`` writes for a source of ``kind``."""
    return check_these(model_folders(settings, kind))


def check_these(folders: Iterable[Folder]) -> str | None:
    """None when each folder takes a file; else one line naming them, why, and what to run."""
    problems = unwritable_folders(list(folders))
    if not problems:
        return None
    return describe(problems, uid=os.getuid(), gid=os.getgid(), in_docker=in_docker())
