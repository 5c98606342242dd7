"""The web surface only translates between HTTP and the application core, like the cogs: it imports the core's
public face (``bot.core``), the settings, the web libraries and itself; never the core's parts or the engine.

Modules are discovered with pkgutil, so a new route module is covered without editing a list.
"""

from __future__ import annotations

import sys

import pytest

import web
from tests.cogs.test_imports import (
    FACE,
    imports_past_the_face,
    modules_of,
    names_not_exported,
    reaches_into_the_service,
)

WEB_LIBRARIES = ("fastapi", "starlette", "pydantic", "uvicorn", "jinja2", "prometheus_client", "PIL", "web")
SETTINGS = ("config.settings", "config.web_settings")


def allowed_for_web(name: str) -> bool:
    top = name.split(".")[0]
    if top in WEB_LIBRARIES or top in sys.stdlib_module_names or name == "__future__":
        return True
    return name == FACE or name in SETTINGS


def test_discovery_finds_the_web_surface() -> None:
    """The discovered list is not empty by accident."""
    assert {"web.app", "web.auth", "web.errors", "web.feed"} <= set(modules_of(web))


@pytest.mark.parametrize("module", modules_of(web))
def test_the_web_imports_only_the_core_face_settings_and_web_libraries(module: str) -> None:
    """No web module imports bot.storage, bot.scheduling, bot.running, bot.requests, engine/ or the like."""
    wrong = imports_past_the_face(module, allowed_for_web)
    assert not wrong, f"{module} imports past the core's public face: {wrong}"


@pytest.mark.parametrize("module", modules_of(web))
def test_the_web_imports_only_what_the_face_exports(module: str) -> None:
    """Every name taken from bot.core is in its ``__all__``."""
    assert not names_not_exported(module), f"{module}: {names_not_exported(module)} not exported"


@pytest.mark.parametrize("module", modules_of(web))
def test_the_web_does_not_reach_into_the_service(module: str) -> None:
    """No ``service.store`` (queue, scheduler, ledger, worker, engine, moderation, preferences, admission)."""
    reached = reaches_into_the_service(module)
    assert not reached, f"{module} reaches into the core: {reached}"
