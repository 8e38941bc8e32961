"""The console pages (files/prometheus/consoles/*.html with files/prometheus/console_libraries/*.lib)
rendered by Debian 12's Prometheus server itself: started on 127.0.0.1 with a throw-away storage,
scraping itself (job prometheus, host monitor01) and one closed port per component job (so every
page has a target that is down), while ClickHouse is not scraped at all."""

import html.parser
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.prometheus_tools import prometheus
from tests.services import stop as stop_process

ROOT = Path(__file__).resolve().parent.parent
CONSOLES_DIR = ROOT / "files/prometheus/consoles"
LIBRARIES_DIR = ROOT / "files/prometheus/console_libraries"
PAGES = sorted(p.name for p in CONSOLES_DIR.glob("*.html"))
MONITOR_HOST = "monitor01"
# Jobs pointed at a closed port: the host label each page must show as down.
DOWN_JOBS = {
    "node": "node-down01",
    "kafka": "kafka-down01",
    "postgresql": "pg-down01",
    "minio": "minio-down01",
    "airflow": "airflow-down01",
}
# What each page must say, besides the shared header (which shows the prometheus job's state).
EXPECTED = {
    "index.html": ["<h1>Platform overview</h1>", "Every scraped job", "Firing alerts", "Web UI probes"]
    + [f'<td>{job}</td><td><span class="down">0 / 1 up</span>' for job in DOWN_JOBS]
    + ['<td>prometheus</td><td><span class="up">1 / 1 up</span>'],
    "hosts.html": ["<h1>Hosts</h1>", "CPU busy", "Memory used", "/data free", "Load 1m", "node-down01"],
    "kafka.html": [
        "<h1>Kafka</h1>",
        "Under-replicated",
        "Offline partitions",
        "Active controllers (must be 1)",
        "Produce p99",
        "Log size per topic",
        "kafka-down01",
    ],
    "clickhouse.html": [
        "<h1>ClickHouse</h1>",
        "no ClickHouse targets are scraped (no server runs here or they are skipped)",
        "Read-only replicas",
        "Replication queue",
        "Keeper",
    ],
    "postgresql.html": ["<h1>PostgreSQL</h1>", "max_connections", "Database sizes", "pg-down01"],
    "minio.html": ["<h1>MinIO</h1>", "Usable free", "S3 requests", "Console probe", "minio-down01"],
    "airflow.html": ["<h1>Airflow</h1>", "Heartbeats /min", "DAG runs by dag_id", "Web UI probes", "airflow-down01"],
}
TEMPLATE_ERRORS = ("error executing template", "template: ", "<no value>", "&lt;no value&gt;")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
BROKEN_PAGE = '{{ template "chp_head" (args . "Broken") }}{{ template "chp_no_such_template" . }}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 -- http://127.0.0.1 of the test's own server
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


class Server:
    def __init__(self, base: str, web: Path):
        self.base, self.web = base, web

    def page(self, name: str) -> tuple[int, str]:
        return get(f"{self.base}/consoles/{name}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, request) -> Server:
    binary = prometheus()
    web = binary.parent.parent / "share/prometheus/web"
    tmp = tmp_path_factory.mktemp("prometheus")
    port, closed = free_port(), free_port()
    scrape_configs = [
        {
            "job_name": "prometheus",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"host": MONITOR_HOST}}],
        }
    ] + [
        {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{closed}"], "labels": {"host": host}}]}
        for job, host in DOWN_JOBS.items()
    ]
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": scrape_configs}))
    # The repository's pages, linked (read on every request), and one broken page: the checks
    # below must catch it, or they would pass on anything.
    consoles = tmp / "consoles"
    consoles.mkdir()
    for name in PAGES:
        (consoles / name).symlink_to(CONSOLES_DIR / name)
    (consoles / "broken.html").write_text(BROKEN_PAGE)
    log = (tmp / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.console.templates={consoles}",
            f"--web.console.libraries={LIBRARIES_DIR}",
            f"--web.local-assets={web}/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def stop():
        stop_process(proc, timeout=10)
        log.close()

    request.addfinalizer(stop)
    base = f"http://127.0.0.1:{port}"
    jobs = {"prometheus", *DOWN_JOBS}
    deadline, seen = time.monotonic() + 15, set()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Prometheus exited ({proc.returncode}):\n{(tmp / 'prometheus.log').read_text()}")
        try:
            status, body = get(f"{base}/api/v1/query?query=up")
            if status == 200:
                seen = {r["metric"]["job"] for r in yaml.safe_load(body)["data"]["result"]}
                if seen >= jobs:
                    return Server(base, web)
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(
        f"Prometheus on {base} did not scrape every job within 15 s (scraped: {sorted(seen)}, "
        f"wanted: {sorted(jobs)}):\n{(tmp / 'prometheus.log').read_text()[-3000:]}"
    )


class Nesting(html.parser.HTMLParser):
    """Every element closed, in order (the pages close every tag they open, p/li/tr/td included)."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.titles = 0

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.titles += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"line {self.getpos()[0]}: </{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def render_errors(status: int, body: str) -> list[str]:
    problems = [] if status == 200 else [f"HTTP {status}: {body[:500]}"]
    problems += [f"error text {e!r}" for e in TEMPLATE_ERRORS if e in body]
    return problems


def test_pages_exist():
    assert set(EXPECTED) == set(PAGES), "each page needs its expected text here, and each expected page a file"
    assert list(LIBRARIES_DIR.glob("*.lib")), "no console library"


@pytest.mark.parametrize("name", PAGES)
def test_page_renders(server, name):
    status, body = server.page(name)
    assert not render_errors(status, body), f"{name}: {render_errors(status, body)}"
    missing = [text for text in EXPECTED[name] if text not in body]
    assert not missing, f"{name} lacks {missing}"
    # The shared header: the prometheus job's up-state, and the menu to every page.
    assert f'<span class="up">prometheus on {MONITOR_HOST}: up</span>' in body, f"{name}: no up-state of prometheus"
    links = set(re.findall(r'href="([\w.-]+\.html)"', body))
    assert set(PAGES) <= links, f"{name}: the menu lacks {sorted(set(PAGES) - links)}"
    assert 'aria-current="page"' in body and f'href="{name}" aria-current="page"' in body


@pytest.mark.parametrize("name", PAGES)
def test_page_is_well_formed(server, name):
    _, body = server.page(name)
    assert body.lstrip().startswith("<!DOCTYPE html>"), f"{name}: no doctype first"
    parser = Nesting()
    parser.feed(body)
    parser.close()
    assert not parser.errors, f"{name}: {parser.errors[:5]}"
    assert parser.stack == [], f"{name}: unclosed {parser.stack}"
    assert parser.titles == 1


def test_index_links_every_page():
    index = (CONSOLES_DIR / "index.html").read_text()
    body_links = set(re.findall(r'<a href="([\w.-]+\.html)"', index))
    missing = set(PAGES) - {"index.html"} - body_links
    assert not missing, f"index.html's own table links no {sorted(missing)}"


def test_broken_page_is_caught(server):
    """The negative control: a page calling an undefined template fails the checks above."""
    status, body = server.page("broken.html")
    assert render_errors(status, body), f"a broken page passed the checks: HTTP {status}"


def test_graph_assets(server):
    """The graph scripts the pages load: Prometheus serves its classic UI's static files under
    /classic/static from --web.local-assets; d3 and rickshaw there are symlinks into
    /usr/share/javascript (Debian's libjs-d3/libjs-rickshaw, dependencies of the prometheus
    package), so each asset is either served here or such a symlink in the package."""
    urls = set()
    for name in PAGES:
        urls |= set(re.findall(r'(?:src|href)="(/classic/static/[^"]+)"', server.page(name)[1]))
    assert "/classic/static/js/prom_console.js" in urls, "no page loads prom_console.js"
    for url in sorted(urls):
        status, _ = get(server.base + url)
        if status == 200:
            continue
        first = Path(url.removeprefix("/classic/static/")).parts[0]
        link = server.web / "static" / first
        assert link.is_symlink() and "javascript" in str(link.readlink()), (
            f"{url}: HTTP {status}, and not a file of a libjs-* package either"
        )
