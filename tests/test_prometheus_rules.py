"""The alert rules as code: files/prometheus/rules/*.yml checked and unit-tested with Debian 12's
promtool (files/prometheus/rules_tests/*.yml), their metadata and runbooks checked here."""

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.prometheus_tools import promtool

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "files/prometheus/rules"
RULE_TESTS_DIR = ROOT / "files/prometheus/rules_tests"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))
SEVERITIES = {"critical", "warning"}


def load_alerts() -> list[tuple[Path, dict]]:
    """Every alerting rule of every rule file, with its file."""
    alerts = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            alerts += [(path, rule) for rule in group["rules"] if "alert" in rule]
    return alerts


ALERTS = load_alerts()
ALERT_IDS = [rule["alert"] for _, rule in ALERTS]


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text: lower case, punctuation other
    than '-' and '_' dropped, spaces to '-', '-1', '-2', ... on repeats."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    in_code = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_code or not match:
            continue
        text = re.sub(r"`|\*\*|__", "", match.group(1)).lower()
        base = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        anchors.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return anchors


def test_the_rules_are_there() -> None:
    assert len(RULE_FILES) >= 7, RULE_FILES
    assert len(ALERTS) >= 16, ALERT_IDS
    duplicates = [name for name, n in Counter(ALERT_IDS).items() if n > 1]
    assert not duplicates, f"alert names used twice: {duplicates}"


def test_promtool_check_rules_passes() -> None:
    result = run(promtool(), "check", "rules", *RULE_FILES)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for path in RULE_FILES:
        assert f"Checking {path}\n  SUCCESS" in out, out


def test_promtool_unit_tests_pass() -> None:
    result = run(promtool(), "test", "rules", *[p.name for p in RULE_TEST_FILES], cwd=RULE_TESTS_DIR)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert out.count("SUCCESS") == len(RULE_TEST_FILES), out
    # Every rule file is loaded by at least one test file.
    loaded = {
        (RULE_TESTS_DIR / rule_file).resolve()
        for path in RULE_TEST_FILES
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]
    }
    assert set(RULE_FILES) <= loaded, f"rule files no unit test loads: {sorted(set(RULE_FILES) - loaded)}"


@pytest.mark.parametrize(("path", "rule"), ALERTS, ids=ALERT_IDS)
def test_alert_has_severity_summary_and_runbook(path: Path, rule: dict) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), f"{name}: not CamelCase"
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name} in {path.name}: severity not in {SEVERITIES}"
    annotations = rule.get("annotations", {})
    assert annotations.get("summary", "").strip(), f"{name} in {path.name}: no summary"
    assert annotations.get("description", "").strip(), f"{name} in {path.name}: no description"
    url = annotations.get("runbook_url", "")
    file_part, _, anchor = url.partition("#")
    assert file_part.startswith("docs/runbooks/") and anchor, (
        f"{name}: runbook_url {url!r} is not docs/runbooks/<file>#<anchor>"
    )
    runbook = ROOT / file_part
    assert runbook.is_file(), f"{name}: runbook {file_part} does not exist"
    anchors = github_anchors(runbook.read_text())
    assert anchor in anchors, f"{name}: no heading of {file_part} has the anchor #{anchor}; anchors: {sorted(anchors)}"


def unit_test_cases() -> tuple[set[str], set[str]]:
    """The alert names of the promtool unit tests' cases: (expected firing, expected silent)."""
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    return firing, silent


@pytest.mark.parametrize("name", ALERT_IDS)
def test_alert_has_firing_and_silent_unit_test(name: str) -> None:
    firing, silent = unit_test_cases()
    assert name in firing, f"{name}: no case in files/prometheus/rules_tests/ where it fires"
    assert name in silent, f"{name}: no case in files/prometheus/rules_tests/ where it must not fire (exp_alerts: [])"


def test_target_down_keeps_the_drill_contract() -> None:
    """The Kafka drill expects TargetDown within `for` + one scrape interval: `up == 0`, for 1m."""
    rule = next(rule for _, rule in ALERTS if rule["alert"] == "TargetDown")
    assert rule["expr"].strip() == "up == 0"
    assert rule["for"] == "1m"
    assert rule["labels"]["severity"] == "critical"


def test_broken_rule_file_fails_check_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "kafka.yml"
    text = (RULES_DIR / "kafka.yml").read_text()
    assert "> 0\n" in text
    broken.write_text(text.replace("> 0\n", "> (0\n", 1))
    result = run(promtool(), "check", "rules", broken)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert str(broken) in out, out
    assert "FAILED" in out and "parse error" in out, out
    # The file and the line of the broken expression (the first "> 0" is the line of the rule's expr).
    line = text[: text.index("> 0\n")].count("\n") + 1
    assert re.search(rf"{re.escape(str(broken))}: {line}:\d+: ", out), out


def test_wrong_expectation_fails_unit_test(tmp_path: Path) -> None:
    """A unit test can fail: expect MinIODiskNearlyFull not to fire where it does."""
    shutil.copytree(RULES_DIR, tmp_path / "rules")
    (tmp_path / "rules_tests").mkdir()
    data = yaml.safe_load((RULE_TESTS_DIR / "minio.yml").read_text())
    for test in data["tests"]:
        for case in test["alert_rule_test"]:
            case["exp_alerts"] = []
    (tmp_path / "rules_tests/minio.yml").write_text(yaml.safe_dump(data))
    result = run(promtool(), "test", "rules", "minio.yml", cwd=tmp_path / "rules_tests")
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "alertname: MinIODiskNearlyFull" in out and "FAILED" in out, out


def test_an_alerts_hold_time_is_replaced_by_prometheus_alert_for(tmp_path):
    """The prometheus role's prometheus_alert_for (the lab: TargetDown after 15 s): the named alert's
    `for` changes, nothing else of the file, promtool still accepts it; a file without the alert is
    passed on unchanged (comments included)."""
    from ansible_collections.chplatform.platform.plugins.filter.prometheus import prometheus_rules_for

    source = RULES_DIR / "platform.yml"
    text = source.read_text()
    out = prometheus_rules_for(text, {"TargetDown": "15s"})
    before, after = yaml.safe_load(text), yaml.safe_load(out)
    changed = [
        (b["alert"], b.get("for"), a.get("for"))
        for gb, ga in zip(before["groups"], after["groups"], strict=True)
        for b, a in zip(gb["rules"], ga["rules"], strict=True)
        if b != a
    ]
    assert changed == [("TargetDown", "1m", "15s")]
    (tmp_path / "platform.yml").write_text(out)
    check = subprocess.run(
        [str(promtool()), "check", "rules", str(tmp_path / "platform.yml")], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    other = next(p for p in RULE_FILES if "TargetDown" not in p.read_text())
    assert prometheus_rules_for(other.read_text(), {"TargetDown": "15s"}) == other.read_text()
