"""/describe in the application core: ask for four prompts for an image, read them, and run one as ``/imagine``.

Part of the core's door, like :class:`~bot.application.member_actions.MemberActions`; reach it as
``ImagineService.describe``. A describe request is checked like any (access, ban, pause, a server that can describe
at all) before its image is received, and charged and queued through :meth:`ImagineService.submit` like any job. Its
suggestions are screened against the blocklist of the server that sees them: one that holds a blocked word is hidden
and gets no button. Running a suggestion goes through :meth:`ImagineService.prepare` as the member who pressed, so it
is moderated, priced and charged exactly as if they had typed it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.actors import Actor
from bot.application.telemetry import ServicePart, counting_refusals
from bot.errors import ImagineError, JobNotFoundError
from bot.jobs import Job, Kind, Status
from bot.requests.describe import attach_describe_image, prepare_describe
from bot.requests.follow_ups import shown_where
from bot.requests.moderation import BlockedPromptError
from bot.requests.preparation import Prepared
from bot.storage.describe_suggestions import load_suggestions
from engine.describe_text import suggestion_text

if TYPE_CHECKING:
    from bot.application.service import ReceivedImage


@dataclass(frozen=True)
class Suggestion:
    """One prompt a describe job wrote. ``prompt`` is None when it holds a word the viewer's server blocks: it is
    then neither shown nor offered."""

    index: int
    prompt: str | None

    @property
    def offered(self) -> bool:
        return self.prompt is not None


@dataclass(frozen=True)
class Description:
    """A describe job and its suggestions as one viewer may see them (none until the job completed)."""

    job: Job
    suggestions: tuple[Suggestion, ...]

    @property
    def caption(self) -> str | None:
        """The first suggestion offered, without its ``--ar`` flag (A1111's interrogate answer); None when none is."""
        return next((suggestion_text(item.prompt) for item in self.suggestions if item.prompt is not None), None)


class DescribeActions(ServicePart):
    """/describe for every surface: prepare, attach the image, read the suggestions, run one."""

    @counting_refusals
    async def prepare(self, actor: Actor) -> Prepared:
        """The describe job ``actor`` asks for, its image still to come (:meth:`attach`): access checked (channel,
        ban, pause) and this server able to describe. Raises an ImagineError saying what to change."""
        service = self._service
        await service._check_access(actor)
        [prepared] = await service._moderated(actor, [prepare_describe(service.settings)])
        return prepared

    @staticmethod
    def attach(prepared: Prepared, image: ReceivedImage) -> Prepared:
        """The describe job with its received (checked, staged) image."""
        return attach_describe_image(prepared, image.input)

    async def description(self, actor: Actor, job_id: int) -> Description:
        """A describe job shown where ``actor`` is (its channel; the web: their own; the console: any), with its
        suggestions screened for ``actor``'s server. Raises JobNotFoundError otherwise."""
        job = await self._service.scheduler.get(job_id)
        if job.kind is not Kind.DESCRIBE or not shown_where(job, actor):
            raise JobNotFoundError(job_id)
        return await self._described(job, actor)

    async def description_of(self, job: Job) -> Description:
        """A describe job's suggestions screened for where it was asked (what its result post may offer)."""
        return await self._described(job, Actor(job.user_id, job.origin))

    async def _described(self, job: Job, viewer: Actor) -> Description:
        prompts = await load_suggestions(self._service.store, job.id)
        screened = []
        for index, prompt in enumerate(prompts):
            try:
                await self._service.moderation.check_prompts(viewer, [prompt])
            except BlockedPromptError:
                screened.append(Suggestion(index, None))
            else:
                screened.append(Suggestion(index, prompt))
        return Description(job, tuple(screened))

    @counting_refusals
    async def prepare_imagine(self, actor: Actor, job_id: int, index: int) -> list[Prepared]:
        """The /imagine job(s) of suggestion ``index`` (0-based) of describe job ``job_id``, prepared for ``actor`` as
        a typed prompt is (their preferences, this server's rules, the blocklist: a blocked suggestion is refused
        here, before anything is charged). Pressing the same button again while its job waits is refused at
        admission (DuplicateJobError). Raises an ImagineError saying what to change."""
        service = self._service
        await service._check_access(actor)
        job = await service.scheduler.get(job_id)
        if job.kind is not Kind.DESCRIBE or not shown_where(job, actor):
            raise JobNotFoundError(job_id)
        if job.status is not Status.COMPLETED:
            raise ImagineError(f"job {job_id} has no suggestions ({job.status.value}); wait for it to finish")
        prompts = await load_suggestions(service.store, job_id)
        if not 0 <= index < len(prompts):
            raise ImagineError(f"job {job_id} has no suggestion {index + 1}")
        prepared = await service.prepare(actor, prompts[index])
        return [replace(item, parent_id=job_id, parent_index=index) for item in prepared]
