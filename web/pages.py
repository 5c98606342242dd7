"""The web UI: server-rendered pages (Jinja2, autoescaped) and their two static files, no build step.

``GET /`` shows the sign-in form without a valid key cookie and the prompt box with it; ``GET /gallery`` lists the
member's own jobs with their metadata and downloads; ``GET /jobs/{id}`` shows one job. The page script
(``/static/app.js``) talks only to the native API (``/api/v1``): it signs in (the API sets the HttpOnly cookie),
submits prompts, follows jobs over Server-Sent Events and presses the follow-up buttons.

Static files are served by the route ``GET /static/{name}`` from ``web/static/``, for the names in
:data:`STATIC_TYPES` only (no path is ever built from what the client sent). Every page carries a Content Security
Policy that allows scripts, styles and connections to this server alone (images also as ``data:`` URIs, the
previews), so even a bug that let text through as markup could not run a script.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from bot.core import Actor, ImagineService, Job, JobFiles, JobNotFoundError
from config.settings import Settings
from web.auth import presented_key
from web.job_views import job_out
from web.schemas import JobOut

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_TYPES: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
"""The only files ``/static/`` serves, with their media types."""
LANES = ("fast", "relax", "turbo")
"""The lanes the options panel offers (the server refuses one the member's tier does not allow)."""
GALLERY_PAGE = 24
"""Jobs on one page of the gallery."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Headers of every page (they show a member's own jobs: never cached, never framed)."""

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class JobView(JobOut):
    """What a page shows of one job: the native API's view of it (:func:`web.job_views.job_out`) and its times."""

    flag_reason: str = ""
    """Why the image safety check flagged some of its images; empty when none was."""

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.created_at, UTC)

    @property
    def created_iso(self) -> str:
        return self.created.isoformat(timespec="seconds")

    @property
    def created_text(self) -> str:
        return self.created.strftime("%Y-%m-%d %H:%M UTC")


def job_view(files: JobFiles) -> JobView:
    """A job and its images, for a template."""
    job: Job = files.job
    out = job_out(job, sorted(files.images, key=lambda image: image.index))
    return JobView(**dict(out), flag_reason=job.safety.reason if job.safety.flagged else "")


@dataclass(frozen=True)
class Account:
    """The header's account line."""

    balance: int
    tier: str
    lane: str
    banned: bool


async def signed_in(request: Request) -> tuple[Actor | None, bool]:
    """The actor of the request's key (the UI's cookie, or a header) and whether a key was sent but refused."""
    key = presented_key(request)
    if key is None:
        return None, False
    service: ImagineService = request.app.state.service
    identity = await service.keys.authenticate(key)
    if identity is None:
        return None, True
    return identity.actor(), False


async def account_of(request: Request, actor: Actor) -> tuple[Account, list[int]]:
    """The header's account line and the ids of the member's unfinished jobs."""
    service: ImagineService = request.app.state.service
    settings: Settings = request.app.state.settings
    overview = await service.member.overview(actor)
    lane = overview.preferences.lane or settings.default_lane
    account = Account(overview.balance, overview.tier, str(lane), overview.banned)
    return account, [place.job.id for place in overview.jobs]


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def sign_in_page(path: str, refused: bool) -> HTMLResponse:
    """The sign-in form; after signing in the script reloads ``path``."""
    return render("signin.html", account=None, page="signin", refused=refused, next_path=path)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    """The app: the prompt box with its options, and the member's unfinished jobs followed live."""
    actor, refused = await signed_in(request)
    if actor is None:
        return sign_in_page("/", refused)
    settings: Settings = request.app.state.settings
    account, active = await account_of(request, actor)
    return render("home.html", account=account, page="home", active=active, lanes=LANES, max_steps=settings.max_steps)


@router.get("/gallery", response_class=HTMLResponse)
async def gallery(request: Request, before: int | None = None) -> HTMLResponse:
    """The member's own jobs, newest first, a page at a time (``?before=<job id>`` for older ones)."""
    actor, refused = await signed_in(request)
    if actor is None:
        return sign_in_page("/gallery", refused)
    service: ImagineService = request.app.state.service
    jobs = [job_view(files) for files in await service.member.jobs(actor, limit=GALLERY_PAGE, before=before)]
    older = jobs[-1].id if len(jobs) == GALLERY_PAGE else None
    account, _active = await account_of(request, actor)
    return render("gallery.html", account=account, page="gallery", jobs=jobs, older=older)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: int) -> HTMLResponse:
    """One of the member's jobs: its images, settings, downloads and follow-up buttons (another's is not found)."""
    actor, refused = await signed_in(request)
    if actor is None:
        return sign_in_page(f"/jobs/{job_id}", refused)
    service: ImagineService = request.app.state.service
    account, _active = await account_of(request, actor)
    try:
        files = await service.member.job(actor, job_id)
    except JobNotFoundError:
        return render("missing.html", status_code=404, account=account, page="job", job_id=job_id)
    return render("job.html", account=account, page="job", job=job_view(files))


@router.get("/static/{name}")
async def static_file(request: Request, name: str) -> Response:
    """One of the UI's static files (:data:`STATIC_TYPES`), revalidated by its ETag."""
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    body = (STATIC_DIR / name).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
