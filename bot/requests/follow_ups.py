"""What a result button asks for: the rules that turn (parent job, button) into a new job. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from bot.actors import Actor
from bot.errors import ImagineError
from bot.jobs import Job, Kind, Status
from bot.requests.custom_ids import Action


@dataclass(frozen=True)
class FollowUp:
    kind: Kind
    variation: str = "strong"
    zoom: float = 2.0
    pan: str = ""
    needs_image: bool = True
    on_upscale_only: bool = False


FOLLOW_UPS: dict[Action, FollowUp] = {
    Action.UPSCALE: FollowUp(Kind.UPSCALE),
    Action.VARY: FollowUp(Kind.VARIATION, variation="strong"),
    Action.REROLL: FollowUp(Kind.REROLL, needs_image=False),
    Action.VARY_SUBTLE: FollowUp(Kind.VARIATION, variation="subtle", on_upscale_only=True),
    Action.VARY_STRONG: FollowUp(Kind.VARIATION, variation="strong", on_upscale_only=True),
    Action.ZOOM_OUT_15: FollowUp(Kind.ZOOM, zoom=1.5, on_upscale_only=True),
    Action.ZOOM_OUT_2: FollowUp(Kind.ZOOM, zoom=2.0, on_upscale_only=True),
    Action.PAN_LEFT: FollowUp(Kind.PAN, pan="left", on_upscale_only=True),
    Action.PAN_RIGHT: FollowUp(Kind.PAN, pan="right", on_upscale_only=True),
    Action.PAN_UP: FollowUp(Kind.PAN, pan="up", on_upscale_only=True),
    Action.PAN_DOWN: FollowUp(Kind.PAN, pan="down", on_upscale_only=True),
}


def check_follow_up(parent: Job, action: Action, index: int, image_count: int) -> FollowUp:
    """The follow-up a button asks for; ImagineError when the parent cannot give it."""
    follow_up = FOLLOW_UPS[action]
    if parent.status is not Status.COMPLETED:
        raise ImagineError(f"job {parent.id} has no images yet ({parent.status.value}); wait for it to finish")
    if parent.kind is Kind.SWEEP:
        raise ImagineError("a sweep grid has no upscale or variation buttons; run /imagine with the values you like")
    if parent.kind is Kind.DESCRIBE:
        raise ImagineError("a /describe result has no upscale or variation buttons; press one of its suggestions")
    if follow_up.on_upscale_only and parent.kind is not Kind.UPSCALE:
        raise ImagineError("this button works on an upscaled image: press U1–U4 first")
    if follow_up.needs_image and not 0 <= index < image_count:
        raise ImagineError(f"job {parent.id} has no image {index + 1}")
    return follow_up


def shown_where(parent: Job, actor: Actor) -> bool:
    """Whether ``parent``'s result (and so its buttons) is where ``actor`` pressed: the same server and channel.
    Job ids are sequential, so a press crafted with another server's or another channel's job id would otherwise
    copy an image its member cannot see. The console, which has no buttons, may follow up any job; a web member, their
    own jobs."""
    if actor.is_console:
        return True
    if actor.is_web:  # the web shows a member only their own jobs
        return parent.user_id == actor.user_id
    return parent.origin.guild_id == actor.guild_id and parent.origin.channel_id == actor.channel_id
