"""``run`` tries every folder it must write before it starts: one line and exit 2 when one cannot be written."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.operations.folders import DATA_SETTING, Folder, Unwritable, describe, folders_to_write, unwritable_folders
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[3]
FAKE_TOKEN = "ODk5.fake-token-for-tests." + "x" * 27
SETPRIV = shutil.which("setpriv")
UNSHARE = shutil.which("unshare")


def _environment(base: Path, **extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGINE", "HF_"))}
    environment.update(
        {
            "PYTHONPATH": str(ROOT),
            "HF_HUB_OFFLINE": "1",
            "HOME": str(base),
            "HF_HOME": str(base / "hf"),
            "IMAGINE_CONFIG": os.devnull,
            "IMAGINE_DISCORD_TOKEN": FAKE_TOKEN,
            "IMAGINE_DATA_DIR": str(base / "data"),
        }
    )
    environment.update(extra)
    return environment


def _run(base: Path, environment: dict[str, str], prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "bot", "run"],
        cwd=base,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder every user may enter (pytest's own temporary folders are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="imaginebot-folders-"))
    folder.chmod(0o755)
    yield folder
    for path in (folder, *folder.rglob("*")):  # a test may leave a read-only folder behind
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_file_in_the_data_path_stops_run(base: Path) -> None:
    """The data folder lies under a regular file: exit 2 before Discord, one line naming the file and the setting."""
    (base / "taken").write_text("not a folder", encoding="utf-8")
    completed = _run(base, _environment(base, IMAGINE_DATA_DIR=str(base / "taken" / "data")))
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.splitlines()
    assert lines == [
        f"error: the bot (uid {os.getuid()}) cannot write {base}/taken/data ({base}/taken is a file, not a folder). "
        f"Set {DATA_SETTING} to a folder this user can write"
    ]


def test_an_unwritable_hugging_face_cache_stops_run(base: Path) -> None:
    """The model download folder is checked as well, and HF_HOME is named."""
    (base / "taken").write_text("not a folder", encoding="utf-8")
    completed = _run(base, _environment(base, HF_HOME=str(base / "taken" / "hf")))
    assert completed.returncode == 2, completed.stderr
    assert len(completed.stderr.splitlines()) == 1
    assert f"cannot write {base}/taken/hf" in completed.stderr and "Set HF_HOME to a folder" in completed.stderr
    assert (base / "data" / "uploads").is_dir() and (base / "data" / "images").is_dir()  # the rest was fine


def _setpriv_works() -> bool:
    if SETPRIV is None or os.getuid() != 0:
        return False
    probe = subprocess.run(
        [SETPRIV, "--reuid", "1000", "--regid", "1000", "--clear-groups", sys.executable, "-c", "import pydantic"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _setpriv_works(), reason="needs root and setpriv to run the bot as uid 1000")
@pytest.mark.parametrize(
    ("docker", "expected"),
    [
        (True, "On the host, in the folder with compose.yaml, run: sudo chown -R 1000:1000 ./data ./models"),
        (False, "Run: sudo mkdir -p {data} {hf} && sudo chown -R 1000:1000 {data} {hf}"),
    ],
    ids=["docker", "pip"],
)
def test_uid_1000_facing_root_owned_volumes(base: Path, docker: bool, expected: str) -> None:
    """The Docker case for real: uid 1000 and folders root created; the line says exactly what to run."""
    (base / "data").mkdir()
    (base / "models").mkdir()
    environment = _environment(base, HF_HOME=str(base / "models" / "huggingface"))
    if docker:
        environment["IMAGINEBOT_DOCKER"] = "1"
    completed = _run(base, environment, prefix=(str(SETPRIV), "--reuid", "1000", "--regid", "1000", "--clear-groups"))
    assert completed.returncode == 2, completed.stderr
    (line,) = completed.stderr.splitlines()
    assert f"the bot (uid 1000) cannot write {base}/data (Permission denied), " in line
    assert f"{base}/models/huggingface (Permission denied)" in line
    assert expected.format(data=base / "data", hf=base / "models" / "huggingface") in line


@pytest.mark.skipif(not _setpriv_works(), reason="needs root and setpriv to run the bot as uid 1000")
def test_uid_1000_facing_its_own_read_only_folder(base: Path) -> None:
    """The data folder belongs to uid 1000 with mode 555: chown changes nothing, so the line says chmod u+w."""
    data = base / "data"
    data.mkdir()
    os.chown(data, 1000, 1000)
    data.chmod(0o555)
    environment = _environment(base, IMAGINE_DATA_DIR=str(data), IMAGINE_MODEL="tiny")
    os.chown(base, 1000, 1000)  # so the Hugging Face cache can be created beside it
    completed = _run(base, environment, prefix=(str(SETPRIV), "--reuid", "1000", "--regid", "1000", "--clear-groups"))
    assert completed.returncode == 2, completed.stderr
    (line,) = completed.stderr.splitlines()
    assert f"the bot (uid 1000) cannot write {data} (Permission denied)" in line
    assert f"Run: chmod -R u+w {data}" in line
    assert "chown" not in line


def _unshare_works() -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run([UNSHARE, "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs user and mount namespaces (unshare -rm)")
def test_a_read_only_mount_stops_even_root(base: Path) -> None:
    """Root on a read-only file system (a read-only tmpfs mounted over the data folder) cannot write either."""
    (base / "data").mkdir()
    environment = _environment(base)
    script = f'mount -t tmpfs -o ro tmpfs "{base / "data"}" && exec "{sys.executable}" -m bot run'
    completed = subprocess.run(
        [str(UNSHARE), "-rm", "sh", "-c", script],
        cwd=base,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    (line,) = completed.stderr.splitlines()
    assert f"the bot (uid 0) cannot write {base}/data (Read-only file system)" in line
    assert "It is on a read-only file system: mount it read-write" in line


@pytest.mark.parametrize(
    ("problems", "docker", "expected"),
    [
        (
            [Unwritable(Path("/app/data"), "Permission denied", errno.EACCES, DATA_SETTING)],
            True,
            "the bot (uid 1000) cannot write /app/data (Permission denied). On the host, in the folder with "
            "compose.yaml, run: sudo chown -R 1000:1000 ./data ./models && docker compose restart",
        ),
        (
            [Unwritable(Path("/srv/my data"), "Permission denied", errno.EACCES, DATA_SETTING)],
            False,
            "the bot (uid 1000) cannot write /srv/my data (Permission denied). Run: sudo mkdir -p '/srv/my data' && "
            f"sudo chown -R 1000:1000 '/srv/my data', or set {DATA_SETTING} to a folder this user can write",
        ),
        (
            [Unwritable(Path("/ro/hf"), "Read-only file system", errno.EROFS, "HF_HOME")],
            True,
            "the bot (uid 1000) cannot write /ro/hf (Read-only file system). It is on a read-only file system: "
            "mount it read-write, or set HF_HOME to a writable folder",
        ),
    ],
    ids=["docker-permission", "pip-permission-quoted", "read-only"],
)
def test_the_fix_fits_the_cause(problems: list[Unwritable], docker: bool, expected: str) -> None:
    """Permission in Docker: chown the volumes; permission elsewhere: those paths; read-only: remount or move."""
    assert describe(problems, uid=1000, gid=1000, in_docker=docker) == expected


def test_every_folder_the_bot_writes_is_tried(tmp_path: Path) -> None:
    """Data, uploads, images, models, the database's folder and the Hugging Face cache; all writable here."""
    settings = make_settings(tmp_path / "data", database_path=tmp_path / "db" / "imagine.db")
    folders = [folder.path for folder in folders_to_write(settings)]
    data = tmp_path / "data"
    assert folders[:5] == [data, data / "uploads", data / "images", data / "models", tmp_path / "db"]
    assert len(folders) == 7  # HF_HOME and its hub cache
    assert unwritable_folders([Folder(path, DATA_SETTING) for path in folders[:5]]) == []
    assert all(path.is_dir() for path in folders[:5])
