"""Both dashboards in headless Chromium: log in as admin, open each, keep a screenshot, find the titles.

This scenario has no ClickHouse server (the connection points at 127.0.0.1:8123 on superset01, where
nothing listens), so every chart shows a data error instead of a plot: the check says so and still
verifies the layout — the dashboard title and every chart title from the bundle are on the page,
and every chart got as far as sending its query to ClickHouse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.browser import chromium_page, container_url, fab_login, screenshot, wait_for_texts
from tests.lab_secrets import lab_host_certificate, lab_secret

ROOT = Path(__file__).resolve().parents[5]

# What a chart shows when its query cannot reach the scenario's ClickHouse address.
NO_CLICKHOUSE = "Connection refused"
DASHBOARDS = ROOT / "files" / "superset" / "assets" / "dashboards"


def bundle_dashboards() -> list[dict]:
    """Title, slug and chart titles of each dashboard in the bundle (the source of truth)."""
    result = []
    for path in sorted(DASHBOARDS.glob("*.yaml")):
        dash = yaml.safe_load(path.read_text())
        charts = sorted(
            item["meta"]["sliceName"]
            for item in dash["position"].values()
            if isinstance(item, dict) and item.get("type") == "CHART"
        )
        result.append({"title": dash["dashboard_title"], "slug": dash["slug"], "charts": charts})
    return result


@pytest.mark.parametrize("dashboard", bundle_dashboards(), ids=lambda d: d["slug"])
def test_dashboard_renders_with_its_charts(dashboard: dict) -> None:
    # Through nginx over https (platform_web_tls); Chromium pins the host's key (tests/browser.py).
    url = container_url("superset01", 443, scheme="https")
    charts = dashboard["charts"]
    # Tall viewport: Superset renders charts lazily, only those in view.
    with chromium_page(height=3000, trust=lab_host_certificate("superset01")) as page:
        fab_login(page, f"{url}/login/", "admin", lab_secret("superset_admin"))
        page.goto(f"{url}/superset/dashboard/{dashboard['slug']}/", wait_until="domcontentloaded")
        wait_for_texts(page, [dashboard["title"], *charts], f"superset-{dashboard['slug']}")
        # Each chart ends in its data request; here, without ClickHouse, in the error below.
        page.wait_for_function(
            "([error, n]) => document.body.innerText.split(error).length - 1 >= n", arg=[NO_CLICKHOUSE, len(charts)]
        )
        screenshot(page, f"superset-{dashboard['slug']}")
        body = page.inner_text("body")
    errors = body.count(NO_CLICKHOUSE)
    print(
        f"{dashboard['title']}: the title and {len(charts)} chart titles are on the page; {errors} charts show a data "
        "error, as expected: no ClickHouse server in this scenario (the connection points at a closed port)"
    )
    # Every chart got as far as querying ClickHouse: any other error (a broken chart, dataset or
    # permission) would show instead of this one.
    assert errors == len(charts), f"{errors} of {len(charts)} charts show the expected ClickHouse error"
