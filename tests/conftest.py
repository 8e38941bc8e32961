"""Shared fixtures and helpers for the project's pytest suite."""

import os
import subprocess
from pathlib import Path

import pytest

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
