"""Browser fixtures: Playwright driving the system Chromium against pytest-django's
live server (a real HTTP server on the test database).

Chromium comes from the Debian package `chromium` (.ci/run installs it). Where it is
missing, browser tests skip with that reason instead of failing obscurely.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("SPYGLASS_CHROMIUM", "/usr/bin/chromium")
# Flags for a closed network and root in a container (see the machine notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Playwright's sync API runs an event loop in this thread; Django refuses sync ORM
# calls from a thread with a running loop unless told this is intended (tests only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# Module scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, which would break later tests that call asyncio.run().
@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}: install the Debian package 'chromium' (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    # Every browser test also checks the Content-Security-Policy (config/security.py): a
    # page that needs an inline script, eval or a foreign host fails here, not in production.
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text
            else None)
    yield page
    context.close()
    assert not blocked, f"the page broke the Content-Security-Policy: {blocked}"


def login(page, username: str, password: str) -> None:
    """Log in through the real form, as a person would."""
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)
