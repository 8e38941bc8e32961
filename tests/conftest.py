"""Shared fixtures and helpers for the project's pytest suite."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# The real Kafka broker and PostgreSQL (tests/services.py), one per session for every module that uses them.
from tests.services import kafka_service, pg_service  # noqa: F401  session fixtures, registered here to be shared

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


@pytest.fixture(scope="session", autouse=True)
def basetemp_before_any_thread(tmp_path_factory) -> None:
    """run_concurrently's jobs make their temporary directories from threads (tmp_path_factory.mktemp).
    Making the factory's base directory is not thread-safe: two threads that both made it got different
    ones, and mktemp then refused its name ("is not a normalized and relative path"). It is made here,
    once, before any test."""
    tmp_path_factory.getbasetemp()


def run_concurrently(jobs: dict, workers: int = 2) -> dict:
    """Run independent jobs (callables) ``workers`` at a time and return their results by key.

    For the refusal cases of the role checks: each is one ansible-playbook run on localhost that
    keeps one core busy, so two at a time use this machine's two cores (the CI budget). An
    exception of a job is raised again where its result is taken (by that case's test only)."""
    from concurrent.futures import ThreadPoolExecutor

    class Results(dict):
        def __getitem__(self, key):
            value = super().__getitem__(key)
            if isinstance(value, BaseException):
                raise value
            return value

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        return Results({key: future.exception() or future.result() for key, future in futures.items()})


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


def render_role_templates(
    tmp_path: Path, role: str, templates: list[dict], inventory: str, host: str, extra_vars: dict
) -> tuple[Path, str]:
    """Render some of a role's templates for ``host`` as the role sees its variables (the platform
    contract's defaults, the role's defaults and vars, the inventory, ``extra_vars``), on the
    controller; return the directory they were written to (each item: src under the role's
    templates/, dest, and any variables the template reads from ``item``), and the run's output."""
    out = tmp_path / "out"
    out.mkdir()
    play = [
        {
            "name": f"Render templates of the {role} role",
            "hosts": host,
            "connection": "local",
            "gather_facts": False,
            "vars_files": [f"{ROOT}/roles/platform/defaults/main.yml"]
            + [f"{ROOT}/roles/{role}/{part}/main.yml" for part in ("defaults", "vars")],
            "tasks": [
                {
                    "name": "Render",
                    "ansible.builtin.template": {
                        "src": f"{ROOT}/roles/{role}/templates/{{{{ item.src }}}}",
                        "dest": f"{out}/{{{{ item.dest }}}}",
                        "mode": "0600",
                    },
                    "loop": templates,
                }
            ],
        }
    ]
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    (tmp_path / "vars.json").write_text(json.dumps({"ansible_python_interpreter": sys.executable, **extra_vars}))
    result = run_playbook(playbook, "-i", inventory, "-e", f"@{tmp_path / 'vars.json'}")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return out, result.stdout + result.stderr


def problem_lines(output: str) -> list[str]:
    """The inventory validation's problem lines in a run's output, one per problem:
    ``<variable> on <host or group> is <value>: <fix>`` (chplatform.platform.validate_inventory)."""
    return sorted(
        {line.strip()[2:] for line in output.splitlines() if line.strip().startswith("- ") and " on " in line}
    )


def assert_refused(result: subprocess.CompletedProcess, start: str, fix: str, count: int | None = None) -> str:
    """The run failed in the validation with a problem line starting with ``start`` that names
    ``fix``; with ``count``, exactly that many problem lines. Returns the whole output."""
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "nothing was changed on any host" in out, out[-3000:]
    lines = problem_lines(out)
    matching = [line for line in lines if line.startswith(start)]
    assert matching, f"no problem line starts with {start!r}; got:\n" + "\n".join(lines)
    assert fix in matching[0], matching[0]
    if count is not None:
        assert len(lines) == count, "\n".join(lines)
    return out
