"""The pages around the workspace in real Chromium: sign-in, lists, the organization chooser."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Browser

from tests.browser import SignedInPage
from tests.conftest import register
from tests.live_server import LiveServer
from tests.workspace_setup import PASSWORD, alice, bob, job, new_job, person

__all__ = ["alice", "bob", "job"]  # fixtures shared by the browser tests


def test_the_lists_lead_to_the_workspace_and_strangers_are_refused(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], job: int
) -> None:
    register(server, "carol", PASSWORD)
    signed = person(browser, server, pages, "bob")
    page = signed.page
    page.click("#nav a:has-text('Jobs')")
    page.click(f"tr[data-job='{job}'] a:has-text('Open')")
    page.wait_for_selector("#connection[data-status=live]")
    assert page.url.endswith(f"#/jobs/{job}")

    carol = person(browser, server, pages, "carol")
    carol.page.goto("/#/jobs")
    carol.page.wait_for_selector("table.list")
    assert carol.page.query_selector(f"tr[data-job='{job}']") is None
    carol.page.goto(f"/#/jobs/{job}")
    carol.page.wait_for_selector(".error")
    assert "Not found" in carol.page.inner_text(".error") or "not found" in carol.page.inner_text(
        ".error"
    )
    carol.errors.clear()  # the refused requests are logged by the browser


def test_a_wrong_password_is_said_on_the_form(browser: Browser, server: LiveServer) -> None:
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    page.goto("/")
    page.fill("#login-form input[name=username]", "alice")
    page.fill("#login-form input[name=password]", "not-it")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-form .error:not([hidden])")
    assert page.inner_text("#login-form .error")
    context.close()


def test_the_organization_chooser_narrows_the_lists(
    browser: Browser,
    server: LiveServer,
    pages: list[SignedInPage],
    bob: httpx.Client,
    job: int,
    tmp_path: Path,
) -> None:
    made = bob.post("/api/organizations", json={"slug": "bobs-shop", "name": "Bob's shop"})
    assert made.status_code == 201, made.text
    bob.headers["X-Organization"] = "bobs-shop"
    try:
        org_job = new_job(bob, tmp_path)
    finally:
        del bob.headers["X-Organization"]
    page = person(browser, server, pages, "bob").page
    page.goto("/#/jobs")
    page.wait_for_selector(f"tr[data-job='{org_job}']")
    assert page.query_selector(f"tr[data-job='{job}']") is not None

    page.select_option("#organization", "bobs-shop")
    page.wait_for_function(
        f"document.querySelector(\"tr[data-job='{org_job}']\")"
        f" && !document.querySelector(\"tr[data-job='{job}']\")"
    )
    page.reload()
    page.wait_for_selector(f"tr[data-job='{org_job}']")
    assert page.input_value("#organization") == "bobs-shop"

    page.select_option("#organization", "")
    page.wait_for_selector(f"tr[data-job='{job}']")
