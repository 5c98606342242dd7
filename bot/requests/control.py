"""ControlNet requests: the rules that turn a control image, its mode and ``--cw`` into a control job, checked before
anything is charged. Pure functions of the settings and the request (no database, no engine, no torch).

A request with a control image (``/imagine control:``, ``generate --control``, the API's ``control_image``) becomes a
job of kind ``control`` (its own cost multiplier): txt2img steered by the image's ``control_mode`` map, or img2img
when it also starts from an image. The ControlNet is the one ``--controlnet`` names, or the first of the registry
that serves the job's model family and the mode; the family is checked either way, and depth needs the owner's
``[depth]`` estimator. A result's 🔄 and V buttons keep the control image (they are control jobs too); U drops it
(an upscale redraws an image that already follows the control), and so do zoom and pan, which start from an upscale.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bot.errors import PromptError
from bot.jobs import Kind, RenderParams
from config.control_registry import BUILTIN_CONTROLNETS, ControlNetSpec, controlnet_registry
from config.settings import Settings
from config.sources import DEFAULT_CONFIG_FILE, config_file
from engine.control_sources import CONTROL_MODES, DEFAULT_CONTROL_WEIGHT, control_source_problem
from engine.model_sources import TINY_PREFIX

if TYPE_CHECKING:
    from bot.requests.prompt import ParsedPrompt
    from bot.requests.request_options import RequestOptions

DEFAULT_CONTROL_MODE = "canny"
CONTROL_FOLLOW_UPS = (Kind.REROLL, Kind.VARIATION)
"""Follow-ups that keep the parent's control image (and become control jobs); the others drop it."""
DEPTH_EXAMPLE = "Intel/dpt-hybrid-midas"


def _config_name(*, public: bool) -> str:
    """Where the owner changes a setting; a member is not shown a path beyond the default ``config/bot.toml``."""
    current = config_file()
    return "the configuration file" if public and current != DEFAULT_CONFIG_FILE else str(current)


def check_control_mode(mode: str) -> str:
    """A known control mode (lower case). Raises PromptError naming the choices."""
    cleaned = mode.strip().lower()
    if cleaned not in CONTROL_MODES:
        raise PromptError(f"control mode `{mode}` is not one of: {', '.join(CONTROL_MODES)}", flag="control_mode")
    return cleaned


def offered_controlnets(settings: Settings, model: str) -> dict[str, ControlNetSpec]:
    """The ControlNets a job on ``model`` may use, in order of preference: the owner's ``[controlnet.NAME]``, then
    the built-in tiny ones, only for a tiny model (on a real model their random weights would spoil the image)."""
    offered = dict(settings.controlnet)
    if settings.registry[model].source.startswith(TINY_PREFIX):
        offered.update((name, spec) for name, spec in BUILTIN_CONTROLNETS.items() if name not in offered)
    return offered


def choose_controlnet(settings: Settings, model: str, mode: str, requested: str | None = None) -> str:
    """The registry name of the ControlNet a ``mode`` job on ``model`` uses: ``requested`` when given, else the first
    that serves the model's family and the mode. Raises PromptError saying what to change (another model, mode or
    ControlNet, or what the owner adds) when none fits."""
    family = settings.registry[model].family
    offered = offered_controlnets(settings, model)
    where = _config_name(public=True)
    if requested is not None:
        spec = offered.get(requested)
        if spec is None:
            known = ", ".join(sorted(offered)) or "none is configured on this server"
            raise PromptError(
                f"ControlNet `{requested}` is not available; known ControlNets: {known}", flag="controlnet"
            )
        if spec.family != family:
            raise PromptError(
                f"ControlNet `{requested}` is for {spec.family} models, but model `{model}` is {family}; use --model "
                f"with a {spec.family} model, or a ControlNet for {family} models",
                flag="controlnet",
            )
        if mode not in spec.modes:
            raise PromptError(
                f"ControlNet `{requested}` serves control mode {', '.join(spec.modes)}, not {mode}; pick one of those "
                "or another ControlNet",
                flag="control_mode",
            )
        return requested
    serving = [name for name, spec in offered.items() if mode in spec.modes]
    for name in serving:
        if offered[name].family == family:
            return name
    add = f'the owner can add [controlnet.NAME] with family = "{family}" and modes = ["{mode}"] in {where}'
    if serving:
        other = offered[serving[0]]
        raise PromptError(
            f"no ControlNet for {family} models serves control mode {mode} here (`{serving[0]}` is for "
            f"{other.family} models); use --model with a {other.family} model, or {add}",
            flag="controlnet",
        )
    raise PromptError(f"no ControlNet on this server serves control mode {mode}; {add}", flag="control_mode")


def check_control_sources(settings: Settings, controlnet: str, mode: str, *, owner: bool = False) -> None:
    """The ControlNet's weights (and for depth the estimator's) load without a download. Raises PromptError naming
    the setting to fix (with the path for the owner, without for a member)."""
    spec = controlnet_registry(settings.controlnet)[controlnet]
    problem = control_source_problem(spec.source)
    if problem is not None:
        setting = f"[controlnet.{controlnet}] source"
        if owner:
            raise PromptError(f"ControlNet `{controlnet}` cannot be used: {problem}; fix {setting} in {config_file()}")
        raise PromptError(
            f"ControlNet `{controlnet}` is not available on this server (its files are missing); the owner can fix "
            f"{setting} in {_config_name(public=True)}"
        )
    if mode != "depth":
        return
    source = settings.depth.source
    if not source:
        raise PromptError(
            "control mode depth needs a depth estimator, and none is configured on this server; the owner can set "
            f'[depth] source = "{DEPTH_EXAMPLE}" (or a local DPT or Depth Anything folder) in '
            f"{_config_name(public=not owner)}, or use control_mode canny, lineart, scribble or raw",
            flag="control_mode",
        )
    problem = control_source_problem(source)
    if problem is not None:
        detail = f": {problem}" if owner else " (its files are missing)"
        raise PromptError(
            f"the depth estimator cannot be used{detail}; the owner can fix [depth] source in "
            f"{_config_name(public=not owner)}",
            flag="control_mode",
        )


def control_applied(
    kind: Kind,
    params: RenderParams,
    options: RequestOptions | None,
    parsed: ParsedPrompt,
    settings: Settings,
    *,
    owner: bool = False,
) -> tuple[Kind, RenderParams]:
    """The job's kind and params with the request's control image, mode and weight: a control job, or the job as it
    was when the request has no control image (then ``--cw``, ``--controlnet`` and a mode are refused). Raises
    PromptError naming the option or flag to fix."""
    control = options.control if options is not None else None
    mode = options.control_mode if options is not None else None
    if control is None:
        for given, flag, what in (
            (parsed.control_weight, "cw", "--cw"),
            (parsed.controlnet, "controlnet", "--controlnet"),
            (mode, "control_mode", "a control mode"),
        ):
            if given is not None:
                raise PromptError(
                    f"{what} needs a control image: add one (control: in /imagine, --control FILE in the command "
                    "line, control_image in the API)",
                    flag=flag,
                )
        return kind, params
    assert options is not None
    if options.mask is not None:
        raise PromptError("a control image works with a prompt or an image, not with a mask; drop one", flag="mask")
    if options.sweeps:
        raise PromptError("a sweep cannot take a control image; run /imagine with the values you like", flag="sweep")
    checked_mode = check_control_mode(mode or DEFAULT_CONTROL_MODE)
    controlnet = choose_controlnet(settings, params.model, checked_mode, parsed.controlnet)
    check_control_sources(settings, controlnet, checked_mode, owner=owner)
    weight = parsed.control_weight if parsed.control_weight is not None else DEFAULT_CONTROL_WEIGHT
    controlled = dataclasses.replace(
        params,
        control_image=str(control.path) if control.path is not None else "",
        control_mode=checked_mode,
        control_weight=weight,
        controlnet=controlnet,
    )
    return Kind.CONTROL, controlled


def follow_up_control(
    kind: Kind, params: RenderParams, parent: RenderParams, settings: Settings, *, owner: bool = False
) -> tuple[Kind, RenderParams]:
    """A result button's job on a control job's image: 🔄 and V keep the control image (a control job: a reroll, or
    img2img from the image), with its ControlNet checked against today's registry; U (and so zoom and pan, which
    start from an upscale) drops it. Raises PromptError when the ControlNet can no longer be used."""
    if not parent.control_image:
        return kind, params
    if kind not in CONTROL_FOLLOW_UPS:
        return kind, without_control(params)
    choose_controlnet(settings, params.model, params.control_mode, params.controlnet)
    check_control_sources(settings, params.controlnet, params.control_mode, owner=owner)
    return Kind.CONTROL, params


def without_control(params: RenderParams) -> RenderParams:
    """``params`` with no control image."""
    return dataclasses.replace(
        params, control_image="", control_mode="", control_weight=DEFAULT_CONTROL_WEIGHT, controlnet=""
    )
