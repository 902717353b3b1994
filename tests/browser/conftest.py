"""Browser fixtures: Debian's Chromium driven by Playwright against pytest-django's live server.

Playwright's own browser download does not work on these machines, so the tests always launch /usr/bin/chromium
(`make browser-deps` installs it). A failing test leaves a screenshot of its page in var/screenshots/; tests also
save named screenshots for the README (see `shoot`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ALWEB_CHROMIUM", "/usr/bin/chromium")
FAILURE_DIR = ROOT / "var" / "screenshots"
DOCS_DIR = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Keep each phase's report on the test item, so the page fixture knows at teardown whether the test failed.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def browser(django_db_setup: None) -> Iterator[Any]:
    """One Chromium for the session, started after the test database exists.

    Playwright's sync API keeps an asyncio loop on the test's thread, and Django then refuses ORM calls from that
    thread (SynchronousOnlyOperation). The test code is synchronous and the live server has its own thread, so the
    check is a false alarm here: it is switched off while the browser runs, and restored after.
    """
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: run `make browser-deps` (installs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    # The Content-Security-Policy must not break the dashboard: Chromium reports every blocked script, style or
    # connection on the console ("Refused to ... because it violates the following Content Security Policy").
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.passed and violations:
        context.close()
        pytest.fail(f"the page broke its Content-Security-Policy: {violations[:3]}")
    if report is not None and report.failed:
        FAILURE_DIR.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.nodeid)[-150:]
        page.screenshot(path=str(FAILURE_DIR / f"{name}.png"), full_page=True)
    context.close()


def shoot(page: Any, name: str) -> Path:
    """A named full-page screenshot under var/screenshots/docs/; with ALWEB_DOCS_SCREENSHOTS=1 it is also copied to
    docs/screenshots/ for the README. Opt-in, so an ordinary test run never rewrites tracked files."""
    out = FAILURE_DIR / "docs" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    if os.environ.get("ALWEB_DOCS_SCREENSHOTS") == "1":
        DOCS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, DOCS_DIR / f"{name}.png")
    return out


def log_in(page: Any, base_url: str, username: str, password: str = "pw-for-tests") -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))


CYCLE_STATUS_JS = """() => {
    const state = document.querySelector('#cycle-state');
    if (!state) return null;
    const bar = document.querySelector('#cycle-status progress');
    return [state.getAttribute('data-state'), bar && bar.getAttribute('value'), bar && bar.getAttribute('max')];
}"""


def read_cycle_status(page: Any) -> tuple[str | None, str | None, str | None] | None:
    """The cycle page's state and progress bar read in one step inside the page, so that an htmx swap cannot land
    between reading the state and reading the bar. None while the page is between two renders (mid-swap or reloading
    itself), when there is nothing consistent to read."""
    from playwright.sync_api import Error

    try:
        reading = page.evaluate(CYCLE_STATUS_JS)
    except Error:  # "Execution context was destroyed": the page navigated (it reloads itself once scored)
        return None
    return None if reading is None else (reading[0], reading[1], reading[2])
