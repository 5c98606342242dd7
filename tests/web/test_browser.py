"""The web UI in a real browser: Debian's Chromium (driven by Playwright, never downloaded) against a real uvicorn
server in the test's event loop, over the real service and the session's tiny-model engine.

Screenshots of each step land in ``test-artifacts/web-ui/`` at the top of the repository.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    expect,
)

from bot.core import ImagineService
from tests.web.conftest import ARTIFACTS
from web.auth import COOKIE

pytestmark = pytest.mark.slow

WAIT_MS = 30_000
"""The longest a step waits for the page (a tiny render takes about a second)."""
PHONE = {"width": 390, "height": 844}


class PageProblems:
    """Script errors and console errors of a page (a CSP refusal is one); failed requests the test causes are not."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")


async def signed_in_context(browser: Browser, base_url: str, key: str, **options: object) -> BrowserContext:
    """A browser context that already holds the sign-in cookie (as after signing in)."""
    context = await browser.new_context(**options)  # type: ignore[arg-type]
    await context.add_cookies([{"name": COOKIE, "value": key, "url": base_url, "httpOnly": True, "sameSite": "Strict"}])
    return context


async def card_id(card: Locator) -> int:
    return int(await card.get_attribute("data-job-id") or 0)


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def images_loaded(page: Page, selector: str, count: int) -> None:
    """Wait until ``count`` images match ``selector`` and every one has decoded (naturalWidth > 0)."""
    await page.wait_for_function(
        """([selector, count]) => {
            const images = [...document.querySelectorAll(selector)];
            return images.length === count && images.every((image) => image.complete && image.naturalWidth > 0);
        }""",
        arg=[selector, count],
        timeout=WAIT_MS,
    )


async def record_statuses(page: Page) -> None:
    """Record every status and progress value the job cards show, as they change."""
    await page.evaluate(
        """() => {
            window.seen = { statuses: [], steps: [], previews: 0 };
            new MutationObserver((changes) => {
                for (const change of changes) {
                    const node = change.target;
                    if (node.matches && node.matches("article.job") && change.attributeName === "data-status") {
                        window.seen.statuses.push(node.dataset.status);
                    } else if (node.matches && node.matches("progress") && change.attributeName === "value") {
                        window.seen.steps.push(Number(node.value));
                    } else if (node.matches && node.matches("img.preview") && change.attributeName === "src") {
                        window.seen.previews += 1;
                    }
                }
                for (const change of changes) {
                    for (const node of change.addedNodes || []) {
                        if (node.matches && node.matches("article.job")) window.seen.statuses.push(node.dataset.status);
                    }
                }
            }).observe(document.body, { subtree: true, childList: true, attributes: true });
        }"""
    )


async def test_sign_in_imagine_watch_it_render_and_upscale(
    browser: Browser, base_url: str, service: ImagineService, member_key: str
) -> None:
    """Sign in with a key, see a refusal as an alert, render a grid live, press U1, see the upscale, sign out."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    problems = PageProblems(page)
    await page.goto(base_url + "/")
    await expect(page.get_by_label("API key")).to_be_visible()
    await shot(page, "01-sign-in")

    await page.get_by_label("API key").fill("ib_000000000000_" + "A" * 43)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#alert")).to_contain_text("not valid")
    await page.get_by_label("API key").fill(member_key)
    await page.get_by_role("button", name="Sign in").click()
    prompt = page.get_by_label("Prompt", exact=True)
    await expect(prompt).to_be_visible()
    await expect(page.locator("#alert")).to_be_hidden()
    identity = await service.keys.authenticate(member_key)
    assert identity is not None
    start_balance = (await service.member.overview(identity.actor())).balance
    await expect(page.locator("#balance")).to_have_text(str(start_balance))
    await shot(page, "02-signed-in")

    await prompt.fill("a red fox --ar 9:1")
    await page.get_by_role("button", name="Imagine").click()
    await expect(page.locator("#alert")).to_contain_text("--ar")
    await shot(page, "03-refused")

    await prompt.fill("a red fox in fresh snow")
    await page.get_by_text("Options").click()
    await page.get_by_label("Seed").fill("7")
    await page.get_by_label("Steps").fill("3")
    await expect(page.locator("#composed")).to_have_text("a red fox in fresh snow --steps 3 --seed 7")
    await record_statuses(page)
    await page.get_by_role("button", name="Imagine").click()
    card = page.locator("article.job").first
    await expect(card).to_be_visible()
    await shot(page, "04-submitted")

    await expect(card).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    await images_loaded(page, "article.job[data-status=completed] .images img", 4)
    seen = await page.evaluate("window.seen")
    assert seen["statuses"][0] in {"queued", "running"}, seen
    assert seen["statuses"][-1] == "completed", seen
    assert seen["steps"] == sorted(seen["steps"]) and all(0 < step <= 3 for step in seen["steps"]), seen
    await expect(card.locator(".meta")).to_contain_text("7")
    for label in ("U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4"):
        await expect(card.get_by_role("button", name=label)).to_have_text(label)
    await expect(card.get_by_role("button", name="Reroll")).to_have_text("\U0001f504 Reroll")
    await shot(page, "05-grid")

    await card.get_by_role("button", name="Upscale image 1").click()
    upscale = page.locator("article.job").first
    await expect(upscale.locator(".kind")).to_have_text("upscale", timeout=WAIT_MS)
    await expect(upscale).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    await images_loaded(page, "article.job:first-child .images img", 1)
    await expect(upscale.get_by_role("button", name="Vary subtly")).to_be_visible()
    await expect(upscale.get_by_role("button", name="Pan left")).to_be_visible()
    end_balance = (await service.member.overview(identity.actor())).balance
    await expect(page.locator("#balance")).to_have_text(str(end_balance))
    assert end_balance < start_balance
    await shot(page, "06-upscaled")

    await page.get_by_role("link", name="Gallery").click()
    await expect(page.locator("article.job")).to_have_count(2)
    await images_loaded(page, "article.job .images img", 5)
    await shot(page, "07-gallery")

    grid_id = await card_id(page.locator("article.job").last)
    await page.get_by_role("link", name=f"#{grid_id}", exact=True).first.click()
    await expect(page).to_have_url(f"{base_url}/jobs/{grid_id}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(f"#{grid_id}")
    await expect(page.get_by_role("button", name="V2")).to_be_visible()
    await images_loaded(page, "article.job .images img", 4)
    await shot(page, "08-job-page")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API key")).to_be_visible()
    assert problems.errors == []


async def test_on_a_phone_nothing_scrolls_sideways(
    browser: Browser, base_url: str, service: ImagineService, member_key: str
) -> None:
    """390×844: the prompt box fits and shows, the options and a gallery with a very long word do not overflow."""
    identity = await service.keys.authenticate(member_key)
    assert identity is not None
    actor = identity.actor()
    await service.submit(actor, await service.prepare(actor, "a" * 300 + " lighthouse --seed 3"))
    context = await signed_in_context(browser, base_url, member_key, viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    problems = PageProblems(page)
    no_sideways_scroll = "document.documentElement.scrollWidth <= window.innerWidth"

    await page.goto(base_url + "/")
    prompt = page.get_by_label("Prompt", exact=True)
    await expect(prompt).to_be_in_viewport()
    box = await prompt.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert await page.evaluate(no_sideways_scroll)
    await shot(page, "09-phone-home")

    await page.get_by_text("Options").click()
    await expect(page.get_by_label("Negative prompt")).to_be_visible()
    assert await page.evaluate(no_sideways_scroll)
    await shot(page, "10-phone-options")

    await page.goto(base_url + "/gallery")
    await expect(page.locator("article.job")).to_have_count(1)
    assert await page.evaluate(no_sideways_scroll)
    await shot(page, "11-phone-gallery")
    await context.close()
    assert problems.errors == []


async def test_keyboard_only_tab_to_the_prompt_type_and_press_enter(
    browser: Browser, base_url: str, member_key: str
) -> None:
    """Tab reaches the prompt (with a visible focus ring), Enter submits, and focus moves to the new job."""
    context = await signed_in_context(browser, base_url, member_key, viewport={"width": 1024, "height": 800})
    page = await context.new_page()
    problems = PageProblems(page)
    await page.goto(base_url + "/")
    for _ in range(20):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "prompt":
            break
    else:
        raise AssertionError("Tab never reached the prompt box")
    assert await page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    await page.keyboard.type("a lighthouse at night, long exposure")
    await page.keyboard.press("Enter")
    card = page.locator("article.job").first
    await expect(card).to_be_visible()
    await expect(page.locator("#announce")).to_contain_text("Started job")
    focused = await page.evaluate("document.activeElement.id")
    assert focused.startswith("job-") and focused.endswith("-title"), focused
    await expect(card).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    await images_loaded(page, "article.job .images img", 4)
    await expect(card.get_by_role("button", name="Upscale image 1")).to_be_visible()
    await shot(page, "12-keyboard")
    await context.close()
    assert problems.errors == []


async def test_an_uploaded_image_starts_an_img2img_job(browser: Browser, base_url: str, member_key: str) -> None:
    """The browser reads the chosen file as a data URI; the job renders from it at the chosen strength."""
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 90, 40)).save(picture, format="PNG")
    context = await signed_in_context(browser, base_url, member_key, viewport={"width": 1024, "height": 800})
    page = await context.new_page()
    problems = PageProblems(page)
    await page.goto(base_url + "/")
    strength = page.get_by_label("Strength")
    await expect(strength).to_be_disabled()
    await page.get_by_text("Options").click()
    await page.get_by_label("Start from an image").set_input_files(
        {"name": "start.png", "mimeType": "image/png", "buffer": picture.getvalue()}
    )
    await expect(strength).to_be_enabled()
    await strength.fill("0.5")
    await page.get_by_label("Prompt", exact=True).fill("the same scene at dusk")
    await page.get_by_role("button", name="Imagine").click()
    card = page.locator("article.job").first
    await expect(card.locator(".kind")).to_have_text("img2img")
    await expect(card).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    await images_loaded(page, "article.job .images img", 4)
    await expect(card.locator(".meta div", has_text="Strength")).to_contain_text("0.5")
    await shot(page, "13-img2img")
    await context.close()
    assert problems.errors == []
