"""common's files.yml and the chplatform.platform.file_set module behind it, run by Ansible here.

The roles install every rendered tree (DAGs, the Superset bundle, ClickHouse drop-ins, base
configuration) through this one task file: what it writes, what it leaves alone, what check
mode shows and what a failed validation leaves must hold for all of them.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat

import yaml

from tests.conftest import local_inventory, run_playbook

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def play(tmp_path, files: list[dict], *args: str):
    """Run files.yml over ``files`` on this controller; return (process, common_files_written)."""
    out = tmp_path / "written.json"
    pb = tmp_path / "files.yml"
    pb.write_text(yaml.safe_dump([{
        "name": "files.yml over a set of files",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_role": {"name": "common", "tasks_from": "files.yml"},
             "vars": {"common_files": files, "common_files_label": "the test files"}},
            {"ansible.builtin.copy": {"content": "{{ common_files_written | to_json }}", "dest": str(out)},
             "delegate_to": "localhost", "check_mode": False, "changed_when": False},
        ],
    }]))  # fmt: skip
    inv = local_inventory(tmp_path, {"files": {"h1": {}}})
    r = run_playbook(pb, "-i", inv, *args)
    written = json.loads(out.read_text()) if r.returncode == 0 else None
    return r, written


def spec(path, content, mode="0644", **extra):
    return {"dest": str(path), "content": content, "mode": mode, "owner": USER, "group": GROUP, **extra}


def recap_changed(r) -> int:
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("h1 "))
    return int(line.split("changed=")[1].split()[0])


def test_writes_what_differs_and_nothing_on_a_rerun(tmp_path):
    d = tmp_path / "tree"
    d.mkdir()
    (d / "same.txt").write_text("kept\n")
    os.chmod(d / "same.txt", 0o644)
    (d / "old.txt").write_text("before\n")
    os.chmod(d / "old.txt", 0o644)
    (d / "mode.txt").write_text("x\n")
    os.chmod(d / "mode.txt", 0o600)
    files = [
        spec(d / "same.txt", "kept\n"),
        spec(d / "old.txt", "after\n"),
        spec(d / "new.txt", "fresh\n", "0640"),
        spec(d / "mode.txt", "x\n", "0644"),
    ]
    mtime_same = (d / "same.txt").stat().st_mtime_ns
    r, written = play(tmp_path, files)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert written == [str(d / "old.txt"), str(d / "new.txt"), str(d / "mode.txt")]
    assert (d / "old.txt").read_text() == "after\n"
    assert (d / "new.txt").read_text() == "fresh\n"
    assert stat.S_IMODE((d / "new.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((d / "mode.txt").stat().st_mode) == 0o644
    assert (d / "same.txt").stat().st_mtime_ns == mtime_same, "an equal file was rewritten"
    assert not [p.name for p in d.iterdir() if p.name.startswith(".")], "a temporary file was left behind"

    r, written = play(tmp_path, files)
    assert r.returncode == 0, r.stdout[-3000:]
    assert written == [] and recap_changed(r) == 0, r.stdout[-3000:]


def test_check_mode_shows_the_diff_and_writes_nothing(tmp_path):
    target = tmp_path / "conf.ini"
    target.write_text("port = 1\n")
    os.chmod(target, 0o644)
    r, written = play(tmp_path, [spec(target, "port = 2\n")], "--check", "--diff")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert written == [str(target)]
    assert "-port = 1" in r.stdout and "+port = 2" in r.stdout, r.stdout[-3000:]
    assert target.read_text() == "port = 1\n"


def test_a_file_that_fails_validation_is_not_installed(tmp_path):
    target = tmp_path / "config.json"
    target.write_text('{"ok": true}\n')
    check = "python3 -c 'import json,sys; json.load(open(sys.argv[1]))' %s"
    r, _ = play(tmp_path, [spec(target, "{broken\n", validate=check)])
    assert r.returncode != 0
    assert f"{target} failed validation" in r.stdout, r.stdout[-3000:]
    assert target.read_text() == '{"ok": true}\n'
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".config.json")]


def test_a_missing_directory_is_named(tmp_path):
    target = tmp_path / "absent" / "f.txt"
    r, _ = play(tmp_path, [spec(target, "x\n")])
    assert r.returncode != 0
    assert f"the directory {target.parent} of {target} does not exist" in r.stdout, r.stdout[-3000:]
