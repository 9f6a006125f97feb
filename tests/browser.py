"""Real Chromium (Debian's package, never a downloaded one) driven by Playwright, for tests
and benchmarks of the browser client."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Chromium is not installed: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class SignedInPage:
    """A page signed in as one user, with the page's script errors kept for the test."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.context.close()


def sign_in(browser: Browser, base_url: str, username: str, password: str) -> SignedInPage:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base_url)
    page = context.new_page()
    signed = SignedInPage(context, page)
    page.on("pageerror", lambda error: signed.errors.append(str(error)))
    page.on(
        "console",
        lambda message: signed.errors.append(message.text) if message.type == "error" else None,
    )
    page.goto("/#/login")
    page.fill("#login-form input[name=username]", username)
    page.fill("#login-form input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector(f"#whoami:has-text('{username}')")
    return signed


def open_job(signed: SignedInPage, job_id: int) -> Page:
    page = signed.page
    page.goto(f"/#/jobs/{job_id}")
    page.wait_for_selector("#connection[data-status=live]")
    page.wait_for_function("window.__palimpsest?.metrics?.firstFrameShownMs !== undefined")
    return page


def to_client(page: Page, x: float, y: float) -> tuple[float, float]:
    """Where image point (x, y) of the shown frame is on the page."""
    cx, cy = page.evaluate(
        "([x, y]) => window.__palimpsest.workspace.viewer.toClient(x, y)", [x, y]
    )
    return cx, cy
