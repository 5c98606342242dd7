"""The cogs only translate between Discord and the application core: they import the core's public face
(``bot.core``), the Discord surface helpers and discord.py, never the core's parts; and nothing imports in a loop.

Modules are discovered with pkgutil, so a new cog or module is covered without editing a list.
"""

from __future__ import annotations

import ast
import pkgutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bot
import bot.core
import cogs
import config
import engine

ROOT = Path(__file__).resolve().parents[2]
FACE = "bot.core"
DISCORD_SURFACE = "bot.discord_surface"
"""Discord-side helpers outside cogs/ (the bot class, connecting, permission and start-up checks): surface, not core."""
CORE_PARTS = ("store", "queue", "scheduler", "ledger", "worker", "engine", "moderation", "preferences", "admission")
"""Attributes of the service a surface must not reach through."""


def modules_of(package: object) -> list[str]:
    path = package.__path__  # type: ignore[attr-defined]
    name = package.__name__  # type: ignore[attr-defined]
    return sorted(module.name for module in pkgutil.walk_packages(path, prefix=f"{name}."))


def source_of(module: str) -> Path:
    relative = Path(*module.split("."))
    package = ROOT / relative / "__init__.py"
    return package if package.exists() else ROOT / relative.with_suffix(".py")


def imports_of(module: str, *, runtime_only: bool = False) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """(module imported, names imported from it, line) for every import of ``module``'s source. With
    ``runtime_only``: only imports that run when the module is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(source_of(module).read_text(), filename=str(source_of(module)))
    nodes: list[ast.stmt] = list(tree.body) if runtime_only else [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    for node in nodes:
        if runtime_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if runtime_only and isinstance(node, ast.If | ast.Try):
            nodes.extend(node.body)  # a guarded import still runs at import time
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, tuple(alias.name for alias in node.names), node.lineno


def allowed_for_cogs(name: str) -> bool:
    top = name.split(".")[0]
    if top in ("discord", "aiohttp", "cogs") or top in sys.stdlib_module_names or name == "__future__":
        return True
    return name in (FACE, DISCORD_SURFACE) or name.startswith(f"{DISCORD_SURFACE}.")


def test_discovery_finds_every_cog() -> None:
    """The discovered list is not empty by accident."""
    assert {"cogs.imagine", "cogs.member", "cogs.admin", "cogs.presenter", "cogs.results"} <= set(modules_of(cogs))


def imports_past_the_face(module: str, allowed: Callable[[str], bool]) -> list[str]:
    """The imports of ``module`` that ``allowed`` refuses, as ``line N: name``."""
    return [f"line {line}: {name}" for name, _names, line in imports_of(module) if not allowed(name)]


def names_not_exported(module: str) -> list[str]:
    """The names ``module`` takes from bot.core that are not in its ``__all__``, as ``line N: [names]``."""
    exported = set(bot.core.__all__)
    return [
        f"line {line}: {sorted(set(names) - exported)}"
        for name, names, line in imports_of(module)
        if name == FACE and not set(names) <= exported
    ]


def reaches_into_the_service(module: str) -> list[str]:
    """Every ``service.<core part>`` in ``module``, as ``line N: service.part``."""
    tree = ast.parse(source_of(module).read_text())
    return [
        f"line {node.lineno}: service.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in CORE_PARTS
        and isinstance(node.value, ast.Attribute | ast.Name)
        and (node.value.attr if isinstance(node.value, ast.Attribute) else node.value.id) == "service"
    ]


@pytest.mark.parametrize("module", modules_of(cogs))
def test_cogs_import_only_the_core_face_and_discord(module: str) -> None:
    """No cog imports bot.storage.store, bot.scheduling.scheduler, bot.scheduling.ledger, bot.running.worker, engine/,
    config/ or any other core part."""
    wrong = imports_past_the_face(module, allowed_for_cogs)
    assert not wrong, f"{module} imports past the core's public face: {wrong}"


@pytest.mark.parametrize("module", modules_of(cogs))
def test_cogs_import_only_what_the_face_exports(module: str) -> None:
    """Every name a cog takes from bot.core is in its ``__all__`` (the face is a deliberate list)."""
    assert not names_not_exported(module), f"{module}: {names_not_exported(module)} not exported"


@pytest.mark.parametrize("module", modules_of(cogs))
def test_cogs_do_not_reach_into_the_service(module: str) -> None:
    """No ``….service.store`` (queue, ledger, worker, engine, moderation, preferences): actions are core methods."""
    reached = reaches_into_the_service(module)
    assert not reached, f"{module} reaches into the core: {reached}"


def test_the_face_exports_what_it_names() -> None:
    """Every name in bot.core.__all__ exists (a stale entry would break a surface at import time)."""
    assert all(hasattr(bot.core, name) for name in bot.core.__all__)


def test_no_import_loops() -> None:
    """The import-time graph of bot/, cogs/, engine/ and config/ has no cycle."""
    ours = {name for package in (bot, cogs, engine, config) for name in [package.__name__, *modules_of(package)]}
    graph: dict[str, set[str]] = {}
    for module in ours:
        targets: set[str] = set()
        for name, names, _line in imports_of(module, runtime_only=True):
            if name in ours:
                targets.add(name)
            targets.update(f"{name}.{item}" for item in names if f"{name}.{item}" in ours)
        graph[module] = {target for target in targets if target != module}
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found is not None:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found is not None:
                return found
    return None
