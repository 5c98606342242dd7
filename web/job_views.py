"""The core's jobs as the native API shows them (:class:`web.schemas.JobOut`), and the follow-ups a job offers.

The follow-ups mirror the buttons Discord puts under a result (:func:`cogs.results.result_view`): a grid offers
upscale, reroll and vary; an upscaled image offers vary (subtle, strong), zoom out and pan; a sweep offers none.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.core import (
    Account,
    Action,
    Admitted,
    ImageResult,
    Job,
    Kind,
    MemberOverview,
    ModelChoice,
    Preferences,
    QueueSummary,
    Status,
)
from web.native_common import API_PREFIX
from web.schemas import (
    AccountOut,
    AdminJobOut,
    CreatedOut,
    EntryOut,
    ImageOut,
    JobOut,
    JobPlaceOut,
    MemberOut,
    ModelOut,
    ParamsOut,
    PreferencesOut,
    QueueOut,
)

ACTIONS: dict[str, Action] = {
    "upscale": Action.UPSCALE,
    "vary": Action.VARY,
    "reroll": Action.REROLL,
    "vary_subtle": Action.VARY_SUBTLE,
    "vary_strong": Action.VARY_STRONG,
    "zoom_out_2": Action.ZOOM_OUT_2,
    "zoom_out_1.5": Action.ZOOM_OUT_15,
    "pan_left": Action.PAN_LEFT,
    "pan_right": Action.PAN_RIGHT,
    "pan_up": Action.PAN_UP,
    "pan_down": Action.PAN_DOWN,
}
"""Each action name of ``POST /jobs/{id}/actions`` and the button it stands for."""
GRID_ACTIONS = ("upscale", "reroll", "vary")
UPSCALE_ACTIONS = (
    "vary_subtle",
    "vary_strong",
    "zoom_out_2",
    "zoom_out_1.5",
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
)


def actions_for(job: Job) -> tuple[str, ...]:
    """The follow-ups a job offers now: none until it completed, none on a sweep (as the Discord buttons)."""
    if job.status is not Status.COMPLETED or job.kind in (Kind.SWEEP, Kind.DESCRIBE):  # describe: its suggestions
        return ()
    return UPSCALE_ACTIONS if job.kind is Kind.UPSCALE else GRID_ACTIONS


def image_url(job_id: int, index: int) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/images/{index}"


def grid_url(job_id: int) -> str:
    return f"{API_PREFIX}/jobs/{job_id}/grid"


def job_out(job: Job, images: Iterable[ImageResult] = (), *, position: int = 0, eta_s: float | None = None) -> JobOut:
    """A job with its images, its place in the queue (0 unless queued) and the follow-ups it offers."""
    return JobOut(**_job_fields(job, images, position=position if job.status is Status.QUEUED else 0, eta_s=eta_s))


def admin_job_out(job: Job) -> AdminJobOut:
    """A job of the moderator's server (queued or running: no images yet), with its member."""
    return AdminJobOut(**_job_fields(job, (), position=0, eta_s=None), user_id=job.user_id)


def _job_fields(job: Job, images: Iterable[ImageResult], *, position: int, eta_s: float | None) -> dict[str, object]:
    params = job.params
    return {
        "id": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "lane": job.lane.value,
        "prompt": job.prompt,
        "cost": job.cost,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
        "parent_id": job.parent_id,
        "parent_index": job.parent_index,
        "position": position,
        "eta_s": eta_s,
        "params": ParamsOut(
            model=params.model,
            width=params.width,
            height=params.height,
            steps=params.steps,
            cfg=params.cfg,
            seed=params.seed,
            sampler=params.sampler,
            negative_prompt=params.negative_prompt,
            images=params.images,
            strength=params.strength,
        ),
        "images": [
            ImageOut(
                index=image.index,
                url=image_url(job.id, image.index),
                width=image.width,
                height=image.height,
                seed=image.seed,
                flagged=job.safety.is_flagged(image.index),
            )
            for image in images
        ],
        "grid_url": grid_url(job.id) if job.status is Status.COMPLETED and job.grid_path else None,
        "actions": list(actions_for(job)),
        "safety": job.safety.text,
    }


def created_out(admitted: Admitted) -> CreatedOut:
    """What queueing a request answers: each job with its place, and the charge."""
    return CreatedOut(
        jobs=[job_out(item.job, position=item.position, eta_s=item.eta_s) for item in admitted.jobs],
        cost=admitted.cost,
        balance=admitted.balance,
        lane=admitted.lane.value,
        tier=admitted.tier,
    )


def preferences_out(preferences: Preferences) -> PreferencesOut:
    return PreferencesOut(
        model=preferences.model,
        aspect=preferences.aspect,
        steps=preferences.steps,
        sampler=preferences.sampler,
        lane=preferences.lane.value if preferences.lane is not None else None,
    )


def model_out(choice: ModelChoice) -> ModelOut:
    return ModelOut(
        name=choice.name,
        family=choice.family,
        base_size=choice.base_size,
        steps=choice.steps,
        max_steps=choice.max_steps,
        cfg=choice.cfg,
        max_cfg=choice.max_cfg,
        guidance=choice.guidance,
        negative_prompt=choice.negative_prompt,
        sampler=choice.sampler,
        samplers=list(choice.samplers),
    )


def places_out(overview: MemberOverview) -> list[JobPlaceOut]:
    return [
        JobPlaceOut(job=job_out(place.job, position=place.position, eta_s=place.eta_s), position=place.position)
        for place in overview.jobs
    ]


def account_out(user_id: int, account: Account) -> AccountOut:
    member = account.member
    return AccountOut(
        user_id=user_id,
        member=(
            MemberOut(
                user_id=member.user_id,
                tier=member.tier,
                balance=member.balance,
                banned=member.banned,
                default_lane=member.default_lane,
            )
            if member is not None
            else None
        ),
        entries=[
            EntryOut(
                id=entry.id,
                delta=entry.delta,
                balance_after=entry.balance_after,
                kind=entry.kind.value,
                reason=entry.reason,
                job_id=entry.job_id,
                actor=entry.actor,
                created_at=entry.created_at,
            )
            for entry in account.entries
        ],
    )


def queue_out(summary: QueueSummary) -> QueueOut:
    """How many jobs wait in each lane and how many render (no member's prompts)."""
    return QueueOut(
        paused=summary.paused,
        queued={lane.value: count for lane, count in summary.queued.items()},
        total_queued=summary.total_queued,
        running=len(summary.running),
    )
