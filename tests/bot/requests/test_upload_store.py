"""Stored uploads: staging commits or discards, the same content is one file, old uploads and stale staged files
expire while kept ones stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PIL import Image

from bot.requests.upload_store import STAGING_DIR, expire_uploads, expired_uploads, stage_upload
from bot.requests.uploads import CheckedImage, check_upload
from tests.bot.requests.test_uploads import BAD, encode, files_under

HOUR = 3600.0


def test_stored_by_content_inside_the_folder(tmp_path: Path) -> None:
    """The stored name comes from the content with the right extension; the same image is stored once."""
    checked = check_upload((BAD / "palette.png").read_bytes())
    first = stage_upload(checked, tmp_path / "uploads").commit()
    second = stage_upload(checked, tmp_path / "uploads").commit()
    assert first == second == (tmp_path / "uploads").resolve() / f"{checked.sha256[:32]}.webp"
    assert first.read_bytes() == checked.data
    assert files_under(tmp_path / "uploads") == [first]


# --- staging ----------------------------------------------------------------------------------------------------


def checked_png(colour: str = "red") -> CheckedImage:
    return check_upload(encode(Image.new("RGB", (48, 48), colour), "PNG"))


def test_staged_upload_is_invisible_until_committed(tmp_path: Path) -> None:
    """The final path is known at once, but the file appears there only on commit; commit twice is fine."""
    uploads = tmp_path / "uploads"
    checked = checked_png()
    staged = stage_upload(checked, uploads)
    assert staged.path == uploads.resolve() / checked.name
    assert not staged.path.exists()
    assert staged.staging_path.parent == uploads.resolve() / STAGING_DIR
    assert staged.staging_path.read_bytes() == checked.data
    assert staged.commit() == staged.path
    assert staged.path.read_bytes() == checked.data
    assert not staged.staging_path.exists()
    assert staged.commit() == staged.path
    staged.discard()  # after a commit, discard does nothing
    assert files_under(uploads) == [staged.path]


def test_discard_leaves_nothing(tmp_path: Path) -> None:
    """A refused request discards its staged upload: the folder holds no file; commit afterwards is an error."""
    uploads = tmp_path / "uploads"
    staged = stage_upload(checked_png(), uploads)
    staged.discard()
    staged.discard()
    assert files_under(uploads) == []
    with pytest.raises(RuntimeError, match="discarded"):
        staged.commit()


def test_context_manager_discards_what_was_not_committed(tmp_path: Path) -> None:
    """Leaving the block by an error discards the staged file."""
    uploads = tmp_path / "uploads"
    with pytest.raises(KeyError), stage_upload(checked_png(), uploads):
        raise KeyError("refused")
    assert files_under(uploads) == []


def test_same_content_committed_twice_is_one_file_with_a_fresh_time(tmp_path: Path) -> None:
    """Two jobs with the same image: both commits succeed, one file remains, and its time is renewed."""
    uploads = tmp_path / "uploads"
    first, second = stage_upload(checked_png(), uploads), stage_upload(checked_png(), uploads)
    assert first.path == second.path and first.staging_path != second.staging_path
    first.commit()
    os.utime(first.path, (time.time() - 100 * HOUR,) * 2)
    second.commit()
    assert time.time() - first.path.stat().st_mtime < HOUR
    assert files_under(uploads) == [first.path]


def test_commit_puts_back_an_upload_that_expired_meanwhile(tmp_path: Path) -> None:
    """If expiry removed the old copy between staging and commit, the commit brings the file back."""
    uploads = tmp_path / "uploads"
    stage_upload(checked_png(), uploads).commit()
    staged = stage_upload(checked_png(), uploads)
    staged.path.unlink()
    assert staged.commit().read_bytes() == checked_png().data


# --- expiry -----------------------------------------------------------------------------------------------------


def write_aged(path: Path, age_s: float, now: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (now - age_s, now - age_s))
    return path


def test_expired_uploads_lists_old_files_and_stale_staging_only(tmp_path: Path) -> None:
    """Old uploads and staged files older than an hour go; recent ones, kept ones and foreign files stay."""
    now = time.time()
    uploads = tmp_path / "uploads"
    old = write_aged(uploads / f"{'a' * 32}.jpg", 200 * HOUR, now)
    old_webp = write_aged(uploads / f"{'b' * 32}.webp", 169 * HOUR, now)
    kept = write_aged(uploads / f"{'c' * 32}.png", 500 * HOUR, now)
    recent = write_aged(uploads / f"{'d' * 32}.png", 167 * HOUR, now)
    foreign = write_aged(uploads / "notes.txt", 900 * HOUR, now)
    stale = write_aged(uploads / STAGING_DIR / "1234.tmp", 2 * HOUR, now)
    fresh = write_aged(uploads / STAGING_DIR / "5678.tmp", 0.5 * HOUR, now)
    keep = {Path(os.path.relpath(kept))}  # however a job spelled the path, it is the same file
    listed = expired_uploads(uploads, keep=keep, older_than_s=168 * HOUR, now=now)
    assert listed == sorted([old, old_webp, stale])
    assert expire_uploads(uploads, keep=keep, older_than_s=168 * HOUR, now=now) == listed
    assert sorted(files_under(uploads)) == sorted([kept, recent, foreign, fresh])
    assert expire_uploads(uploads, keep=keep, older_than_s=168 * HOUR, now=now) == []


def test_expiry_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    """Before the first upload there is nothing to expire."""
    assert expired_uploads(tmp_path / "uploads", keep=set(), older_than_s=HOUR, now=time.time()) == []
