"""The paths of promtool, amtool and the Prometheus server for the tests, fetched on first use.

One implementation: ``prometheus_tools`` in bin/lib.sh (Debian 12's packages unpacked into
``$CHPLATFORM_CACHE/tools/<package>-<version>/``, nothing installed). bin/test's prepare step
calls it; a pytest run on a cold machine calls it here. A failure is a test failure with the
reason, never a skip: a skip would hide the rule checks.
"""

import functools
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("promtool", "amtool")


@functools.cache
def tool_path(name: str) -> Path:
    """The path of ``promtool`` or ``amtool``; fails the calling test when it cannot be had."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}: one of {TOOLS}")
    proc = subprocess.run(
        ["bash", "-c", 'source bin/lib.sh && prometheus_tools "$1"', "prometheus_tools", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = proc.stdout.split()
    if proc.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        pytest.fail(
            f"cannot provide {name} (bin/lib.sh prometheus_tools {name}, exit {proc.returncode}):\n"
            f"{proc.stderr.strip()}\n{proc.stdout.strip()}",
            pytrace=False,
        )
    return Path(lines[-1])


def promtool() -> Path:
    return tool_path("promtool")


def amtool() -> Path:
    return tool_path("amtool")


def prometheus() -> Path:
    """The Prometheus server of the same unpacked package as promtool (bin/lib.sh fetches only
    promtool and amtool by name; the server binary comes in promtool's .deb)."""
    path = promtool().parent / "prometheus"
    if not path.is_file():
        pytest.fail(f"no Prometheus server next to promtool: {path} is missing", pytrace=False)
    return path
