"""Headless Chromium (Debian's package, /usr/bin/chromium) driven by Playwright, for the UI checks.

The molecule scenarios of airflow and superset import this module from their verify tests:
`bin/bootstrap` / `bin/test` install Chromium; Playwright only drives it (no browser download).
Screenshots go to ``artifacts/screenshots/`` (or ``$CHPLATFORM_SCREENSHOTS``)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CHPLATFORM_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("CHPLATFORM_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))
# Root needs --no-sandbox; the rest keep Chromium off the (closed) internet: without them it
# retries Google's hosts in the background at every start.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 90_000


def container_url(container: str, port: int) -> str:
    """http://<the container's address on its Docker network>:<port>, reachable from this controller."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container],
        capture_output=True,
        text=True,
        check=False,
    )
    addresses = out.stdout.split()
    if out.returncode != 0 or not addresses:
        pytest.fail(f"no address for container {container}: {out.stderr.strip() or 'not on any network'}")
    return f"http://{addresses[0]}:{port}"


@contextmanager
def chromium_page(width: int = 1600, height: int = 1200) -> Iterator:
    """A fresh page in a new headless Chromium; the browser is closed afterwards, even on failure."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run bin/bootstrap as root (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as <SCREENSHOTS>/<name>.png, print where, return the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def fab_login(page, url: str, username: str, password: str) -> None:
    """Log in through a Flask-AppBuilder login form (Airflow's FAB auth manager, Superset).

    Fails naming the page's own message when the form comes back (wrong password, CSRF)."""
    page.goto(url, wait_until="domcontentloaded")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation(wait_until="domcontentloaded"):
        page.click("[type=submit]")
    if page.locator("input[name=password]").count() > 0:
        alerts = page.locator(".alert, [role=alert]").all_inner_texts()
        pytest.fail(f"login as {username} at {url} failed; the page says: {' | '.join(alerts) or page.title()}")
