"""Shared fixtures and helpers for the project's pytest suite."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("CHPLATFORM_CACHE", "/var/cache/chplatform"))
BUNDLE_DIR = CACHE_DIR / "bundle"


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
    )
    env.update(extra)
    return env


def run_playbook(playbook: str | Path, *args: str, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """Run ansible-playbook from the repository root and return the finished process (never raises on rc)."""
    cmd = ["ansible-playbook", str(playbook), *args]
    return subprocess.run(
        cmd, cwd=ROOT, env=ansible_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def root() -> Path:
    return ROOT


def local_inventory(tmp_path: Path, children: dict, **host_vars) -> str:
    """Write an inventory whose hosts all run on this controller (connection local), return its path.

    ``children`` maps group names to their hosts ({"kafka": {"k1": {...}}}); keyword arguments
    become variables of every host."""
    data = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_become": False,
                "ansible_python_interpreter": sys.executable,
                **host_vars,
            },
            "children": {group: {"hosts": hosts} for group, hosts in children.items()},
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)
