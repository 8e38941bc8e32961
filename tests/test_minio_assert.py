"""The minio role's input checks (tasks/assert.yml): bad inventories fail before anything changes,
with a message that names the culprit and the fix; a good one passes. Also the TLS switch (minio_tls) of
the rendered environment and the per-user policy the role derives from read_write/read_only/read_delete."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from tests.conftest import ROOT, assert_refused, run_playbook

SHA = "1ce61ef8ebff2ff722c34ba8c213a64022c23facd5bd9e709a8414a22df924b4"
GOOD = {
    "minio_artifact_url": "http://artifacts.example.internal/minio",
    "minio_artifact_sha256": SHA,
    "minio_root_password": "root-password-for-tests",
    "minio_clickhouse_secret_key": "clickhouse-secret-key",
    "minio_airflow_secret_key": "airflow-secret-key-01",
    "minio_prometheus_secret_key": "prometheus-secret-key",
    "minio_pgbackrest_secret_key": "pgbackrest-secret-key",
}


def run_assert(tmp_path, extra: dict, tasks_from: str = "assert.yml", after: list | None = None):
    book = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"ansible.builtin.include_role": {"name": "minio", "tasks_from": tasks_from}}, *(after or [])],
        }
    ]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(book))
    (tmp_path / "vars.json").write_text(json.dumps({**GOOD, **extra}))
    return run_playbook(path, "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}", timeout=120)


def refused(tmp_path, extra: dict, line: str, fix: str) -> str:
    """The role's checks refuse these inputs with exactly one problem line, starting with ``line``
    and naming ``fix``; nothing past the checks ran. Returns the output."""
    out = assert_refused(run_assert(tmp_path, extra), line, fix, count=1)
    assert "Install" not in out and "Create" not in out, out[-3000:]
    return out


def test_good_inputs_pass(tmp_path):
    proc = run_assert(tmp_path, {})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The checks ran (on localhost, outside any minio group) and found nothing.
    assert "TASK [minio : Check this role's inputs" in proc.stdout and "ok: [localhost]" in proc.stdout


@pytest.mark.parametrize(
    ("bucket", "rule"),
    [
        ("Datasets", "lowercase"),
        ("raw_events", "no underscores"),
        ("ab", "3 to 63 characters"),
        ("b" * 64, "3 to 63 characters"),
        ("10.0.0.1", "IP address"),
        ("a..b", "adjacent dots"),
    ],
)
def test_bad_bucket_names_fail_with_the_rule(tmp_path, bucket, rule):
    out = refused(
        tmp_path, {"minio_buckets_extra": [{"name": bucket}]}, f"minio_buckets[{bucket}].name on group minio", rule
    )
    assert "rename it, e.g. '" in out


def test_duplicate_bucket_fails(tmp_path):
    refused(
        tmp_path,
        {"minio_buckets_extra": [{"name": "datasets"}]},
        "minio_buckets[datasets] on group minio is 'datasets'",
        "the bucket is listed twice: keep one entry",
    )


def test_missing_artifact_names_the_fix(tmp_path):
    out = refused(
        tmp_path,
        {"minio_artifact_url": ""},
        "minio_artifact_url on localhost is ''",
        "set minio_artifact_url or minio_artifact_src to a server binary built with",
    )
    assert "go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c" in out
    assert "bin/bundle builds one" in out


def test_bad_checksum_fails(tmp_path):
    refused(tmp_path, {"minio_artifact_sha256": "abc"}, "minio_artifact_sha256 on localhost is 'abc'", "64 hex digits")


def test_missing_root_password_fails(tmp_path):
    refused(
        tmp_path,
        {"minio_root_password": ""},
        "minio_root_password on localhost is empty",
        "set vault_minio_root_password (8 to 40 characters)",
    )


def test_missing_user_secret_fails_without_showing_secrets(tmp_path):
    out = refused(
        tmp_path,
        {"minio_clickhouse_secret_key": ""},
        "minio_users[clickhouse].secret_key on group minio is empty",
        "set vault_minio_clickhouse_secret_key (8 to 40 characters)",
    )
    # The other secrets are in the checked data; none reaches the output.
    assert GOOD["minio_airflow_secret_key"] not in out
    assert GOOD["minio_root_password"] not in out


def test_short_user_secret_is_shown_by_its_length_only(tmp_path):
    out = refused(
        tmp_path,
        {"minio_airflow_secret_key": "short"},
        "minio_users[airflow].secret_key on group minio is a secret of 5 characters",
        "8 to 40 characters",
    )
    assert "short" not in out.replace("minio_users[airflow].secret_key", "")


def test_bad_bucket_granted_to_a_user_fails(tmp_path):
    users = [{"name": "etl", "secret_key": "etl-secret-key-1", "read_only": ["Raw_Data"]}]
    out = refused(
        tmp_path,
        {"minio_users_extra": users},
        "minio_users[etl].read_write/read_only/read_delete on group minio is 'Raw_Data'",
        "no underscores",
    )
    assert users[0]["secret_key"] not in out


def test_user_without_any_grant_fails(tmp_path):
    users = [{"name": "idle", "secret_key": "idle-secret-key-1"}]
    refused(
        tmp_path,
        {"minio_users_extra": users},
        "minio_users[idle] on group minio is 'idle'",
        "grant it something: read_write / read_only / read_delete buckets, a policy or policies",
    )


def test_tls_needs_cert_and_key(tmp_path):
    refused(
        tmp_path,
        {"minio_tls_cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
        "minio_tls_cert on localhost is half set",
        "set both minio_tls_cert and minio_tls_key, or neither",
    )


def test_api_and_console_need_two_ports(tmp_path):
    refused(
        tmp_path,
        {"minio_console_address": ":9000"},
        "minio_api_address on localhost is ':9000'",
        "two different ports",
    )


def _render(tmp_path, extra: dict, user: int = 0) -> dict:
    """The role's derived values (endpoint, policy of minio_users[user], env file) for these inputs."""
    dest = tmp_path / "rendered"
    dest.mkdir()
    book = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": [
                {"ansible.builtin.include_role": {"name": "minio", "tasks_from": "assert.yml", "public": True}},
                {
                    "ansible.builtin.copy": {
                        "dest": str(dest / "values.json"),
                        "mode": "0600",
                        "content": "{{ {'endpoint': minio_admin_endpoint, 'tls': __minio_tls | bool,"
                        " 'ca_file': minio_admin_ca_file, 'policy': __minio_grant_policy} | to_json }}",
                    },
                    "vars": {"item": f"{{{{ minio_users[{user}] }}}}"},
                },
                {
                    "ansible.builtin.template": {
                        "src": str(ROOT / "roles/minio/templates/etc/default/minio.j2"),
                        "dest": str(dest / "env"),
                        "mode": "0600",
                    },
                },
            ],
        }
    ]
    path = tmp_path / "render.yml"
    path.write_text(yaml.safe_dump(book))
    (tmp_path / "vars.json").write_text(json.dumps({**GOOD, **extra}))
    proc = run_playbook(path, "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = json.loads((dest / "values.json").read_text())
    values["env"] = (dest / "env").read_text()
    return values


def test_https_by_default_and_policy_of_clickhouse(tmp_path):
    """minio_tls (the contract's, true): the modules reach the server under the host's inventory
    name, which its certificate carries (not 127.0.0.1), verified against the platform's CA; the
    console reaches the API under that name too."""
    values = _render(tmp_path, {})
    assert values["endpoint"] == "https://localhost:9000" and values["tls"] is True
    assert values["ca_file"] == "/etc/chplatform/tls/ca.crt"
    assert 'MINIO_VOLUMES="/data/minio"' in values["env"]
    assert 'MINIO_SERVER_URL="https://localhost:9000"' in values["env"]
    statements = values["policy"]["Statement"]
    by_action = {tuple(s["Action"]): sorted(s["Resource"]) for s in statements}
    assert by_action[("s3:GetBucketLocation", "s3:ListBucket")] == [
        "arn:aws:s3:::clickhouse-backups",
        "arn:aws:s3:::clickhouse-cold",
        "arn:aws:s3:::datasets",
    ]
    writes = next(r for a, r in by_action.items() if "s3:PutObject" in a)
    assert writes == ["arn:aws:s3:::clickhouse-backups/*", "arn:aws:s3:::clickhouse-cold/*"]


def test_airflow_deletes_expired_backups_but_never_writes_them(tmp_path):
    """read_delete: the backup DAGs' retention step deletes in clickhouse-backups with Airflow's key;
    ClickHouse alone writes there."""
    values = _render(tmp_path, {}, user=1)
    by_action = {tuple(s["Action"]): sorted(s["Resource"]) for s in values["policy"]["Statement"]}
    print(by_action)
    assert by_action[("s3:DeleteObject",)] == ["arn:aws:s3:::clickhouse-backups/*"]
    writes = next(r for a, r in by_action.items() if "s3:PutObject" in a)
    assert writes == ["arn:aws:s3:::datasets/*"]
    assert by_action[("s3:GetObject",)] == ["arn:aws:s3:::clickhouse-backups/*", "arn:aws:s3:::datasets/*"]


def test_plain_http_without_minio_tls(tmp_path):
    values = _render(tmp_path, {"minio_tls": False})
    assert values["endpoint"] == "http://127.0.0.1:9000" and values["tls"] is False
    assert "MINIO_SERVER_URL" not in values["env"]


def test_a_certificate_of_ones_own_keeps_https_on_the_api_port(tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    values = _render(tmp_path, {"minio_tls_cert": pem, "minio_tls_key": key, "minio_api_address": ":9443"})
    assert values["endpoint"] == "https://localhost:9443" and values["tls"] is True
    assert "--address :9443" in values["env"] and "--certs-dir /var/lib/minio-user/.minio/certs" in values["env"]
    assert 'MINIO_SERVER_URL="https://localhost:9443"' in values["env"]
