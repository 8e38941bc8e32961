"""PostgreSQL backups to MinIO with pgBackRest and a point-in-time restore, on the lab (full stack):
after converge the stanza has a full backup, WAL archiving works and the timers are active; then
the drill: N rows into a probe table in each of prod, airflow and superset, an incremental backup,
a point in time T, M more rows and another incremental backup, and playbooks/restore_postgresql.yml
back to T over the production path. Afterwards every probe table holds N rows again (not N + M),
PostgreSQL runs on a new timeline that pgBackRest archives, and Airflow's and Superset's health
endpoints answer through their TLS front ends. The probe tables are dropped at the end and a new
full backup is taken (the restore's own advice).

Everything runs on the lab's hosts over SSH (platform_data.remote) or on the controller
(ansible-playbook); nothing else is contacted."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # platform_data, beside this file

import platform_data as data

CONTRACT = yaml.safe_load((data.ROOT / "roles/platform/defaults/main.yml").read_text())
STANZA = CONTRACT["platform_pgbackrest_stanza"]
CA = "/etc/chplatform/tls/ca.crt"
TABLE = "pgbackrest_probe"
N, M = 300, 200
# Each database with the role that owns it (the probe table is created as the owner, as its application would).
DATABASES = {"prod": "prod_owner", "airflow": "airflow", "superset": "superset"}


def psql(database: str, sql: str) -> str:
    script = f"sudo -u postgres psql -v ON_ERROR_STOP=1 -XAtq -d {database} <<'SQL'\n{sql}\nSQL"
    return data.remote("pg01", script)


def pgbackrest(*args: str, timeout: int = 600) -> str:
    return data.remote("pg01", f"sudo -u postgres pgbackrest --stanza={STANZA} {' '.join(args)}", timeout=timeout)


def info() -> dict:
    return json.loads(pgbackrest("--output=json", "info"))[0]


def counts() -> dict[str, int]:
    return {db: int(psql(db, f"SELECT count(*) FROM public.{TABLE}")) for db in DATABASES}


def insert(first: int, last: int) -> None:
    for db, owner in DATABASES.items():
        psql(
            db,
            f"SET ROLE {owner};\nCREATE TABLE IF NOT EXISTS public.{TABLE} (id integer PRIMARY KEY, note text NOT NULL);\n"
            f"INSERT INTO public.{TABLE} SELECT g, 'row ' || g FROM generate_series({first}, {last}) g;",
        )


def timeline() -> int:
    return int(psql("postgres", "SELECT timeline_id FROM pg_control_checkpoint()"))


def healthy_uis(attempts: int = 24) -> dict[str, str]:
    """Each UI's health through nginx from monitor01 (verified against the CA), retried while it starts."""
    seen = {}
    for host, path, mark, *_ in data.UIS:
        for _ in range(attempts):
            out = data.remote(
                "monitor01", f"curl -sS --max-time 10 --cacert {CA} -w '\\n%{{http_code}}' https://{host}{path} || true"
            )
            body, _, status = out.rpartition("\n")
            seen[host] = f"{status} {body[:120]}"
            if status == "200" and mark in body:
                break
            time.sleep(5)
    return seen


def test_the_stanza_has_a_full_backup_and_archives_wal_after_converge():
    stanza = info()
    backups = stanza["backup"]
    print(f"stanza {STANZA}: {stanza['status']}, backups {[(b['label'], b['type']) for b in backups]}")
    assert stanza["status"]["code"] == 0, stanza["status"]
    assert any(b["type"] == "full" for b in backups), backups
    assert psql("postgres", "SHOW archive_mode") == "on"
    assert psql("postgres", "SHOW archive_command") == f"pgbackrest --stanza={STANZA} archive-push %p"
    # The configuration holds the S3 secret: postgres only.
    assert data.remote("pg01", "stat -c '%U %a' /etc/pgbackrest/pgbackrest.conf") == "postgres 640"
    pgbackrest("check")
    failed = psql("postgres", "SELECT failed_count FROM pg_stat_archiver")
    timers = data.remote("pg01", "systemctl is-active pgbackrest-full.timer pgbackrest-incr.timer").split()
    print(f"archiver failures {failed}, timers {timers}")
    assert timers == ["active", "active"]


def test_a_point_in_time_restore_brings_back_the_rows_of_that_time_and_the_uis():
    try:
        for db in DATABASES:
            psql(db, f"DROP TABLE IF EXISTS public.{TABLE}")
        insert(1, N)
        pgbackrest("--type=incr", "backup")
        # T: after a WAL switch and a pause, so that T falls between the N rows' commits and the M rows'.
        psql("postgres", "SELECT pg_switch_wal()")
        time.sleep(2)
        target = psql("postgres", "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
        at_target = counts()
        time.sleep(2)
        insert(N + 1, N + M)
        pgbackrest("--type=incr", "backup")
        before = counts()
        timeline_before = timeline()
        print(f"T = {target}: rows {at_target}; afterwards {before}, timeline {timeline_before}")
        assert at_target == dict.fromkeys(DATABASES, N) and before == dict.fromkeys(DATABASES, N + M)

        # The operator's preview first: it exits 0, says nothing will change, and changes nothing.
        preview = data.run(
            ["ansible-playbook", "-i", str(data.INVENTORY), "playbooks/restore_postgresql.yml",
             "-e", json.dumps({"restore_target": target}), "--check", "--diff"],
            timeout=900,
        )  # fmt: skip
        assert preview.returncode == 0, preview.stdout[-5000:] + preview.stderr[-2000:]
        assert "Check mode: nothing will change." in preview.stdout, preview.stdout[-3000:]
        assert counts() == before and timeline() == timeline_before, "the preview changed the database"
        assert psql("postgres", "SELECT pg_is_in_recovery()") == "f"
        print("restore_postgresql.yml --check --diff: exit 0, the rows and the timeline unchanged")

        began = time.monotonic()
        run = data.run(
            ["ansible-playbook", "-i", str(data.INVENTORY), "playbooks/restore_postgresql.yml",
             "-e", json.dumps({"restore_target": target})],
            timeout=1800,
        )  # fmt: skip
        took = time.monotonic() - began
        shown = [line.strip() for line in run.stdout.splitlines() if "Restored to" in line or "timeline" in line]
        print(f"restore_postgresql.yml: exit {run.returncode} in {took:.0f} s; {shown}")
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]

        after = counts()
        print(f"rows after the restore: {after}, timeline {timeline()}")
        assert after == at_target, f"restored to {target}: expected {at_target}, found {after}"
        assert timeline() > timeline_before
        assert psql("postgres", "SELECT pg_is_in_recovery()") == "f"
        pgbackrest("check")

        seen = healthy_uis()
        print(f"UIs after the restore: {seen}")
        for host, _, mark, *_ in data.UIS:
            assert seen[host].startswith("200") and mark in seen[host], (host, seen[host])
    finally:
        for db in DATABASES:
            psql(db, f"DROP TABLE IF EXISTS public.{TABLE}")
        # A new full backup on the new timeline, as the playbook advises.
        pgbackrest("--type=full", "backup", timeout=1200)
