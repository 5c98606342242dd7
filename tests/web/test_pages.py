"""The web UI's pages over the real app: the sign-in form without a key, the prompt box, the gallery and a job page
(members' words always shown as text), and the few static files with their media types."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bot.core import ImagineService, Status
from web import pages
from web.auth import COOKIE

HOSTILE = '<script>alert("owned")</script> a fox & <b>friends</b>'


async def imagine(service: ImagineService, key: str, prompt: str) -> int:
    """Queue a job for the key's member the way every surface does; its id."""
    identity = await service.keys.authenticate(key)
    assert identity is not None
    actor = identity.actor()
    admitted = await service.submit(actor, await service.prepare(actor, prompt))
    return admitted.jobs[0].job.id


async def finished(service: ImagineService, key: str, job_id: int, timeout_s: float = 60.0) -> Status:
    identity = await service.keys.authenticate(key)
    assert identity is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = (await service.member.job(identity.actor(), job_id)).job.status
        if status.terminal:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def signed_in(client: httpx.AsyncClient, key: str) -> httpx.AsyncClient:
    client.cookies.set(COOKIE, key)
    return client


@pytest.mark.parametrize("path", ["/", "/gallery", "/jobs/1"])
async def test_without_a_key_each_page_is_the_sign_in_form(client: httpx.AsyncClient, path: str) -> None:
    """No cookie: a sign-in form (HTML, not a JSON 401), no prompt box, the page's security headers."""
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="signin"' in response.text and 'for="key"' in response.text
    assert 'id="prompt"' not in response.text and 'id="balance"' not in response.text
    assert f'data-next="{path}"' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


async def test_a_revoked_key_shows_the_sign_in_form_and_says_why(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """A cookie whose key was revoked: the sign-in form with a notice, not an error page."""
    await service.keys.revoke(member_key.split("_")[1], by="console")
    response = await signed_in(client, member_key).get("/")
    assert 'id="signin"' in response.text
    assert "not valid any more" in response.text


async def test_signed_in_the_app_page_has_the_prompt_box_options_and_account(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """The prompt box with its label and flag examples, every option labelled, the account in the header."""
    response = await signed_in(client, member_key).get("/")
    html = response.text
    assert response.status_code == 200
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert 'id="prompt"' in html and 'for="prompt"' in html and "--ar 3:2" in html
    for option in ("ar", "model", "sampler", "steps", "cfg", "seed", "no", "lane", "image", "strength"):
        assert f'for="opt-{option}"' in html and f'id="opt-{option}"' in html
    identity = await service.keys.authenticate(member_key)
    assert identity is not None
    overview = await service.member.overview(identity.actor())
    assert f'<dd id="balance">{overview.balance}</dd>' in html
    assert f'<dd id="tier">{overview.tier}</dd>' in html
    assert 'aria-live="assertive"' in html and 'id="signout"' in html
    assert "<script>" not in html  # the only script is the static file


async def test_a_prompt_with_markup_shows_as_text_in_the_gallery_and_on_its_page(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """Members' words are escaped everywhere a page shows them."""
    job_id = await imagine(service, member_key, HOSTILE)
    signed_in(client, member_key)
    for path in ("/gallery", f"/jobs/{job_id}"):
        html = (await client.get(path)).text
        assert "<script>alert" not in html and "<b>friends" not in html
        assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; a fox &amp; &lt;b&gt;friends&lt;/b&gt;" in html


async def test_the_gallery_shows_own_jobs_with_metadata_and_downloads(
    client: httpx.AsyncClient, service: ImagineService, member_key: str, other_key: str
) -> None:
    """A finished job: its singles and grid to download, seed, size, model and cost; another member's job: absent."""
    mine = await imagine(service, member_key, "a red fox in fresh snow --seed 4242")
    theirs = await imagine(service, other_key, "a blue heron at dawn")
    assert await finished(service, member_key, mine) is Status.COMPLETED
    identity = await service.keys.authenticate(member_key)
    assert identity is not None
    files = await service.member.job(identity.actor(), mine)
    html = (await signed_in(client, member_key).get("/gallery")).text
    assert "a red fox in fresh snow" in html and "a blue heron" not in html and f"#{theirs}<" not in html
    assert "<dd>4242</dd>" in html
    assert f"<dd>{files.job.params.width}×{files.job.params.height}</dd>" in html
    assert f"<dd>{files.job.params.model}</dd>" in html and f"<dd>{files.job.cost}</dd>" in html
    for image in files.images:
        url = f"/api/v1/jobs/{mine}/images/{image.index}"
        assert f'<a href="{url}" download="imaginebot-{mine}-{image.index + 1}.png">' in html
    assert f'href="/api/v1/jobs/{mine}/grid" download=' in html


async def test_the_gallery_pages_back_through_older_jobs(
    client: httpx.AsyncClient, service: ImagineService, member_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full page links to the next older one; the last page links nowhere."""
    monkeypatch.setattr(pages, "GALLERY_PAGE", 1)
    older = await imagine(service, member_key, "an older lighthouse")
    newer = await imagine(service, member_key, "a newer windmill")
    signed_in(client, member_key)
    first = (await client.get("/gallery")).text
    assert "a newer windmill" in first and "an older lighthouse" not in first
    assert f'href="/gallery?before={newer}"' in first
    second = (await client.get(f"/gallery?before={newer}")).text
    assert "an older lighthouse" in second and "a newer windmill" not in second
    assert f'href="/gallery?before={older}"' in second  # a full page: one more (empty) page may follow
    assert "No jobs yet" in (await client.get(f"/gallery?before={older}")).text


async def test_another_members_job_page_is_not_found(
    client: httpx.AsyncClient, service: ImagineService, member_key: str, other_key: str
) -> None:
    """Job ids are sequential: another member's job looks exactly like a missing one."""
    theirs = await imagine(service, other_key, "a private painting")
    html_theirs = await signed_in(client, member_key).get(f"/jobs/{theirs}")
    html_none = await client.get("/jobs/999999999")
    assert html_theirs.status_code == html_none.status_code == 404
    assert "a private painting" not in html_theirs.text
    assert html_theirs.text.replace(str(theirs), "N") == html_none.text.replace("999999999", "N")


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_are_served_with_their_types(client: httpx.AsyncClient, name: str, media_type: str) -> None:
    """Each static file: its bytes, its media type, no sniffing, and a 304 when it has not changed."""
    response = await client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (pages.STATIC_DIR / name).read_bytes()
    again = await client.get(f"/static/{name}", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and not again.content


@pytest.mark.parametrize(
    "path", ["/static/pages.py", "/static/..%2Fpages.py", "/static/%2e%2e%2fauth.py", "/static/app.js.map", "/static/"]
)
async def test_only_the_listed_static_files_are_served(client: httpx.AsyncClient, path: str) -> None:
    """No other name, and no path out of the folder, is ever read."""
    response = await client.get(path)
    assert response.status_code == 404
    assert b"import" not in response.content


async def test_the_page_script_never_writes_markup() -> None:
    """Text reaches the page only through textContent and attributes, and every fetch marks itself."""
    script = (pages.STATIC_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert script.count("fetch(") == 1 and '"X-Imaginebot-Request": "1"' in script
