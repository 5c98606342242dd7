"""A LoRA file or a local model folder that is not there, and a folder a pull must write that cannot be written:
refused through ``python -m bot`` in one line that says what is wrong and what to change, exit 2, before anything
is charged, any database is created or any engine starts."""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import pytest

from bot.operations.cli import main
from bot.operations.folders import DATA_SETTING, Unwritable, describe, filesystem_type
from tests.bot.operations.test_cli import FAKE_TOKEN, run_cli

pytestmark = pytest.mark.usefixtures("in_process_cli")  # bot.operations.cli.main runs here: see tests/conftest.py

SETPRIV = shutil.which("setpriv")

MISSING_TOML = """\
model = "{default}"
[models.x]
source = "./models/nope"
[loras.pixel]
path = "./models/loras/pixel-art.safetensors"
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A server folder whose config/bot.toml names a missing model folder and a missing LoRA file (relative paths,
    as the README writes them); the working folder, so the relative paths resolve there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGINE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _config(folder: Path, monkeypatch: pytest.MonkeyPatch, default: str = "tiny") -> Path:
    toml = folder / "bot.toml"
    toml.write_text(MISSING_TOML.format(default=default))
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    return toml


def _one_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """The single ``error:`` line of a command that exited 2, with no traceback."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def test_generate_refuses_a_lora_whose_file_is_missing(
    capsys: pytest.CaptureFixture[str], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console is told which file is missing and which setting to fix; nothing is queued or charged."""
    toml = _config(folder, monkeypatch)
    line = _one_error(capsys, main(["generate", "a castle <lora:pixel:0.8>"]))
    assert line == (
        "error: LoRA pixel cannot be used: the file ./models/loras/pixel-art.safetensors does not exist; "
        f"fix [loras.pixel] path in {toml}"
    )
    assert not (folder / "data" / "imagine.db").exists()


def test_generate_refuses_a_sweep_prompt_with_a_missing_lora(
    capsys: pytest.CaptureFixture[str], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LoRA that only a sweep's prompt axis brings in is checked the same way."""
    _config(folder, monkeypatch)
    line = _one_error(capsys, main(["generate", "a castle", "--sweep", "prompt=castle,castle <lora:pixel:1>"]))
    assert "LoRA pixel cannot be used: the file ./models/loras/pixel-art.safetensors does not exist" in line


@pytest.mark.parametrize("default", ["tiny", "x"], ids=["named", "default"])
def test_generate_refuses_a_model_whose_folder_is_missing(
    capsys: pytest.CaptureFixture[str], folder: Path, monkeypatch: pytest.MonkeyPatch, default: str
) -> None:
    """``--model x`` (or x as the default model): what is wrong with the folder, never ``models pull``."""
    toml = _config(folder, monkeypatch, default)
    args = ["generate", "a fox"] if default == "x" else ["generate", "a fox", "--model", "x"]
    line = _one_error(capsys, main(args))
    assert line == f"error: model `x` cannot be used: ./models/nope is not a folder; fix [models.x] source in {toml}"
    assert not (folder / "data" / "imagine.db").exists()


def test_models_pull_of_a_missing_local_folder_says_what_is_wrong(
    capsys: pytest.CaptureFixture[str], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """There is nothing to download for a local folder: exit 2 (the files or the configuration must change)."""
    toml = _config(folder, monkeypatch)
    line = _one_error(capsys, main(["models", "pull", "x"]))
    assert line == (
        f"error: model x: ./models/nope is not a folder; fix [models.x] source in {toml} "
        "(a local source: there is nothing to download)"
    )


def test_models_list_shows_a_missing_local_model_as_not_usable(
    capsys: pytest.CaptureFixture[str], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """x is offered to members in the configuration, but listed as not usable, with the reason."""
    _config(folder, monkeypatch)
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if re.match(r"^\s*\*?\s*x\s", line)]
    cells = re.split(r"\s{2,}", row.strip())
    assert cells[:4] == ["x", "sd15", "not usable", "no: ./models/nope is not a folder"]
    assert "models pull x" not in out


def test_run_refuses_a_default_model_whose_folder_is_missing(tmp_path: Path) -> None:
    """``model = "x"`` with x's folder missing: ``run`` stops before Discord with one configuration line, exit 2."""
    toml = tmp_path / "bot.toml"
    toml.write_text(MISSING_TOML.format(default="x"))
    env = {"IMAGINE_CONFIG": str(toml), "IMAGINE_DISCORD_TOKEN": FAKE_TOKEN, "IMAGINE_DATA_DIR": str(tmp_path / "d")}
    completed = run_cli("run", cwd=tmp_path, env=env, timeout=60)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.splitlines() == [
        f"error: the default model `x` cannot be used: ./models/nope is not a folder; fix [models.x] source in "
        f"{toml}, or set model to another model"
    ]


def test_models_pull_refuses_a_models_folder_under_a_file(
    capsys: pytest.CaptureFixture[str], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data folder lies under a regular file: the same one-line advice as ``run``, exit 2, nothing spawned."""
    (folder / "afile").write_text("not a folder")
    monkeypatch.setenv("IMAGINE_DATA_DIR", str(folder / "afile" / "data"))
    line = _one_error(capsys, main(["models", "pull", "tiny"]))
    assert line == (
        f"error: the bot (uid {os.getuid()}) cannot write {folder}/afile/data/models ({folder}/afile is a file, "
        f"not a folder). Set {DATA_SETTING} to a folder this user can write"
    )


def test_models_pull_refuses_an_unwritable_hugging_face_cache(tmp_path: Path) -> None:
    """A hub model is downloaded into the Hugging Face cache: an HF_HOME that cannot be written is exit 2 first."""
    (tmp_path / "afile").write_text("not a folder")
    env = {"HF_HOME": str(tmp_path / "afile" / "hf"), "IMAGINE_DATA_DIR": str(tmp_path / "data")}
    completed = run_cli("models", "pull", "sd15", cwd=tmp_path, env=env, timeout=60)
    assert completed.returncode == 2, completed.stderr
    (line,) = completed.stderr.splitlines()
    assert f"cannot write {tmp_path}/afile/hf ({tmp_path}/afile is a file, not a folder)" in line
    assert line.endswith("Set HF_HOME to a folder this user can write")


# --- the advice fits the cause ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("problems", "expected"),
    [
        (
            [
                Unwritable(
                    Path("/srv/data"), "Permission denied", errno.EACCES, DATA_SETTING, Path("/srv/data"), 1000, 0o555
                )
            ],
            "the bot (uid 1000) cannot write /srv/data (Permission denied). /srv/data belongs to this user but has no "
            f"write permission. Run: chmod -R u+w /srv/data, or set {DATA_SETTING} to a folder this user can write",
        ),
        (
            [
                Unwritable(
                    Path("/sys/x"),
                    "Operation not permitted",
                    errno.EPERM,
                    DATA_SETTING,
                    Path("/sys"),
                    0,
                    0o555,
                    "sysfs",
                )
            ],
            "the bot (uid 1000) cannot write /sys/x (Operation not permitted). /sys is a sysfs file system, which "
            f"cannot hold the bot's files: set {DATA_SETTING} to another folder",
        ),
        (
            [
                Unwritable(
                    Path("/srv/data"), "Permission denied", errno.EACCES, DATA_SETTING, Path("/srv"), 1000, 0o500
                ),
                Unwritable(
                    Path("/ro/hf"), "Read-only file system", errno.EROFS, "HF_HOME", Path("/ro/hf"), 1000, 0o755
                ),
            ],
            "the bot (uid 1000) cannot write /srv/data (Permission denied), /ro/hf (Read-only file system). /srv "
            f"belongs to this user but has no write permission. Run: chmod -R u+w /srv, or set {DATA_SETTING} to a "
            "folder this user can write; it is on a read-only file system: mount it read-write, or set HF_HOME to a "
            "writable folder",
        ),
    ],
    ids=["own-folder-mode-555", "sysfs", "mixed"],
)
def test_the_advice_fits_the_cause(problems: list[Unwritable], expected: str) -> None:
    """Own folder without write bit: chmod u+w (not chown); kernel file system: another folder; several causes:
    each its fix."""
    assert describe(problems, uid=1000, gid=1000, in_docker=False) == expected


def test_docker_own_volume_without_write_bit_says_chmod() -> None:
    """In Docker the volumes are fixed on the host: chmod them, not chown (uid 1000 already owns them)."""
    problem = Unwritable(
        Path("/app/data"), "Permission denied", errno.EACCES, DATA_SETTING, Path("/app/data"), 1000, 0o555
    )
    line = describe([problem], uid=1000, gid=1000, in_docker=True)
    assert "chmod -R u+w ./data ./models && docker compose restart" in line
    assert "chown" not in line


@pytest.mark.skipif(filesystem_type(Path("/sys")) != "sysfs", reason="needs /sys mounted as sysfs")
def test_run_with_data_under_sys_says_choose_another_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/sys cannot hold files whoever owns it: no chown or chmod advice, just another folder."""
    monkeypatch.setenv("IMAGINE_MODEL", "tiny")
    monkeypatch.setenv("IMAGINE_DISCORD_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("IMAGINE_DATA_DIR", "/sys/imaginebot-data")
    line = _one_error(capsys, main(["run"]))
    assert "cannot write /sys/imaginebot-data" in line
    assert line.endswith(
        f"/sys is a sysfs file system, which cannot hold the bot's files: set {DATA_SETTING} to another folder"
    )
    assert "chown" not in line and "chmod" not in line
