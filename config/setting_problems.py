"""What is wrong with the settings, as lines an owner can act on: a value pydantic refused, a list written in the
environment in the wrong form, and keys that name no setting.

Each function takes the root settings model (``Settings``), so it can name the nearest valid key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from config.errors import closest_key, did_you_mean, top_level_hint
from config.sources import (
    CONFIG_VARIABLE,
    DEFAULT_ENV_FILE,
    ENV_PREFIX,
    NESTED_DELIMITER,
    config_file,
    read_config_file,
)

SETTINGS_ERROR = re.compile(r'error parsing value for field "(?P<field>\w+)" from source "(?P<source>\w+)"')
LIST_EXAMPLES = {"moderator_roles": '["Mods", "1234"]', "enabled_models": '["sd15", "mine"]'}


def describe_settings_error(error: SettingsError, env_file: str | Path | None, root: type[BaseModel]) -> str:
    """A variable pydantic-settings could not parse (a list or table setting not written as JSON): which one, and
    its JSON form."""
    found = SETTINGS_ERROR.search(str(error))
    if found is None:
        return f"could not read the configuration: {error}"
    field = found["field"]
    where = f"in {env_file}" if found["source"] == "DotEnvSettingsSource" and env_file else "in the environment"
    variable = ENV_PREFIX + field.upper()
    annotation = root.model_fields[field].annotation if field in root.model_fields else None
    if get_origin(annotation) is list:
        example = LIST_EXAMPLES.get(field, '["first", "second"]')
        message = f"list settings {where} are JSON, e.g. {variable}='{example}'"
    else:
        message = (
            f'a list or a table {where} is written as JSON (a list as \'["a", "b"]\', a table as \'{{"key": 1}}\'), '
            f"or one variable per key such as {variable}{NESTED_DELIMITER}KEY=value"
        )
    return f"invalid configuration:\n  - {field} ({variable} {where}): {message}"


def describe_validation_error(error: ValidationError, root: type[BaseModel]) -> str:
    """One line per problem, naming the setting as both its TOML key and its environment variable."""
    lines = ["invalid configuration:"]
    for problem in error.errors(include_url=False, include_input=False):
        location = [str(part) for part in problem["loc"]]
        key = ".".join(location)
        env_name = ENV_PREFIX + "__".join(location).upper()
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden" and location:
            parent = _model_at(root, tuple(location[:-1]))
            hint = did_you_mean(location[-1], parent.model_fields) if parent is not None else ""
            message = f"unknown setting{hint}"
        lines.append(f"  - {key} ({env_name}): {message}" if location else f"  - {message}")
    return "\n".join(lines)


# --- unknown keys -------------------------------------------------------------------------------------------------
# The top level ignores extra keys because pydantic-settings would otherwise refuse every unrelated variable of a
# .env file (HF_TOKEN, a database URL...). Unknown keys are found here instead, in the three places settings come
# from, and only among what is ours: the TOML file, and IMAGINE_-prefixed environment and .env variables.


def unknown_setting_problems(root: type[BaseModel], env_file: str | Path | None = DEFAULT_ENV_FILE) -> list[str]:
    """One line per key that is not a setting, in the TOML file, the environment and ``env_file``, each naming
    the closest valid key."""
    problems: list[str] = []
    toml_file = config_file()
    data = read_config_file()
    for path, suggestion in _unknown_keys(data, root, ()):
        section = f" in [{'.'.join(path[:-1])}]" if len(path) > 1 else ""
        hint = f" (did you mean {suggestion[-1]!r}?)" if suggestion else ""
        if len(path) > 1 and path[-1] in root.model_fields:
            hint = top_level_hint(path[-1])
        problems.append(f"{toml_file}: unknown key {path[-1]!r}{section}{hint}")
    for name in sorted(os.environ):
        problem = _unknown_variable(name, root, where="environment")
        if problem:
            problems.append(problem)
    if env_file is not None and Path(env_file).is_file():
        for name in dotenv_values(env_file, encoding="utf-8"):
            if name.upper() == CONFIG_VARIABLE:
                problems.append(
                    f"{CONFIG_VARIABLE} in {env_file} has no effect (the TOML file is chosen before {env_file} is "
                    "read); set it in the environment instead"
                )
                continue
            problem = _unknown_variable(name, root, where=str(env_file))
            if problem:
                problems.append(problem)
    return problems


def _unknown_variable(name: str, root: type[BaseModel], *, where: str) -> str | None:
    """What is wrong with an ``IMAGINE_`` variable that names no setting; None for a valid or unrelated one."""
    if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_VARIABLE:
        return None
    parts = name[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
    nested: Any = "set"
    for part in reversed(parts):
        nested = {part: nested}
    for _path, suggestion in _unknown_keys(nested, root, ()):
        hint = f" (did you mean {ENV_PREFIX + NESTED_DELIMITER.join(suggestion).upper()}?)" if suggestion else ""
        return f"{where}: {name} is not a setting{hint}"
    return None


def _unknown_keys(
    data: Mapping[str, Any], model: type[BaseModel], prefix: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """``(path, closest valid path or None)`` for each key of ``data`` that ``model`` does not have, recursively."""
    fields = model.model_fields
    for key, value in data.items():
        path = (*prefix, key)
        if key not in fields:
            close = closest_key(key, fields)
            yield path, ((*prefix, close) if close else None)
            continue
        section, entry = _section_of(fields[key].annotation)
        if not isinstance(value, Mapping):
            continue
        if section is not None:
            yield from _unknown_keys(value, section, path)
        elif entry is not None:
            for name, item in value.items():
                if isinstance(item, Mapping):
                    yield from _unknown_keys(item, entry, (*path, str(name)))
        elif get_origin(fields[key].annotation) is not dict:
            for inner in value:  # a plain value given parts (IMAGINE_MAX_STEPS__X)
                yield (*path, str(inner)), None


def _section_of(annotation: Any) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """``(model, None)`` for a section such as ``memory``, ``(None, model)`` for named entries such as ``models``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, None
    if get_origin(annotation) is dict:
        value_type = get_args(annotation)[1]
        if isinstance(value_type, type) and issubclass(value_type, BaseModel):
            return None, value_type
    return None, None


def _model_at(root: type[BaseModel], path: tuple[str, ...]) -> type[BaseModel] | None:
    """The model that holds the keys at ``path`` (``()`` is ``root``, ``("models", "x")`` is ModelSpec)."""
    model = root
    index = 0
    while index < len(path):
        field = model.model_fields.get(path[index])
        if field is None:
            return None
        section, entry = _section_of(field.annotation)
        if section is not None:
            model, index = section, index + 1
        elif entry is not None and index + 1 < len(path):
            model, index = entry, index + 2
        else:
            return None
    return model
