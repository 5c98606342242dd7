"""What a member can do besides asking for images: see their account and jobs, cancel their own jobs, change their
preferences, look at the queue, and list the models and samplers they may choose.

Part of the application core: every action takes the :class:`~bot.actors.Actor` asking and returns plain data.
Reach it as ``ImagineService.member``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.actors import Actor
from bot.errors import ImagineError, JobNotFoundError
from bot.jobs import ImageResult, Job
from bot.requests.model_limits import ModelChoice, model_choice
from bot.requests.preferences import Preferences, checked_preferences
from bot.requests.preparation import prompt_limits, usable_models
from bot.requests.prompt import clean_text
from bot.scheduling.reports import QueueSummary, queue_summary
from engine.samplers import SAMPLERS

if TYPE_CHECKING:
    from bot.application.service import ImagineService

MODEL_FLAG = re.compile(r"(?:^|\s)(?:--|—|–)model\s+(\S+)", re.IGNORECASE)
"""A prompt's ``--model NAME`` (for the sampler list; the parser checks the flag when the request comes)."""

MAX_JOBS_LISTED = 200
"""The most jobs one listing of a member's jobs gives."""


@dataclass(frozen=True)
class JobPlace:
    """One of a member's unfinished jobs and its place in the queue (0: rendering now)."""

    job: Job
    position: int
    eta_s: float | None = None
    """Seconds until it is likely done (queued jobs, with recent durations); None otherwise."""


@dataclass(frozen=True)
class JobFiles:
    """A job and the images it made (none until it completed)."""

    job: Job
    images: tuple[ImageResult, ...]


@dataclass(frozen=True)
class MemberOverview:
    """A member's account, preferences and unfinished jobs (for /info)."""

    balance: int
    tier: str
    banned: bool
    preferences: Preferences
    jobs: tuple[JobPlace, ...]


class MemberActions:
    """The member's own account, jobs and preferences."""

    def __init__(self, service: ImagineService) -> None:
        self._service = service

    async def overview(self, actor: Actor) -> MemberOverview:
        """Balance, tier, ban, preferences and every queued or running job with its position."""
        service = self._service
        preferences = await service.preferences.get(actor.user_id)
        account = await service.ledger.member(actor.user_id)
        places = []
        for job in await service.scheduler.active_jobs(actor.user_id):
            places.append(JobPlace(job, await service.scheduler.position(job), service.scheduler.eta_s(job.id)))
        return MemberOverview(account.balance, account.tier, account.banned, preferences, tuple(places))

    async def cancel(self, actor: Actor, job_id: int | None = None) -> Job:
        """Cancel (and refund) one of the actor's own unfinished jobs, the newest when ``job_id`` is None."""
        service = self._service
        if job_id is None:
            active = await service.scheduler.active_jobs(actor.user_id)
            if not active:
                raise ImagineError("you have no queued or running jobs")
            job_id = active[-1].id
        target = await service.scheduler.get(job_id)
        if target.user_id != actor.user_id:
            if actor.is_web:  # as for looking: another member's job is not there
                raise JobNotFoundError(job_id)
            raise ImagineError("you can only cancel your own jobs")
        if target.status.terminal:
            raise ImagineError(f"job {job_id} is already {target.status.value}")
        return await service.cancel(job_id, actor=f"member {actor.user_id}")

    async def job(self, actor: Actor, job_id: int) -> JobFiles:
        """One of the actor's jobs (any job for the console) with its images. Raises JobNotFoundError, also for
        another member's job (job ids are sequential: whether another member's job exists is not told)."""
        scheduler = self._service.scheduler
        job = await scheduler.get(job_id)
        if not actor.is_console and job.user_id != actor.user_id:
            raise JobNotFoundError(job_id)
        return JobFiles(job, tuple(await scheduler.images(job_id)))

    async def jobs(self, actor: Actor, *, limit: int = 50, before: int | None = None) -> list[JobFiles]:
        """The actor's own jobs with their images, newest first: at most ``limit`` (1-200), with ids below
        ``before`` when given (the next page)."""
        limit = max(1, min(limit, MAX_JOBS_LISTED))
        store = self._service.store
        rows = await store.fetch_all(
            "SELECT * FROM jobs WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (actor.user_id, before if before is not None else 2**63 - 1, limit),
        )
        jobs = [Job.from_row(row) for row in rows]
        images: dict[int, list[ImageResult]] = {job.id: [] for job in jobs}
        if jobs:
            marks = ", ".join("?" for _ in jobs)
            for row in await store.fetch_all(
                f"SELECT job_id, idx, path, seed, width, height FROM results WHERE job_id IN ({marks})"
                " ORDER BY job_id, idx",
                [job.id for job in jobs],
            ):
                images[row[0]].append(ImageResult(row[0], row[1], row[2], row[3], row[4], row[5]))
        return [JobFiles(job, tuple(images[job.id])) for job in jobs]

    async def preferences(self, actor: Actor) -> Preferences:
        """The actor's /settings (empty fields: the server's defaults)."""
        return await self._service.preferences.get(actor.user_id)

    async def update_preferences(self, actor: Actor, **changes: object) -> Preferences:
        """Change some of the actor's preferences: the text a member chose, or None for the server default. Each value
        obeys the rule of the flag it stands for (a crafted /settings select may send anything); returns them all."""
        limits = prompt_limits(self._service.settings, owner=actor.is_console)
        return await self._service.preferences.update(actor.user_id, **checked_preferences(changes, limits))

    async def queue(self, actor: Actor) -> QueueSummary:
        """How many jobs wait in each lane, which render, and whether the queue is paused (the same for everyone
        ``actor`` may ask)."""
        service = self._service
        return await queue_summary(service.store, paused=service.scheduler.paused)

    def models(self, actor: Actor) -> tuple[str, ...]:
        """The models the actor may choose that can be rendered now (a broken local model is left out)."""
        return usable_models(self._service.settings, owner=actor.is_console)

    def model_choices(self, actor: Actor) -> tuple[ModelChoice, ...]:
        """Each model of :meth:`models`, with its defaults and what a request may ask of it (steps, guidance, a
        negative prompt, samplers)."""
        settings = self._service.settings
        return tuple(model_choice(name, settings.registry[name], settings.max_steps) for name in self.models(actor))

    @staticmethod
    def samplers() -> tuple[str, ...]:
        """Every sampler a prompt may name with ``--sampler``."""
        return tuple(SAMPLERS)

    async def samplers_for(self, actor: Actor, model: str | None, prompt: str) -> tuple[str, ...]:
        """The samplers a request may name on the model it renders on: ``model`` (a command's option), else the
        prompt's last ``--model``, else the actor's /settings model, else the server's. A model that does not limit
        them, or a name that is not a model (its error comes with the request), gives every sampler."""
        named = model or next(reversed(MODEL_FLAG.findall(clean_text(prompt))), None)
        if not named and not actor.is_console:
            named = (await self._service.preferences.get(actor.user_id)).model
        settings = self._service.settings
        spec = settings.registry.get(named or settings.model)
        return tuple(spec.samplers) if spec is not None and spec.samplers else tuple(SAMPLERS)
