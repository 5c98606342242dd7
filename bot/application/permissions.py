"""Who counts as a moderator: a rule checked at run time, whatever Discord's own command overrides say."""

from __future__ import annotations

from collections.abc import Iterable

from bot.actors import Actor
from bot.jobs import Job


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


def may_moderate(actor: Actor, moderator_roles: Iterable[str]) -> bool:
    """The console always; a Discord member by :func:`is_moderator` on the roles its server gave; nobody else."""
    if actor.is_console:
        return True
    roles = actor.roles
    if roles is None or actor.guild_id is None:
        return False
    return is_moderator(
        manage_guild=roles.manage_guild,
        administrator=roles.administrator,
        is_owner=roles.is_owner,
        role_ids=roles.role_ids,
        role_names=roles.role_names,
        moderator_roles=moderator_roles,
    )


def in_server_of(job: Job, actor: Actor) -> bool:
    """Whether a moderator's server is where ``job`` was asked for (the console's scope is every job). A moderator
    of one server neither sees nor cancels the jobs of another server sharing the bot."""
    return actor.is_console or job.origin.guild_id == actor.guild_id
