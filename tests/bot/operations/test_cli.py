"""``python -m bot``: configuration mistakes are explained, ``generate`` renders through a real engine."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.ahead import Command, Interaction, Prepare, Ran, ahead, child_environment

ROOT = Path(__file__).resolve().parents[3]
FAKE_TOKEN = "ODk5.fake-token-for-tests." + "x" * 27


def cli_command(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Command:
    """``python -m bot ARGS`` in ``cwd`` with no IMAGINE_* variable but ``env``'s, offline."""
    return Command([sys.executable, "-m", "bot", *args], cwd, child_environment(**(env or {})), timeout)


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    command = cli_command(*args, cwd=cwd, env=env, timeout=timeout)
    return subprocess.run(
        list(command.args),
        cwd=command.cwd,
        env=dict(command.env),
        capture_output=True,
        text=True,
        timeout=command.timeout,
        check=False,
    )


def one_command(*args: str, env: Callable[[Path], dict[str, str]] | None = None) -> Prepare:
    """The prepare function of a test that runs ``python -m bot ARGS`` once in its folder (see :func:`ahead`),
    with ``env(folder)`` added to the environment."""

    def prepare(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
        return [cli_command(*args, cwd=folder, env=None if env is None else env(folder))]

    return prepare


def _tiny(_folder: Path) -> dict[str, str]:
    return {"IMAGINE_MODEL": "tiny"}


def _tiny_in(folder: Path) -> dict[str, str]:
    return {"IMAGINE_MODEL": "tiny", "IMAGINE_DATA_DIR": str(folder / "data")}


@ahead(one_command("run", env=_tiny))
def test_run_without_token_explains_how_to_get_one(ran: Ran) -> None:
    """No token: exit 2, name the setting and the way to get a token, no traceback."""
    (completed,) = ran.results
    assert completed.returncode == 2
    assert "IMAGINE_DISCORD_TOKEN" in completed.stderr
    assert "Reset Token" in completed.stderr
    assert "Traceback" not in completed.stderr


@ahead(one_command("run", env=lambda _folder: {"IMAGINE_MAX_STEPS": "many", "IMAGINE_DISCORD_TOKEN": "x" * 60}))
def test_bad_setting_is_named_without_traceback(ran: Ran) -> None:
    """A malformed value: exit 2 with the setting's name and the expected form."""
    (completed,) = ran.results
    assert completed.returncode == 2
    assert "max_steps (IMAGINE_MAX_STEPS)" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "x" * 60 not in completed.stderr + completed.stdout


@ahead(one_command("generate", "a fox --steps 0", env=_tiny))
def test_generate_rejects_a_bad_flag_before_rendering(ran: Ran) -> None:
    """A bad flag is reported with its valid form; no engine starts, exit 2."""
    (completed,) = ran.results
    assert completed.returncode == 2
    assert "--steps N with N from 1 to 60" in completed.stderr
    assert "Traceback" not in completed.stderr


GENERATE_OUTPUTS = ("fox.png", "grids/")


def _generate_twice(folder: Path, _params: dict[str, object]) -> list[Command]:
    commands = []
    for attempt, output in enumerate(GENERATE_OUTPUTS):
        workdir = folder / f"run{attempt}"
        (workdir / "grids").mkdir(parents=True)
        commands.append(
            cli_command(
                "generate", "a red fox --ar 3:2 --seed 7", "-o", output, cwd=workdir, env={"IMAGINE_MODEL": "tiny"}
            )
        )
    return commands


@pytest.mark.slow
@ahead(_generate_twice)
def test_generate_renders_the_same_grid_for_the_same_seed(ran: Ran) -> None:
    """Two runs with one seed on fresh data folders give byte-identical grids and print four image paths; -o may
    name a file or a folder (which gets imagine_<job>.png)."""
    digests = []
    for attempt, (output, completed) in enumerate(zip(GENERATE_OUTPUTS, ran.results, strict=True)):
        workdir = ran.folder / f"run{attempt}"
        assert completed.returncode == 0, completed.stderr
        paths = [Path(line) for line in completed.stdout.split()]
        assert len(paths) == 4
        for path in paths:
            resolved = path if path.is_absolute() else workdir / path
            with Image.open(resolved) as image:
                assert image.size == (72, 48)  # exactly 3:2 (was 80x48, 5:3)
                assert "Seed:" in image.info["parameters"]
        grid_path = workdir / "fox.png" if output == "fox.png" else workdir / "grids" / "imagine_1.png"
        with Image.open(grid_path) as grid:
            assert grid.size == (144, 96)
            assert grid.info["parameters"].startswith("a red fox\nSteps: 4, Sampler: Euler a, CFG scale: 5, Seed: 7")
        digests.append(hashlib.sha256(grid_path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def _generate_sweep(folder: Path, _params: dict[str, object]) -> list[Command]:
    Image.new("RGB", (64, 64), "red").save(folder / "in.png")
    Image.new("L", (64, 64), 255).save(folder / "mask.png")
    generate = cli_command(
        "generate",
        "a red fox --seed 7",
        "--image",
        "in.png",
        "--mask",
        "mask.png",
        "--sweep",
        "strength=0.5,1",
        "--sweep",
        "cfg=3,5",
        "-o",
        "sweep.png",
        cwd=folder,
        env={"IMAGINE_MODEL": "tiny"},
    )
    return [generate]


@pytest.mark.slow
@ahead(_generate_sweep)
def test_generate_with_image_mask_and_sweep_flags(ran: Ran) -> None:
    """--image/--mask inpaint and --sweep run from the shell; the sweep's grid is the labelled one."""
    (completed,) = ran.results
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.split()) == 4
    with Image.open(ran.folder / "sweep.png") as grid:
        assert grid.width == 2 * 64


@ahead(
    one_command(
        "doctor",
        "--no-probe",
        env=lambda folder: {"IMAGINE_MODEL": "tiny", "IMAGINE_MODELS__MINE__SOURCE": str(folder / "missing-folder")},
    )
)
def test_doctor_without_probe_lists_models_and_problems(ran: Ran) -> None:
    (completed,) = ran.results
    assert completed.returncode == 1
    assert "model tiny (sd15, tiny: tiny:sd15, members): ok" in completed.stdout
    assert "model mine:" in completed.stdout and "is not a folder" in completed.stdout


def _doctor(folder: Path, _params: dict[str, object]) -> list[Command]:
    return [cli_command("doctor", cwd=folder, env={"IMAGINE_MODEL": "tiny", "IMAGINE_DISCORD_TOKEN": FAKE_TOKEN})]


@pytest.mark.slow
@ahead(_doctor)
def test_doctor_probes_the_engine(ran: Ran) -> None:
    (completed,) = ran.results
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "device: cpu" in completed.stdout
    assert "speed (model tiny on cpu): fp32, sdpa" in completed.stdout
    assert "no problems found" in completed.stdout


def _owner_credit_commands(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    env = _tiny_in(folder)
    return [
        cli_command("credits", "grant", "42", "50", "--reason", "launch gift", cwd=folder, env=env),
        cli_command("credits", "take", "42", "500", "--reason", "oops", cwd=folder, env=env),
        cli_command("tier", "set", "42", "supporter", cwd=folder, env=env),
        cli_command("credits", "show", "42", cwd=folder, env=env),
    ]


@ahead(_owner_credit_commands)
def test_owner_credit_commands(ran: Ran) -> None:
    """credits grant/take/set/show and tier set go through the ledger with the console as actor."""
    granted, refused, tier, shown = ran.results
    assert granted.returncode == 0 and "balance 150" in granted.stdout
    assert refused.returncode == 1 and "cannot take 500" in refused.stderr
    assert tier.returncode == 0 and "tier supporter, balance 2000" in tier.stdout
    assert shown.returncode == 0
    assert "grant by console: launch gift" in shown.stdout
    assert "Traceback" not in granted.stderr + refused.stderr + tier.stderr + shown.stderr


def _db_check_and_backup(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    env = _tiny_in(folder)

    def break_a_balance() -> bool:
        """The backup's copy exists; then one balance no longer equals its ledger."""
        copied = (folder / "copy.db").is_file()
        with contextlib.closing(sqlite3.connect(folder / "data" / "imagine.db")) as db, db:
            db.execute("UPDATE users SET balance = balance + 1 WHERE user_id = 42")
        return copied

    return [
        cli_command("db", "check", cwd=folder, env=env),
        cli_command("credits", "grant", "42", "50", "--reason", "gift", cwd=folder, env=env),
        cli_command("db", "check", cwd=folder, env=env),
        cli_command("db", "backup", str(folder / "copy.db"), cwd=folder, env=env),
        break_a_balance,
        cli_command("db", "check", cwd=folder, env=env),
    ]


@ahead(_db_check_and_backup)
def test_db_check_and_backup_commands(ran: Ran) -> None:
    """db check exits 0 on a healthy database and 1 with the broken rows; db backup writes a checked copy."""
    missing, granted, healthy, backup, copied, broken = ran.results
    assert missing.returncode == 2
    assert "no database" in missing.stderr
    assert granted.returncode == 0
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "every invariant holds" in healthy.stdout
    assert backup.returncode == 0
    assert copied
    assert broken.returncode == 1
    assert "balance equals the sum" in broken.stdout


def _generate_from_a_bad_image(folder: Path, params: dict[str, Any]) -> list[Command | Interaction]:
    bad = Path(__file__).resolve().parents[2] / "data" / "bad" / params["name"]
    return [cli_command("generate", "a fox", "--image", str(bad), cwd=folder, env={"IMAGINE_MODEL": "tiny"})]


@ahead(_generate_from_a_bad_image)
@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("not_an_image.png", "not an image this bot can read"),
        ("truncated.jpg", "damaged or truncated"),
        ("bomb.png", "far too many pixels"),
        ("empty.png", "empty (0 bytes)"),
    ],
)
def test_generate_refuses_bad_images(ran: Ran, name: str, fragment: str) -> None:
    """The corpus through the shell: exit 2, a clear error, nothing written outside data/."""
    (completed,) = ran.results
    assert completed.returncode == 2
    assert fragment in completed.stderr
    assert "Traceback" not in completed.stderr
    assert sorted(path.name for path in ran.folder.iterdir()) in (["data", "none.toml"], ["data"], [])


def _rows(database: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _show_grant_show(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    env = _tiny_in(folder)
    database = folder / "data" / "imagine.db"

    def counts() -> tuple[int, int, int] | None:
        """Members, ledger rows and audit rows now (None: no database)."""
        tables = ("users", "ledger", "audit")
        return tuple(_rows(database, table) for table in tables) if database.exists() else None  # type: ignore[return-value]

    return [
        cli_command("credits", "show", "123", cwd=folder, env=env),
        counts,
        cli_command("credits", "grant", "42", "5", "--reason", "gift", cwd=folder, env=env),
        counts,
        cli_command("credits", "show", "123", cwd=folder, env=env),
        counts,
        cli_command("credits", "show", "42", cwd=folder, env=env),
    ]


@ahead(_show_grant_show)
def test_credits_show_never_writes(ran: Ran) -> None:
    """show of an unknown member says so and what they would start with; no database, member or row appears; a grant
    is one moderator action of the console (audited)."""
    first, after_first, granted, before, again, after_again, known = ran.results
    assert first.returncode == 0, first.stderr
    assert "member 123: no account yet; on first use they start on tier free with 100 credits" in first.stdout
    assert after_first is None  # no database
    assert granted.returncode == 0
    assert again.returncode == 0 and "no account yet" in again.stdout
    assert after_again == before
    assert before is not None and before[2] == 1  # the owner's grant is audited like a moderator's
    assert "member 42: tier free, balance 105" in known.stdout


def _refused(folder: Path, params: dict[str, Any]) -> list[Command | Interaction]:
    (folder / "afile").write_text("not a folder")
    return [cli_command(*params["args"], cwd=folder, env=_tiny_in(folder))]


@ahead(_refused)
@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("tier", "set", "1", "gold"), 2, "there is no tier 'gold'; use one of: free, supporter, unlimited"),
        (("tier", "set", "1", "suporter"), 2, "there is no tier 'suporter' (did you mean 'supporter'?)"),
        (("credits", "grant", "1", "0", "--reason", "x"), 2, "0 credits is out of range: use 1 to"),
        (("credits", "take", "1", "-5", "--reason", "x"), 2, "out of range"),
        (("credits", "set", "1", "99999999999999999999", "--reason", "x"), 2, "out of range"),
        (("credits", "grant", "abc", "5", "--reason", "x"), 2, "'abc' is not a user id"),
        (("credits", "show", "-99999999999999999999"), 2, "is not a user id"),
        (("credits", "show", "1", "--limit", "many"), 2, "'many' is not a whole number"),
        (("generate", "a fox", "-o", "fox.jpg"), 2, "the grid is a PNG; name the file *.png"),
        (("generate", "a fox", "-o", "afile/out.png"), 2, "afile is not a folder"),
        (("generate", "a fox", "-o", "/proc/grid.png"), 2, "nothing can be written in /proc"),
        (("generate", "a fox", "-o", "/proc/grids/"), 2, "nothing can be written in /proc"),
        (("generate", "a fox", "--model", "sdx"), 2, "--model sdx: there is no such model (did you mean 'sdxl'?)"),
        (("db", "backup", "afile"), 2, "no database"),
        (("models", "pull", "tiyn"), 2, "there is no model 'tiyn' (did you mean 'tiny'?)"),
    ],
)
def test_refusals_come_before_any_work(ran: Ran, args: tuple[str, ...], code: int, fragment: str) -> None:
    """A bad number, name or path is one line and exit 2, before a database is created or anything renders."""
    (completed,) = ran.results
    assert completed.returncode == code, completed.stderr
    assert fragment in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (ran.folder / "data" / "imagine.db").exists()
    assert not (ran.folder / "data" / "images").exists()


def _database_is_notes(folder: Path, params: dict[str, Any]) -> list[Command | Interaction]:
    other = folder / "notes.txt"
    other.write_text("shopping list\n" * 100)
    env = {"IMAGINE_MODEL": "tiny", "IMAGINE_DATABASE_PATH": str(other)}
    return [cli_command(*params["args"], cwd=folder, env=env)]


@ahead(_database_is_notes)
@pytest.mark.parametrize(
    "args",
    [
        ("credits", "show", "1"),
        ("credits", "grant", "1", "5", "--reason", "x"),
        ("tier", "set", "1", "free"),
        ("db", "check"),
        ("generate", "a fox"),
    ],
)
def test_a_database_that_is_not_sqlite_is_one_line(ran: Ran, args: tuple[str, ...]) -> None:
    """database_path naming some other file: exit 2 with one line, the file untouched."""
    (completed,) = ran.results
    assert completed.returncode == 2, completed.stderr
    assert "is not a SQLite database" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert (ran.folder / "notes.txt").read_text() == "shopping list\n" * 100


def _doctor_without_and_with_a_token(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    return [
        cli_command("doctor", "--no-probe", cwd=folder, env={"IMAGINE_MODEL": "tiny"}),
        cli_command(
            "doctor", "--no-probe", cwd=folder, env={"IMAGINE_MODEL": "tiny", "IMAGINE_DISCORD_TOKEN": FAKE_TOKEN}
        ),
    ]


@ahead(_doctor_without_and_with_a_token)
def test_doctor_reports_a_missing_token(ran: Ran) -> None:
    """No token is a problem (run would refuse to start) with how to set it; with one, doctor is clean."""
    missing, present = ran.results
    assert missing.returncode == 1
    assert "no Discord token: put IMAGINE_DISCORD_TOKEN=<token> in .env" in missing.stdout
    assert present.returncode == 0, present.stdout
    assert "discord token: set" in present.stdout and FAKE_TOKEN not in present.stdout


def _config_typo(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    toml = folder / "bot.toml"
    toml.write_text('modle = "tiny"\n')
    return [cli_command("doctor", "--no-probe", cwd=folder, env={"IMAGINE_CONFIG": str(toml)})]


@ahead(_config_typo)
def test_config_typo_is_named_by_the_cli(ran: Ran) -> None:
    """`modle = "tiny"` in the TOML file: exit 2 naming the key and `model`, without a traceback."""
    (completed,) = ran.results
    assert completed.returncode == 2
    assert "unknown key 'modle' (did you mean 'model'?)" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
def test_run_without_network_retries_instead_of_crashing(tmp_path: Path) -> None:
    """A token but no way to reach Discord: one line per attempt with growing delays, no traceback, no exit."""
    import signal
    import time

    environment = child_environment(IMAGINE_MODEL="tiny", IMAGINE_DISCORD_TOKEN=FAKE_TOKEN)
    code = (  # Discord's API where nothing listens: no network, on any machine, and no token sent anywhere
        "import sys, discord.http\n"
        "discord.http.Route.BASE = 'http://127.0.0.1:9/api/v10'\n"
        "from bot.operations.cli import main\n"
        "sys.exit(main(['run']))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum("could not reach Discord" in line for line in lines) < 2:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
        assert process.poll() is None, "".join(lines)
    finally:
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[1]
    attempts = [line for line in lines if "could not reach Discord" in line]
    assert len(attempts) == 2, "".join(lines)
    assert "(attempt 1)" in attempts[0] and "retrying in 1 s" in attempts[0]
    assert "(attempt 2)" in attempts[1] and "retrying in 2 s" in attempts[1]
    assert "Traceback" not in "".join(lines) + rest
    assert FAKE_TOKEN not in "".join(lines) + rest
    assert process.returncode == 0
