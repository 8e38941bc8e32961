"""Headless Chromium (Debian's package, /usr/bin/chromium) driven by Playwright, for the UI checks.

The molecule scenarios of airflow and superset import this module from their verify tests:
`bin/bootstrap` / `bin/test` install Chromium; Playwright only drives it (no browser download).
Screenshots go to ``artifacts/screenshots/`` (or ``$CHPLATFORM_SCREENSHOTS``)."""

from __future__ import annotations

import base64
import hashlib
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


def container_url(container: str, port: int, scheme: str = "http") -> str:
    """<scheme>://<the container's address on its Docker network>:<port>, reachable from this controller."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container],
        capture_output=True,
        text=True,
        check=False,
    )
    addresses = out.stdout.split()
    if out.returncode != 0 or not addresses:
        pytest.fail(f"no address for container {container}: {out.stderr.strip() or 'not on any network'}")
    return f"{scheme}://{addresses[0]}:{port}"


def spki_pin(certificate: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of a PEM certificate, as Chromium's
    --ignore-certificate-errors-spki-list takes it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@contextmanager
def chromium_page(width: int = 1600, height: int = 1200, trust: Path | None = None) -> Iterator:
    """A fresh page in a new headless Chromium; the browser is closed afterwards, even on failure.

    ``trust``: a server's certificate (PEM) whose key Chromium accepts although no CA it knows signed
    it (the platform's CA is not in Chromium's store): its SPKI is pinned, every other certificate
    error still fails the page (HTTPS errors are never ignored). The pin checks the key, not the
    name: the tests that pin also verify the chain and the name with curl --cacert."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run bin/bootstrap as root (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        pins = [f"--ignore-certificate-errors-spki-list={spki_pin(trust)}"] if trust else []
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS + pins)
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
    """Log in through the login form at ``url`` (Airflow's FAB auth manager, Superset) and wait
    until the browser has left the login page. Fails with the page's own message (and a
    screenshot) when it stays there."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url, wait_until="networkidle")  # a React login form must be rendered before it is filled
    user = page.locator("input[name=username], input#username").first
    secret = page.locator("input[name=password], input#password").first
    user.fill(username)
    secret.fill(password)
    if user.input_value() != username or not secret.input_value():
        pytest.fail(f"the login form at {url} did not keep the typed values")
    secret.press("Enter")
    try:
        page.wait_for_url(lambda current: "/login" not in current, timeout=TIMEOUT_MS)
    except PlaywrightTimeout:
        alerts = page.locator(".alert, [role=alert], .ant-message, .ant-form-item-explain").all_inner_texts()
        shot = screenshot(page, "login-failed")
        said = " | ".join(alerts) or page.title()
        pytest.fail(f"login as {username} at {url} failed; the page says: {said} (screenshot {shot})")


def wait_for_texts(page, texts: list[str], what: str) -> str:
    """Wait until every text is in the page's visible text; return that text.

    On timeout, keep a screenshot (<what>-timeout.png) and fail naming the texts still missing."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("texts => texts.every(t => document.body.innerText.includes(t))", arg=texts)
    except PlaywrightTimeout:
        body = page.inner_text("body")
        shot = screenshot(page, f"{what}-timeout")
        missing = [t for t in texts if t not in body]
        pytest.fail(f"{what}: not on the page after {TIMEOUT_MS // 1000} s: {missing} (screenshot {shot})")
    return page.inner_text("body")
