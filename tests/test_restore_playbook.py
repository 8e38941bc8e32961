"""playbooks/restore.yml: bad input is refused before anything is sent, and the admin password
never shows up in its output, even when the restore fails (no ClickHouse server runs here:
the RESTORE request itself is refused at the connection, which the test expects)."""

import pytest

from tests.conftest import ROOT, local_inventory, run_playbook

PASSWORD = "restore-test-password-7f3a"  # noqa: S105  (a test value, looked for in the output)


def run_restore(tmp_path, *extra: str):
    inv = local_inventory(tmp_path, {"clickhouse": {"ch1": {}}}, clickhouse_admin_password=PASSWORD)
    return run_playbook(
        ROOT / "playbooks" / "restore.yml",
        "-i",
        inv,
        "-v",
        *extra,
        ANSIBLE_FACT_CACHING="memory",
        ANSIBLE_GATHERING="explicit",
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-e", '{"restore_backup_name": "full_1\'); DROP TABLE x; --"}'],
        ["-e", "restore_backup_name=full_1", "-e", '{"restore_databases": ["ext; DROP DATABASE prod"]}'],
        ["-e", "restore_backup_name=full_1", "-e", '{"restore_databases": []}'],
    ],
    ids=["no-name", "bad-name", "bad-database", "no-database"],
)
def test_bad_input_is_refused_before_the_restore(tmp_path, args):
    result = run_restore(tmp_path, *args)
    assert result.returncode != 0
    assert "Pass the backup to restore: -e restore_backup_name=<name>" in result.stdout
    assert "Restore the backup" not in result.stdout


def test_password_stays_out_of_the_output(tmp_path):
    result = run_restore(tmp_path, "-e", "restore_backup_name=full_20261122T0100", "-e", "clickhouse_http_port=1")
    out = result.stdout + result.stderr
    assert result.returncode != 0  # nothing listens on port 1
    assert "TASK [Restore the backup]" in out
    assert "127.0.0.1:1" in out, out[-2000:]
    assert PASSWORD not in out
