"""PostgreSQL backups with pgBackRest (the postgresql role's tasks/backup.yml) and the point-in-time
restore (playbooks/restore_postgresql.yml), without containers: pgbackrest.conf and postgresql.conf
rendered from the platform contract, bad backup inputs refused by the role's checks before any
change, and bad restore targets (or no backup to restore from) refused before anything is stopped.
`pgbackrest info` is a stand-in script here; the real backups and restore are checked by the full
stack (molecule/default/tests/test_pgbackrest.py)."""

from __future__ import annotations

import configparser
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    ROOT,
    assert_refused,
    local_inventory,
    problem_lines,
    render_role_templates,
    run_concurrently,
    run_playbook,
)

ROLE = ROOT / "roles" / "postgresql"
S3_SECRET = "pgbackrest-test-secret-4e1f"  # noqa: S105  (a test value, looked for in the output)
# Throw-away values of the secrets the contract maps into the postgresql role's inputs.
SECRETS = {
    **{
        f"vault_postgresql_{name}_password": f"test-{name}-pw"
        for name in ("airflow", "superset", "prod", "clickhouse", "airflow_reader", "monitoring")
    },
    **{f"vault_minio_{name}_secret_key": f"test-minio-{name}-key" for name in ("clickhouse", "airflow", "prometheus")},
    "vault_minio_pgbackrest_secret_key": S3_SECRET,
}
TEMPLATES = [
    {"src": "etc/pgbackrest/pgbackrest.conf.j2", "dest": "pgbackrest.conf"},
    {"src": "etc/postgresql/15/main/postgresql.conf.j2", "dest": "postgresql.conf"},
    {"src": "etc/systemd/system/pgbackrest-backup.timer.j2", "dest": "full.timer", "type": "full",
     "schedule": "Sun *-*-* 02:30:00"},
]  # fmt: skip


def render(tmp_path: Path, **extra) -> Path:
    """The role's templates for pg01 of an inventory with minio01, from the contract's defaults."""
    inventory = local_inventory(tmp_path, {"postgres": {"pg01": {}}, "minio": {"minio01": {}}})
    values = {**SECRETS, "postgresql_listen_addresses": ["localhost"], **extra}
    out, output = render_role_templates(tmp_path, "postgresql", TEMPLATES, inventory, "pg01", values)
    assert S3_SECRET not in output
    return out


def ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("pgbackrest"))


def test_one_stanza_in_an_s3_repository_on_minio_over_verified_https(rendered):
    conf = ini(rendered / "pgbackrest.conf")
    assert conf.sections() == ["global", "chplatform"]
    repo = dict(conf["global"])
    print(json.dumps({k: v for k, v in repo.items() if k != "repo1-s3-key-secret"}, indent=1))
    assert repo == {
        "repo1-type": "s3",
        # platform_minio_endpoint (https://minio01:9000) split into the name its certificate carries and the port.
        "repo1-s3-endpoint": "minio01",
        "repo1-storage-port": "9000",
        "repo1-s3-uri-style": "path",
        "repo1-s3-region": "us-east-1",
        "repo1-s3-bucket": "postgresql-backups",
        "repo1-s3-key": "pgbackrest",
        "repo1-s3-key-secret": S3_SECRET,
        "repo1-storage-ca-file": "/etc/chplatform/tls/ca.crt",
        "repo1-storage-verify-tls": "y",
        "repo1-path": "/pgbackrest",
        "repo1-retention-full-type": "count",
        "repo1-retention-full": "2",
        "repo1-retention-archive-type": "full",
        "repo1-retention-archive": "2",
        "compress-type": "zst",
        "process-max": "1",
        "start-fast": "y",
        "log-path": "/var/log/pgbackrest",
        "log-level-console": "info",
        "log-level-file": "detail",
    }
    assert dict(conf["chplatform"]) == {
        "pg1-path": "/data/postgresql/15/main",
        "pg1-port": "5432",
        "pg1-socket-path": "/var/run/postgresql",
    }


def test_the_contract_moves_every_client_together(tmp_path):
    """Another stanza, bucket, MinIO host port and CA path: set once, followed by the repository,
    archive_command and the timers."""
    out = render(
        tmp_path,
        platform_pgbackrest_stanza="pg-main",
        platform_minio_pgbackrest_bucket="pg-wal",
        minio_api_port=9100,
        platform_tls_dir="/etc/tls",
        postgresql_backup_retention_full=4,
    )
    conf = ini(out / "pgbackrest.conf")
    assert conf.sections() == ["global", "pg-main"]
    assert conf["global"]["repo1-s3-bucket"] == "pg-wal"
    assert conf["global"]["repo1-storage-port"] == "9100"
    assert conf["global"]["repo1-storage-ca-file"] == "/etc/tls/ca.crt"
    assert conf["global"]["repo1-retention-full"] == conf["global"]["repo1-retention-archive"] == "4"
    assert "archive_command = 'pgbackrest --stanza=pg-main archive-push %p'" in (out / "postgresql.conf").read_text()


def test_postgresql_archives_its_wal_to_the_stanza(rendered):
    lines = (rendered / "postgresql.conf").read_text().splitlines()
    assert "archive_mode = on" in lines
    assert "archive_command = 'pgbackrest --stanza=chplatform archive-push %p'" in lines
    assert "wal_level = replica" in lines


def test_without_backups_nothing_is_archived(tmp_path):
    text = (render(tmp_path, postgresql_backup=False) / "postgresql.conf").read_text()
    assert "archive_mode" not in text and "archive_command" not in text


def test_the_timer_runs_its_backup_type_on_the_schedule(rendered):
    timer = (rendered / "full.timer").read_text()
    assert "OnCalendar=Sun *-*-* 02:30:00" in timer and "Unit=pgbackrest-full.service" in timer
    assert "Persistent=true" in timer


def test_the_role_keeps_the_secret_out_of_logs_and_world_readable_files():
    tasks = yaml.safe_load((ROLE / "tasks/backup.yml").read_text())
    block = next(t for t in tasks if "block" in t)["block"]
    conf = next(t for t in block if t.get("ansible.builtin.template", {}).get("src", "").startswith("etc/pgbackrest/"))
    assert conf["no_log"] is True
    assert (conf["ansible.builtin.template"]["owner"], conf["ansible.builtin.template"]["mode"]) == ("postgres", "0640")


# --------------------------------------------------------------------------- the role's checks


def check_inputs(tmp_path: Path, children: dict | None = None, **role_vars):
    """The postgresql role's input checks (tasks/assert.yml) on this controller, as pg of an
    inventory with a MinIO host (never contacted)."""
    children = {"postgres": {"localhost": {}}, "minio": {"minio01": {}}} if children is None else children
    inventory = local_inventory(tmp_path, children)
    book = [
        {
            "name": "Check the postgresql role's inputs",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"ansible.builtin.include_role": {"name": "postgresql", "tasks_from": "assert.yml"}}],
        }
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(book))
    values = {**SECRETS, "postgresql_listen_addresses": ["localhost"], **role_vars}
    (tmp_path / "vars.json").write_text(json.dumps(values))
    return run_playbook(playbook, "-i", inventory, "-e", f"@{tmp_path / 'vars.json'}", timeout=180)


BAD_INPUTS = {
    "stanza": (
        {"platform_pgbackrest_stanza": "Main Stanza"},
        "platform_pgbackrest_stanza on localhost is 'Main Stanza'",
        "use lower-case letters, digits, _ and -",
    ),
    "bucket": (
        {"platform_minio_pgbackrest_bucket": "PG_Backups"},
        "platform_minio_pgbackrest_bucket on localhost is 'PG_Backups'",
        "rename it, e.g. 'pg-backups'",
    ),
    "retention": (
        {"postgresql_backup_retention_full": 0},
        "postgresql_backup_retention_full on localhost is 0",
        "use a whole number from 1 to 9999999",
    ),
    "schedule": (
        {"postgresql_backup_incr_schedule": "daily; rm -rf /"},
        "postgresql_backup_incr_schedule on localhost is 'daily; rm -rf /'",
        "use a systemd OnCalendar expression",
    ),
    "plain-http-minio": (
        {"minio_tls": False},
        "postgresql_backup on localhost is True",
        "pgBackRest reaches S3 over HTTPS only and minio_tls is false: set minio_tls: true",
    ),
    "short-secret": (
        {"vault_minio_pgbackrest_secret_key": "short"},
        "minio_pgbackrest_secret_key on localhost is a secret of 5 characters",
        "set vault_minio_pgbackrest_secret_key (8 to 40 characters) in group_vars/all/vault.yml",
    ),
    "user-without-the-bucket": (
        {"platform_minio_pgbackrest_user": "airflow"},
        "minio_users[airflow].read_write on group minio is ['datasets']",
        "grant read_write on it",
    ),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> dict:
    jobs = {
        name: (lambda name=name, v=case[0]: check_inputs(tmp_path_factory.mktemp(name), **v))
        for name, case in BAD_INPUTS.items()
    }
    jobs["no-minio-host"] = lambda: check_inputs(
        tmp_path_factory.mktemp("no-minio"), {"postgres": {"localhost": {}}}, postgresql_backup=True
    )
    jobs["good"] = lambda: check_inputs(tmp_path_factory.mktemp("good"))
    return run_concurrently(jobs)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_backup_input_is_refused_before_any_change(refusals, case):
    _, start, fix = BAD_INPUTS[case]
    out = assert_refused(refusals[case], start, fix, count=1)
    print(next(line for line in problem_lines(out) if line.startswith(start)))
    assert S3_SECRET not in out


def test_backups_without_a_minio_host_are_refused(refusals):
    assert_refused(
        refusals["no-minio-host"],
        "postgresql_backup on localhost is True",
        "the inventory has no host in group minio: add one, or set postgresql_backup: false",
        count=1,
    )


def test_the_contract_passes_the_checks(refusals):
    result = refusals["good"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert S3_SECRET not in result.stdout + result.stderr


def test_backups_default_to_on_only_where_minio_is():
    contract = yaml.safe_load((ROOT / "roles/platform/defaults/main.yml").read_text())
    assert contract["postgresql_backup"] == "{{ platform_minio_host | length > 0 }}"
    bucket = contract["platform_minio_pgbackrest_bucket"]
    assert {"name": "{{ platform_minio_pgbackrest_bucket }}"} in contract["minio_buckets"]
    user = next(u for u in contract["minio_users"] if u["name"] == "{{ platform_minio_pgbackrest_user }}")
    assert user == {
        "name": "{{ platform_minio_pgbackrest_user }}",
        "secret_key": "{{ minio_pgbackrest_secret_key }}",
        "read_write": ["{{ platform_minio_pgbackrest_bucket }}"],
    }
    assert bucket == "postgresql-backups"
    clients = yaml.safe_load((ROOT / "roles/firewall/defaults/main.yml").read_text())["firewall_clients"]
    assert "postgres" in clients["minio_api_address"]


# --------------------------------------------------------------------------- the restore playbook

FAKE_PGBACKREST = """#!/bin/sh
# `pgbackrest ... info` of a test: the JSON in $PGBACKREST_FAKE_INFO; any other command fails.
case "$*" in *info*) cat "$PGBACKREST_FAKE_INFO" ;; *) echo "fake pgbackrest: $*" >&2; exit 99 ;; esac
"""


def info_of(*stops: int) -> list[dict]:
    backups = [
        {"label": f"backup{i}F", "type": "full", "timestamp": {"start": stop - 60, "stop": stop}}
        for i, stop in enumerate(stops)
    ]
    status = {"code": 0, "message": "ok"} if backups else {"code": 2, "message": "no valid backups"}
    return [{"name": "chplatform", "status": status, "backup": backups}]


def run_restore(tmp_path: Path, target: str | None, info: list[dict] | None = None, *extra: str):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pgbackrest"
    fake.write_text(FAKE_PGBACKREST)
    fake.chmod(0o755)
    (tmp_path / "info.json").write_text(json.dumps(info if info is not None else info_of(int(time.time()) - 86400)))
    inventory = local_inventory(tmp_path, {"postgres": {"localhost": {}}, "minio": {"minio01": {}}})
    values = {**SECRETS, "postgresql_listen_addresses": ["localhost"]}
    if target is not None:
        values["restore_target"] = target
    (tmp_path / "vars.json").write_text(json.dumps(values))
    return run_playbook(
        ROOT / "playbooks" / "restore_postgresql.yml",
        "-i",
        inventory,
        "-e",
        f"@{tmp_path / 'vars.json'}",
        *extra,
        timeout=180,
        PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
        PGBACKREST_FAKE_INFO=str(tmp_path / "info.json"),
        ANSIBLE_FACT_CACHING="memory",
    )


BAD_TARGETS = {
    "none": None,
    "word": "yesterday",
    "no-offset": "2026-12-01 12:00:00",
    "injection": "2026-12-01 12:00:00+00 --type=immediate",
    "date-only": "2026-12-01",
}


@pytest.fixture(scope="module")
def restores(tmp_path_factory) -> dict:
    day = 86400
    now = int(time.time())
    jobs = {
        name: (lambda name=name, t=target: run_restore(tmp_path_factory.mktemp(f"target-{name}"), t))
        for name, target in BAD_TARGETS.items()
    }
    jobs["no-backup"] = lambda: run_restore(tmp_path_factory.mktemp("no-backup"), "latest", info_of())
    jobs["before-oldest"] = lambda: run_restore(
        tmp_path_factory.mktemp("before"), time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(now - 3 * day)),
        info_of(now - 2 * day, now - day),
    )  # fmt: skip
    jobs["future"] = lambda: run_restore(
        tmp_path_factory.mktemp("future"), time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(now + day))
    )
    # A good target in check mode: the checks pass and the plan is shown (what follows needs the
    # real PostgreSQL service; nothing of it is looked at here).
    jobs["good"] = lambda: run_restore(
        tmp_path_factory.mktemp("good"),
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 3600 + 7200)) + "+02:00",
        info_of(now - 2 * day),
        "--check",
    )
    return run_concurrently(jobs)


def refused_before_anything_stopped(result, message: str) -> str:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert message in " ".join(out.split()), out[-3000:]
    for task in ("Stop Airflow's and Superset's services", "Stop PostgreSQL", "Restore the data directory"):
        assert f"TASK [{task}" not in out, task
    assert S3_SECRET not in out
    return out


@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_a_bad_restore_target_is_refused_naming_the_form(restores, case):
    out = refused_before_anything_stopped(
        restores[case], "Pass the point to restore to: -e \"restore_target='YYYY-MM-DD HH:MM:SS+00'\""
    )
    # Refused before the repository is even read.
    assert "TASK [Read the backups in the repository]" not in out


def test_a_restore_without_a_backup_is_refused(restores):
    refused_before_anything_stopped(
        restores["no-backup"], "The repository holds no backup of stanza chplatform (no valid backups): nothing"
    )


def test_a_target_before_the_oldest_backup_is_refused(restores):
    out = refused_before_anything_stopped(restores["before-oldest"], "before the oldest backup, which ended at")
    assert "choose a time from then to now (backups: backup0F, backup1F)" in " ".join(out.split())


def test_a_target_in_the_future_is_refused(restores):
    refused_before_anything_stopped(restores["future"], "is in the future")


def test_a_good_target_passes_the_checks_and_shows_the_plan(restores):
    out = " ".join((restores["good"].stdout + restores["good"].stderr).split())
    assert "TASK [Show the plan]" in out, out[-3000:]
    assert "Restore PostgreSQL on localhost (stanza chplatform) to" in out
    assert "Check mode: nothing will change." in out
    assert S3_SECRET not in out
