"""The airflow role's virtualenv per lock (roles/airflow/tasks/venv.yml: the common role's venv.yml,
shared with superset), run on this controller
(connection local) in a temporary AIRFLOW_HOME with a small lock from the bundle's wheelhouse:

- a first install builds <home>/venvs/<version>-<sha1[:12]>, writes its stamp and links <home>/venv;
- a second run and a --check run change nothing;
- a changed lock (a comment line: another checksum) builds a second virtualenv beside the first and
  leaves the link alone (the switch is upgrade.yml's, around the migration);
- an older role's real directory at <home>/venv moves to venvs/<its version>-legacy and is linked,
  without a reinstall when it was built from this lock (its stamp), and only once;
- --check on a fresh home does not fail.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, local_inventory, run_playbook
from tests.services import BUNDLE_DIR

VERSION = "3.3.2"
WHEELS = BUNDLE_DIR / "wheels" / f"airflow-{VERSION}"
LOCK = "six==1.17.0\n"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

PLAYBOOK = """\
- name: The airflow role's virtualenv tasks
  hosts: airflow
  gather_facts: false
  vars_files: ["{vars}"]
  tasks:
    - name: Run tasks/venv.yml
      ansible.builtin.import_tasks: "{tasks}"
    - name: Report the virtualenvs
      ansible.builtin.debug:
        msg: "RESULT {{{{ {{'new': __airflow_venv_new, 'old': __airflow_venv_old}} | to_json }}}}"
"""


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324  the role's name of a lock, not security


class Home:
    def __init__(self, tmp: Path) -> None:
        self.tmp, self.home = tmp, tmp / "home"
        self.home.mkdir()
        (self.home / "venvs").mkdir()  # install.yml's
        (tmp / "play.yml").write_text(
            PLAYBOOK.format(vars=ROOT / "roles/airflow/vars/main.yml", tasks=ROOT / "roles/airflow/tasks/venv.yml")
        )
        self.inventory = local_inventory(
            tmp,
            {"airflow": {"af1": {}}},
            airflow_home=str(self.home),
            airflow_venv=str(self.home / "venv"),
            airflow_version=VERSION,
            airflow_python=PYTHON,
            airflow_wheelhouse_url=str(WHEELS),
            airflow_pip_index_url="",
        )

    def lock(self, text: str) -> Path:
        path = self.tmp / f"lock-{sha1(text)[:8]}.txt"
        path.write_text(text)
        return path

    def run(self, lock: Path, *args: str) -> tuple[dict, dict]:
        proc = run_playbook(
            self.tmp / "play.yml", "-i", self.inventory, "-e", f"airflow_requirements_lock={lock}", *args, timeout=600
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        counts = dict(re.findall(r"(\w+)=(\d+)", re.search(r"^af1\s+:\s+(ok=.*)$", out, re.M).group(1)))
        result = json.loads(re.search(r'"RESULT (\{.*\})"', out).group(1).replace('\\"', '"'))
        return {k: int(v) for k, v in counts.items()}, result

    @property
    def link(self) -> str:
        return str((self.home / "venv").readlink())

    def venvs(self) -> list[str]:
        return sorted(p.name for p in (self.home / "venvs").iterdir())


@pytest.fixture
def home(tmp_path: Path) -> Home:
    if not (WHEELS / "six-1.17.0-py2.py3-none-any.whl").exists():
        pytest.skip(f"no Airflow wheelhouse at {WHEELS} (run bin/bundle build)")
    return Home(tmp_path)


def test_one_virtualenv_per_lock_and_a_link(home: Home) -> None:
    lock = home.lock(LOCK)
    first = f"{home.home}/venvs/{VERSION}-{sha1(LOCK)[:12]}"
    counts, result = home.run(lock)
    assert counts["changed"] > 0
    assert result == {"new": first, "old": ""}
    assert home.link == first
    assert Path(first, f".installed-{sha1(LOCK)}").read_text() == f"{VERSION}\n"
    assert Path(first, "requirements.lock").read_text() == LOCK
    assert subprocess.run([f"{home.home}/venv/bin/python", "-c", "import six"], check=False).returncode == 0

    for args in ((), ("--check", "--diff")):
        counts, result = home.run(lock, *args)
        assert counts["changed"] == 0, args
        assert result == {"new": first, "old": first}

    # A changed lock: its own virtualenv beside the active one; the link stays for upgrade.yml.
    changed = LOCK + "# another checksum, the same pins\n"
    counts, result = home.run(home.lock(changed))
    second = f"{home.home}/venvs/{VERSION}-{sha1(changed)[:12]}"
    assert counts["changed"] > 0
    assert result == {"new": second, "old": first}
    assert home.link == first
    assert home.venvs() == sorted([Path(first).name, Path(second).name])
    counts, _ = home.run(home.lock(changed))
    assert counts["changed"] == 0, "the second virtualenv was installed again"


def test_an_older_roles_directory_becomes_the_legacy_virtualenv_without_a_reinstall(home: Home) -> None:
    lock = home.lock(LOCK)
    venv = home.home / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    dist = site / "apache_airflow_core-3.3.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: apache-airflow-core\nVersion: 3.3.1\n")
    (venv / f".installed-{sha1(LOCK)}").write_text("3.3.1\n")
    (venv / ".db-migrated.json").write_text("{}\n")

    counts, result = home.run(lock)
    legacy = f"{home.home}/venvs/3.3.1-legacy"
    assert counts["changed"] == 1, "more than the move: a reinstall?"
    assert result == {"new": legacy, "old": legacy}
    assert home.link == legacy and home.venvs() == ["3.3.1-legacy"]
    assert (venv / ".db-migrated.json").exists(), "the migration stamp moved with its virtualenv"
    assert subprocess.run([f"{venv}/bin/python", "-c", "import sys; print(sys.prefix)"], check=True,
                          capture_output=True, text=True).stdout.strip() == str(venv)  # fmt: skip
    for args in ((), ("--check", "--diff")):
        counts, _ = home.run(lock, *args)
        assert counts["changed"] == 0, args


def test_check_mode_on_a_fresh_home_does_not_fail(home: Home) -> None:
    counts, result = home.run(home.lock(LOCK), "--check", "--diff")
    assert counts["failed"] == 0 and counts["changed"] > 0
    assert result["old"] == ""
    assert not (home.home / "venv").exists() and home.venvs() == []


PRUNE = """\
- name: The pruning of old virtualenvs after a switch (common role, used by airflow and superset)
  hosts: airflow
  gather_facts: false
  tasks:
    - name: Run the common role's venv_prune.yml
      ansible.builtin.include_role:
        name: common
        tasks_from: venv_prune.yml
"""


@pytest.mark.parametrize(("keep", "kept"), [(2, ["c", "d"]), (3, ["b", "c", "d"]), (0, ["c"])])
def test_after_a_switch_the_newest_virtualenvs_stay(tmp_path: Path, keep: int, kept: list[str]) -> None:
    """Newest by install time (the stamp's), the active one always; incomplete ones (no stamp) go."""
    import os

    venvs = tmp_path / "home/venvs"
    for age, name in enumerate(["d", "b", "a", "c"]):  # d the newest stamp; c is the active one, oldest
        (venvs / name).mkdir(parents=True)
        (venvs / name / ".installed-x").write_text("3\n")
        os.utime(venvs / name / ".installed-x", (1_000_000 - age, 1_000_000 - age))
    (venvs / "incomplete").mkdir()
    (tmp_path / "prune.yml").write_text(PRUNE)
    inventory = local_inventory(
        tmp_path, {"airflow": {"af1": {}}}, common_venv_dir=str(venvs), common_venv_keep=keep,
        common_venv_new=str(venvs / "c"),
    )  # fmt: skip
    proc = run_playbook(tmp_path / "prune.yml", "-i", inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sorted(p.name for p in venvs.iterdir()) == kept
