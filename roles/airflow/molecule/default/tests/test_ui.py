"""The deployed Airflow UI in headless Chromium: log in as admin, list the DAGs, keep a screenshot.

Through nginx over https (platform_web_tls) at the container's address, which its certificate
names; Chromium pins the host's key (tests/browser.py), test_default checks the chain with curl."""

from __future__ import annotations

from test_default import DAG_IDS

from tests.browser import chromium_page, container_url, fab_login, screenshot, wait_for_texts
from tests.lab_secrets import lab_host_certificate, lab_secret


def test_ui_login_lists_the_dags() -> None:
    url = container_url("airflow01", 443, scheme="https")
    with chromium_page(trust=lab_host_certificate("airflow01")) as page:
        fab_login(page, f"{url}/auth/login/", "admin", lab_secret("airflow_admin"))
        page.goto(f"{url}/dags", wait_until="domcontentloaded")
        # The DAG list is rendered by the React UI after its API calls.
        body = wait_for_texts(page, sorted(DAG_IDS), "airflow-dags")
        shot = screenshot(page, "airflow-dags")
    missing = sorted(d for d in DAG_IDS if d not in body)
    assert not missing, f"DAG ids not on the UI's DAG list: {missing}"
    assert shot.stat().st_size > 10_000, "the screenshot is (nearly) empty"
