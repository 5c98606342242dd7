"""Sampler names both ways: A1111's labels (``Euler a``, ``DPM++ 2M Karras``; a ``scheduler`` such as ``Karras``
or ``SGM Uniform`` beside a label) name our samplers (``euler_a``, ``dpmpp_2m_karras``, ``euler_a_trailing``), and
our samplers are written back in A1111's words. Pure functions, no I/O.

Only samplers the engine has are offered; an unknown one is refused with the names that exist.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from web.a1111_requests import A1111RequestError

AUTOMATIC = "Automatic"
"""The schedule type that stands for a sampler's usual schedule."""


@dataclass(frozen=True)
class A1111Sampler:
    """One of our samplers in A1111's words: its label and its schedule type (empty: the sampler's usual one)."""

    name: str
    label: str
    schedule: str = ""


A1111_SAMPLERS: tuple[A1111Sampler, ...] = (
    A1111Sampler("euler_a", "Euler a"),
    A1111Sampler("euler", "Euler"),
    A1111Sampler("dpmpp_2m", "DPM++ 2M"),
    A1111Sampler("dpmpp_2m_karras", "DPM++ 2M Karras"),
    A1111Sampler("ddim", "DDIM"),
    A1111Sampler("unipc", "UniPC"),
    A1111Sampler("lcm", "LCM"),
    A1111Sampler("euler_a_trailing", "Euler a", "SGM Uniform"),
    A1111Sampler("euler_trailing", "Euler", "SGM Uniform"),
)
"""Every sampler the engine has (``engine/samplers.py``; a test keeps the two equal), in A1111's words."""

SCHEDULES: dict[str, str] = {"automatic": AUTOMATIC, "karras": "Karras", "sgm_uniform": "SGM Uniform"}
"""A1111 schedule types (``scheduler``) that name one of our samplers, by A1111's short name."""

K_ALIASES: dict[str, str] = {
    "k_euler_a": "Euler a",
    "k_euler_ancestral": "Euler a",
    "k_euler": "Euler",
    "k_dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_2m_ka": "DPM++ 2M Karras",
}
"""k-diffusion's names that older A1111 clients send, and the label each stands for."""

_LABEL_PAIRS: dict[str, tuple[str, str]] = {"DPM++ 2M Karras": ("DPM++ 2M", "Karras")}
"""Labels that name a sampler and its schedule together (A1111 before 1.9), as A1111 1.9+ writes them."""


def _pair(sampler: A1111Sampler) -> tuple[str, str]:
    """A sampler as A1111 1.9+ writes it: a label and a schedule type (``DPM++ 2M`` + ``Karras``)."""
    if sampler.label in _LABEL_PAIRS:
        return _LABEL_PAIRS[sampler.label]
    return sampler.label, sampler.schedule or AUTOMATIC


def _schedule_of(text: str | None) -> str | None:
    """A ``scheduler`` field as one of :data:`SCHEDULES`' labels; None for automatic. Raises A1111RequestError."""
    if text is None or not text.strip():
        return None
    key = text.strip().lower().replace(" ", "_")
    if key not in SCHEDULES:
        raise A1111RequestError(
            "unknown_scheduler",
            f"scheduler `{text}` is not available on this server; use one of: {', '.join(SCHEDULES.values())}",
        )
    label = SCHEDULES[key]
    return None if label == AUTOMATIC else label


def sampler_labels(available: Collection[str]) -> list[str]:
    """The A1111 sampler names of the samplers in ``available`` (our names), each once, in a stable order."""
    return list(dict.fromkeys(item.label for item in A1111_SAMPLERS if item.name in available))


def sampler_items(available: Collection[str]) -> list[dict[str, Any]]:
    """``GET /samplers``: A1111's ``{name, aliases, options}`` for each label; aliases are our names (what
    ``--sampler`` takes) and k-diffusion's, options the schedule a label implies."""
    items = []
    for label in sampler_labels(available):
        ours = [item.name for item in A1111_SAMPLERS if item.label == label and item.name in available]
        aliases = [alias for alias, aliased in K_ALIASES.items() if aliased == label]
        options = {"scheduler": _LABEL_PAIRS[label][1].lower()} if label in _LABEL_PAIRS else {}
        items.append({"name": label, "aliases": [*ours, *aliases], "options": options})
    return items


def resolve_sampler(
    sampler: str | int | None,
    scheduler: str | None,
    *,
    available: Collection[str],
    allowed: Collection[str] | None = None,
    model: str = "",
) -> str | None:
    """Our sampler name for A1111's ``sampler_name`` (or ``sampler_index``: a name, or an index into ``GET
    /samplers``) and ``scheduler``; None when the request names no sampler (the member's or model's default).

    ``available``: the engine's samplers; ``allowed``: the ones the request's ``model`` works with (empty or None:
    all). With the schedule left automatic, the label's variant the model allows is chosen, its usual schedule
    first (``Euler a`` on SD-Turbo is Euler a with SGM Uniform). Our own names (``euler_a_trailing``) are taken as
    they are. Raises A1111RequestError naming the samplers that exist."""
    labels = sampler_labels(available)
    if isinstance(sampler, int) and not isinstance(sampler, bool):
        if not 0 <= sampler < len(labels):
            raise A1111RequestError(
                "unknown_sampler", f"sampler index {sampler} is out of range; use 0 to {len(labels) - 1}: {labels}"
            )
        sampler = labels[sampler]
    wanted = _schedule_of(scheduler)
    text = "" if sampler is None else str(sampler).strip()
    if not text:
        if wanted is None:
            return None
        raise A1111RequestError(
            "unknown_sampler", f"scheduler `{scheduler}` needs a sampler_name; use one of: {', '.join(labels)}"
        )
    key = K_ALIASES.get(text.lower(), text).lower()
    ours = {item.name: item for item in A1111_SAMPLERS if item.name in available}
    named = [label for label in labels if label.lower() == key]
    if not named and key in ours:  # our own name (one that is no A1111 label): exactly that sampler
        candidates = [ours[key]]
        own_schedule = _pair(ours[key])[1]
        if wanted is not None and wanted != own_schedule:
            raise A1111RequestError(
                "unknown_scheduler",
                f"sampler `{text}` uses the {own_schedule} schedule; leave scheduler out or send {own_schedule}",
            )
    else:
        if not named:
            raise A1111RequestError(
                "unknown_sampler",
                f"sampler `{text}` is not available on this server; use one of: {', '.join(labels)}",
            )
        label, fixed = _LABEL_PAIRS.get(named[0], (named[0], None))
        if fixed is not None and wanted is not None and fixed != wanted:
            raise A1111RequestError(
                "unknown_scheduler", f"sampler `{text}` uses the {fixed} schedule; leave scheduler out or send {fixed}"
            )
        schedule = fixed or wanted
        variants = [item for item in ours.values() if _pair(item)[0] == label]
        candidates = [item for item in variants if schedule is None or _pair(item)[1] == schedule]
        candidates.sort(key=lambda item: _pair(item)[1] != AUTOMATIC)  # automatic: the usual schedule first
        if not candidates:
            schedules = dict.fromkeys([AUTOMATIC, *(_pair(item)[1] for item in variants)])
            raise A1111RequestError(
                "unknown_scheduler",
                f"sampler `{text}` has no {scheduler} schedule on this server; use scheduler {' or '.join(schedules)}",
            )
    usable = [item for item in candidates if not allowed or item.name in allowed]
    if not usable:
        works = [item for item in ours.values() if allowed and item.name in allowed]
        choices = ", ".join(
            item.label if _pair(item)[1] in (AUTOMATIC, "Karras") else f"{item.label} with scheduler {item.schedule}"
            for item in works
        )
        raise A1111RequestError(
            "unknown_sampler", f"sampler `{text}` does not work with model `{model}`; use {choices}"
        )
    return usable[0].name


def a1111_sampler(name: str) -> tuple[str, str]:
    """Our sampler name in A1111's words: its label (as our PNG files write it) and its schedule type
    (``Automatic`` when it is the sampler's usual one). An unknown name comes back as given."""
    for item in A1111_SAMPLERS:
        if item.name == name:
            if item.label == "DPM++ 2M Karras":
                return item.label, "Karras"
            return item.label, item.schedule or AUTOMATIC
    return name, AUTOMATIC


def scheduler_items() -> list[dict[str, Any]]:
    """``GET /schedulers``: the schedule types a ``scheduler`` field may name here."""
    return [
        {"name": name, "label": label, "aliases": None, "default_rho": 7.0 if name == "karras" else None,
         "need_inner_model": None}
        for name, label in SCHEDULES.items()
    ]  # fmt: skip
