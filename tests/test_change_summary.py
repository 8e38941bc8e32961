"""The callback chplatform.platform.change_summary (enabled in ansible.cfg): at the end of every run,
per host, the tasks that changed (or would, with --check --diff), loop items counted, handlers
included, "no change" for a host without changes, a failed host named with its task, and never a
loop item's value.

Each case is one ansible-playbook run of a small playbook on this controller (connection local)
with the repository's ansible.cfg, the last one with a configuration like the one molecule writes
for the roles' scenarios (the callback enabled, the collection found through
ANSIBLE_COLLECTIONS_PATH). The output is also read by molecule's own idempotence parser, as the
scenarios' idempotence step reads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, ansible_env, run_concurrently, run_playbook

# A loop item like a password: the task's own output lines show it, the summary never does.
PRIVATE_ITEM = "hunter2-secret"
PLAYBOOK = [
    {
        "name": "A small run with a bit of everything",
        "hosts": "all",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [
            {
                "name": "Write the config",
                "ansible.builtin.copy": {
                    "content": "a = 1\n", "dest": "{{ out }}/{{ inventory_hostname }}-config", "mode": "0644"
                },
                "notify": "Record the reload",
            },
            {"name": "Read the config", "ansible.builtin.stat": {"path": "{{ out }}/{{ inventory_hostname }}-config"}},
            {"name": "Never runs", "ansible.builtin.debug": {"msg": "skipped"}, "when": False},
            {
                "name": "Write the three files",
                "ansible.builtin.copy": {
                    "content": "{{ item }}\n", "dest": "{{ out }}/{{ inventory_hostname }}-{{ item }}", "mode": "0600"
                },
                "loop": ["one", "two", PRIVATE_ITEM],
            },
            {
                # As the project's tasks that do their own dry run: run for real in check mode too, and
                # report a change only there (what the real run would do).
                "name": "Report what the dry run found",
                "ansible.builtin.command": "true",
                "changed_when": "ansible_check_mode",
                "check_mode": False,
            },
            {
                "name": "Fail on h2 only",
                "ansible.builtin.fail": {"msg": "h2 fails here"},
                "when": "inventory_hostname == 'h2'",
            },
        ],
        "handlers": [
            {
                "name": "Record the reload",
                "ansible.builtin.copy": {
                    "content": "reloaded\n", "dest": "{{ out }}/{{ inventory_hostname }}-reloaded", "mode": "0644"
                },
            }
        ],
    }
]  # fmt: skip
CHANGED = ["Write the config", "Write the three files (3 of 3 items)", "Record the reload (handler)"]


def summary(out: str) -> dict[str, tuple[str, list[str]]]:
    """The summary section, by host: (the host's line after "host: ", its task lines)."""
    assert "CHANGE SUMMARY" in out, out[-3000:]
    hosts: dict[str, tuple[str, list[str]]] = {}
    host = ""
    for line in section(out).splitlines()[1:]:
        if line.startswith("  - "):
            hosts[host][1].append(line[4:])
        elif line.strip():
            host, _, head = line.partition(": ")
            hosts[host] = (head, [])
    return hosts


def section(out: str) -> str:
    return out[out.rindex("CHANGE SUMMARY") :]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("change_summary")
    book = work / "play.yml"
    book.write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
    # What molecule writes for a role's scenario (config_options) and the environment it sets.
    molecule_cfg = work / "molecule-ansible.cfg"
    molecule_cfg.write_text("[defaults]\ncallbacks_enabled = chplatform.platform.change_summary\n")
    dirs = {name: work / name for name in ("apply", "check", "molecule")}
    for d in dirs.values():
        d.mkdir()

    def play(out: Path, *args: str, inventory: str = "localhost,", **env: str) -> str:
        proc = run_playbook(
            book, "-i", inventory, "-c", "local", "-e", f"out={out}", *args, timeout=120,
            JUNIT_OUTPUT_DIR=str(work / "junit"), **env,
        )  # fmt: skip
        return proc.stdout + proc.stderr

    def apply_twice() -> tuple[str, str]:
        return play(dirs["apply"]), play(dirs["apply"])

    def check_then_molecule() -> tuple[str, str]:
        return play(dirs["check"], "--check", "--diff"), play(
            dirs["molecule"],
            inventory="localhost,h2",
            ANSIBLE_CONFIG=str(molecule_cfg),
            ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
            ANSIBLE_CALLBACK_CHANGE_SUMMARY_MAX_TASKS="1",
        )

    results = run_concurrently({"apply": apply_twice, "check": check_then_molecule})
    first, second = results["apply"]
    check, molecule = results["check"]
    return {"first": first, "second": second, "check": check, "molecule": molecule, "dirs": dirs}


def test_a_run_lists_the_changed_tasks_with_loop_items_and_handlers(runs):
    assert "localhost" in runs["first"] and "failed=0" in runs["first"], runs["first"][-3000:]
    assert summary(runs["first"]) == {"localhost": ("3 tasks changed", CHANGED)}, section(runs["first"])


def test_check_diff_previews_what_would_change_and_changes_nothing(runs):
    out = runs["check"]
    assert "CHANGE SUMMARY (check mode: the tasks below would change)" in out, out[-3000:]
    expected = [*CHANGED[:2], "Report what the dry run found (check_mode: false)", CHANGED[2]]
    assert summary(out) == {"localhost": ("4 tasks would change", expected)}, section(out)
    assert list(runs["dirs"]["check"].iterdir()) == [], "--check wrote files"


def test_a_run_without_changes_says_no_change(runs):
    assert summary(runs["second"]) == {"localhost": ("no change", [])}, section(runs["second"])


def test_failed_host_is_named_with_its_task_and_the_list_is_cut_at_max_tasks(runs):
    """With molecule's kind of configuration (the callback enabled by FQCN, the collection found
    through ANSIBLE_COLLECTIONS_PATH) and max_tasks=1 from the environment."""
    assert summary(runs["molecule"]) == {
        "h2": ('FAILED at "Fail on h2 only"; before that 2 tasks changed', ["Write the config", "and 1 more"]),
        "localhost": ("3 tasks changed", ["Write the config", "and 2 more"]),
    }, section(runs["molecule"])


def test_no_item_value_and_no_recap_lookalike_in_the_summary(runs):
    # The default callback shows the item on its own line: the secret is in the output, so its absence
    # from the summary means something.
    assert PRIVATE_ITEM in runs["first"] and PRIVATE_ITEM in runs["check"], runs["first"][-3000:]
    for name in ("first", "second", "check", "molecule"):
        text = section(runs[name])
        assert PRIVATE_ITEM not in text, text
        # What tools parse in the recap: "changed=N" anywhere, a line starting with "changed" or "TASK".
        assert "changed=" not in text, text
        assert not any(line.startswith(("changed", "TASK", "ok:")) for line in text.splitlines()), text


def test_molecule_idempotence_reads_the_output_as_without_the_summary(runs):
    idempotence = pytest.importorskip("molecule.command.idempotence").Idempotence
    # _is_idempotent / _non_idempotent_tasks use nothing of the instance: molecule's parser as is.
    assert idempotence._is_idempotent(None, runs["second"]), section(runs["second"])
    assert not idempotence._is_idempotent(None, runs["first"])
    # The tasks it names when idempotence fails are the same with and without the summary.
    first = runs["first"]
    without = first[: first.rindex("CHANGE SUMMARY")]
    named = idempotence._non_idempotent_tasks(None, first)
    assert "* [localhost] => Write the config" in named
    assert named == idempotence._non_idempotent_tasks(None, without)
    assert idempotence._is_idempotent(None, section(first))


def test_ansible_doc_documents_the_callback_and_its_option():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "--json", "-t", "callback",
         "chplatform.platform.change_summary"],
        cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    doc = json.loads(out.stdout)["chplatform.platform.change_summary"]["doc"]
    assert doc["type"] == "aggregate"
    option = doc["options"]["max_tasks"]
    assert option["default"] == 15 and option["type"] == "int"
    assert option["ini"] == [{"section": "callback_change_summary", "key": "max_tasks"}]
    assert option["env"] == [{"name": "ANSIBLE_CALLBACK_CHANGE_SUMMARY_MAX_TASKS"}]
