"""Storing checked uploads on disk: staged first, committed once the job is admitted, expired when unused.

Uploads live under ``data/uploads/<content hash>.<ext>`` (see :class:`bot.requests.uploads.CheckedImage`). Storing is
two-phase so a refused request leaves nothing behind: :func:`stage_upload` writes the bytes under
``uploads/.staging/`` (a thread may do it), :meth:`StagedUpload.commit` moves them into place with one
``os.replace`` once the job is admitted, :meth:`StagedUpload.discard` drops them otherwise. :func:`expire_uploads`
deletes uploads unused for the retention period (the maintenance job calls it). The member's file name never
reaches the file system.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bot.requests.uploads import CheckedImage, UploadError

log = logging.getLogger(__name__)

STAGING_DIR = ".staging"
STAGING_MAX_AGE_S = 3600.0
"""A staged upload older than this was neither committed nor discarded (a crash): expiry removes it."""
UPLOAD_NAME = re.compile(r"[0-9a-f]{32}\.(?:jpg|png|webp)")


@dataclass
class StagedUpload:
    """Checked bytes written under ``uploads/.staging``. ``path`` is where :meth:`commit` puts them (known before,
    so it can go into the job's params); :meth:`discard` drops them. As a context manager it discards whatever
    was not committed when the block ends."""

    path: Path
    staging_path: Path
    committed: bool = field(default=False, init=False)
    discarded: bool = field(default=False, init=False)

    def commit(self) -> Path:
        """Move the file into place with one ``os.replace`` (fast, sync; idempotent when the same content is
        already there). Raises UploadError when the staged file vanished and no copy is in place."""
        if self.discarded:
            raise RuntimeError(f"{self.staging_path.name} was discarded; stage the upload again")
        if self.committed:
            return self.path
        try:
            os.replace(self.staging_path, self.path)
        except FileNotFoundError:
            if not self.path.is_file():
                raise UploadError(
                    "the uploaded image was cleaned up before the job was queued; upload it again"
                ) from None
            os.utime(self.path)
        self.committed = True
        return self.path

    def discard(self) -> None:
        """Delete the staged file (nothing happens after a commit or a second discard)."""
        if self.committed or self.discarded:
            return
        self.discarded = True
        self.staging_path.unlink(missing_ok=True)

    def __enter__(self) -> StagedUpload:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.discard()


def stage_upload(checked: CheckedImage, uploads_dir: Path) -> StagedUpload:
    """Write ``checked`` to ``uploads_dir/.staging/<random>.tmp`` (flushed to disk); sync, run it in a thread.
    The final path is ``uploads_dir/<hash>.<ext>`` (absolute)."""
    uploads_dir = uploads_dir.resolve()
    staging = uploads_dir / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    temporary = staging / f"{secrets.token_hex(16)}.tmp"
    try:
        with temporary.open("xb") as handle:
            handle.write(checked.data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return StagedUpload(path=uploads_dir / checked.name, staging_path=temporary)


# --- expiry -----------------------------------------------------------------------------------------------------


def expired_uploads(
    uploads_dir: Path,
    *,
    keep: Collection[Path],
    older_than_s: float,
    now: float,
    staging_older_than_s: float = STAGING_MAX_AGE_S,
) -> list[Path]:
    """Stored uploads last written more than ``older_than_s`` before ``now`` and staged files older than
    ``staging_older_than_s``, never a path in ``keep``. Only files named the way this module names them count."""
    kept = {_resolved(path) for path in keep}
    found = [
        path
        for path, mtime in _files(uploads_dir)
        if UPLOAD_NAME.fullmatch(path.name) and mtime < now - older_than_s and _resolved(path) not in kept
    ]
    found += [
        path
        for path, mtime in _files(uploads_dir / STAGING_DIR)
        if path.name.endswith(".tmp") and mtime < now - staging_older_than_s
    ]
    return sorted(found)


def expire_uploads(uploads_dir: Path, *, keep: Collection[Path], older_than_s: float, now: float) -> list[Path]:
    """Delete what :func:`expired_uploads` lists and return what was deleted. Each file's age is checked again
    just before it goes, so an upload committed again meanwhile (a new job, the same image) stays."""
    removed = []
    for path in expired_uploads(uploads_dir, keep=keep, older_than_s=older_than_s, now=now):
        limit = STAGING_MAX_AGE_S if path.parent.name == STAGING_DIR else older_than_s
        try:
            if path.stat().st_mtime >= now - limit:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            log.warning("could not delete the expired upload %s: %s", path.name, error.strerror)
            continue
        removed.append(path)
    return removed


def _files(folder: Path) -> list[tuple[Path, float]]:
    """Regular files directly in ``folder`` with their modification times; none when the folder is missing."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = []
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                files.append((Path(entry.path), entry.stat(follow_symlinks=False).st_mtime))
        except FileNotFoundError:
            continue
    return files


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))
