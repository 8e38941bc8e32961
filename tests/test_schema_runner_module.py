"""The clickhouse_migrations Ansible module itself, run by ansible on the controller.

Without a ClickHouse server (none can run here) it must fail with a message naming the server,
refuse a directory holding something that is not a migration, and never print a password.
"""

from __future__ import annotations

import json
import socket
import sys

from tests.conftest import ROOT, ansible_env
from tests.services import render_init_db


def run_module(args: str) -> dict:
    import subprocess

    r = subprocess.run(
        ["ansible", "localhost", "-m", "chplatform.platform.clickhouse_migrations", "-a", args,
         "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=ROOT, env=ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "{" in r.stdout, r.stdout + r.stderr
    out, _ = json.JSONDecoder().raw_decode(r.stdout[r.stdout.index("{") :])
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_module_names_the_unreachable_server_and_hides_the_password(tmp_path):
    d = render_init_db(tmp_path / "sql", "single")
    port = free_port()
    res = run_module(f"path={d} login_port={port} login_user=admin login_password=s3cr3t-pw connect_timeout=2")
    assert res.get("failed") is True
    assert res["msg"].startswith(f"cannot connect to ClickHouse at admin@localhost:{port}"), res["msg"]
    assert "s3cr3t-pw" not in json.dumps(res)


def test_module_refuses_a_stray_file(tmp_path):
    d = render_init_db(tmp_path / "sql", "single")
    (d / "notes.txt").write_text("hello")
    res = run_module(f"path={d}")
    assert res.get("failed") is True
    assert "holds files that are not migrations (NNN_name.sql): notes.txt" in res["msg"]
