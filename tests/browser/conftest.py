"""Real headless Chromium (Debian's package) driven by Playwright.

In CI the browser tests must run: a missing Chromium fails them. Elsewhere they skip, saying why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.procs import Daphne
from tests.support.ws import session_cookie

CHROMIUM = os.environ.get("PARLEY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# .ci/run runs the two suites at once in one checkout: each names its own folder.
ARTIFACTS = Path(
    os.environ.get("PARLEY_TEST_ARTIFACTS")
    or Path(__file__).resolve().parents[2] / "test-artifacts"
)
# As root, in a closed network: no sandbox, and no background calls to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module. Not per session: Playwright's sync API keeps an event loop
    running in this thread while it is open, which async tests elsewhere cannot share."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests, but there is no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's 'chromium' package to run these")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test code itself is plain
    # synchronous code, so Django's guard against ORM calls from async code does not apply.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


PHONE = {"width": 390, "height": 700}
DESKTOP = {"width": 1440, "height": 900}


@pytest.fixture
def server(tmp_path):
    """A real daphne process on the suite's Redis and test database."""
    daphne = Daphne(tmp_path).start()
    yield daphne
    daphne.stop()


@pytest.fixture
def open_page(browser, server):
    """Open a page of the server, logged in as ``user`` (or anonymous), in a phone viewport
    (or ``viewport``, e.g. DESKTOP); ``dark`` opens it with the system's dark colour scheme;
    ``touch`` as a phone with a touch screen; ``locale`` is the browser's language (its
    Accept-Language header and ``navigator.language``)."""
    contexts = []
    base = f"http://127.0.0.1:{server.port}"

    def open_page(path: str, user=None, viewport=PHONE, dark=False, touch=False, locale="en-US"):
        context = browser.new_context(
            viewport=viewport,
            color_scheme="dark" if dark else "light",
            has_touch=touch,
            is_mobile=touch,  # a touch screen's coarse pointer and no hover
            locale=locale,
        )
        contexts.append(context)
        if user is not None:
            cookie = session_cookie(user).split("=", 1)[1]
            context.add_cookies([{"name": "sessionid", "value": cookie, "url": base}])
        page = context.new_page()
        page.goto(base + path)
        return page

    yield open_page
    for context in contexts:
        context.close()
