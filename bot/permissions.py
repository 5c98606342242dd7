"""Who counts as a moderator: a rule checked at run time, whatever Discord's own command overrides say."""

from __future__ import annotations

from collections.abc import Iterable


def is_moderator(
    *,
    manage_guild: bool,
    administrator: bool,
    is_owner: bool,
    role_ids: Iterable[int],
    role_names: Iterable[str],
    moderator_roles: Iterable[str],
) -> bool:
    """Manage Server, Administrator or the server owner; or a role named (or with an id) in the config."""
    if manage_guild or administrator or is_owner:
        return True
    wanted = {entry.strip().casefold() for entry in moderator_roles if entry.strip()}
    if not wanted:
        return False
    have = {str(role_id) for role_id in role_ids} | {name.casefold() for name in role_names}
    return bool(wanted & have)
