#!/usr/bin/python
# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402, S608  (Ansible module layout: imports after DOCUMENTATION; values go through quote())
"""Ansible module: apply ordered init_db migrations to ClickHouse once each, and manage users."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: clickhouse_migrations
short_description: Apply ordered SQL migrations to ClickHouse once each, recording name and checksum
description:
  - Reads the C(NNN_name.sql) files of I(path) on the managed host, in order, and applies those not yet
    recorded in I(table) over the native protocol (clickhouse-driver).
  - Each applied file is recorded with its name, sha256 checksum of its statements, time and I(applied_by).
  - Refuses to run when an applied file was modified since (the message names the file and both checksums),
    and when a new file sorts before an applied one.
  - Stops at the first failing statement; the message names the file, the statement number and its first line.
    Files applied before it stay recorded; the failing file is not, so a fixed file is re-run (write
    statements with IF NOT EXISTS so that a partial file can run again).
  - Optionally reconciles I(users) after the migrations (passwords are kept out of migrations so that a
    password change never alters an applied file). A password is changed only when logging in with it fails.
  - Check mode lists the migrations and users that would change, and changes nothing.
version_added: "1.0.0"
author: chplatform
requirements:
  - clickhouse-driver (Debian package python3-clickhouse-driver) on the managed host
options:
  path:
    description:
      - Directory with the rendered migrations (C(NNN_name.sql)); any other file is an error.
      - Its C(superseded/) subdirectory may hold earlier forms of a migration (C(NNN_name~form.sql));
        a migration recorded with the checksum of such a form counts as applied and is listed in
        RV(superseded) instead of failing as modified.
    type: path
    required: true
  login_host:
    description: ClickHouse server to connect to.
    type: str
    default: localhost
  login_port:
    description: Native protocol port (with I(secure), the server's C(tcp_port_secure), 9440 by default).
    type: int
    default: 9000
  secure:
    description:
      - Connect over TLS and verify the server's certificate (against I(ca_certs)) and its name (I(server_hostname),
        else I(login_host)); TLS 1.2 or later.
      - The module builds the TLS context itself, so that the certificate is verified whatever the driver's version
        (clickhouse-driver 0.2.5, Debian bookworm's, does not apply its own C(verify)).
    type: bool
    default: false
  ca_certs:
    description: With I(secure), the CA certificate(s) (PEM) the server's certificate must chain to; else the system's.
    type: path
  server_hostname:
    description:
      - With I(secure), the name the server's certificate must carry, instead of I(login_host) (also sent as SNI).
      - Needed when I(login_host) is a loopback address (C(localhost), C(127.0.0.1)), which a host's certificate
        does not name; give the server's own name, such as its inventory hostname.
    type: str
  login_user:
    description: User with the rights to run the migrations (DDL, RBAC).
    type: str
    default: default
  login_password:
    description: Password of I(login_user).
    type: str
    default: ""
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
  table:
    description: Table recording the applied migrations (created when missing).
    type: str
    default: default.schema_migrations
  replicated:
    description: Create I(table) as ReplicatedMergeTree (for migrations applied once per cluster with ON CLUSTER).
    type: bool
    default: false
  cluster:
    description: Create I(table) ON CLUSTER this cluster (with I(replicated)).
    type: str
  applied_by:
    description: Recorded with each applied migration.
    type: str
    default: ansible
  users:
    description: Users to create, keep at the given password and grant roles to (after the migrations).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name.
        type: str
        required: true
      password:
        description: Password; stored by ClickHouse as an unsalted sha256 hash computed here.
        type: str
        required: true
        no_log: true
      roles:
        description: Roles granted to the user, all of them default roles.
        type: list
        elements: str
        default: []
"""

EXAMPLES = r"""
- name: Apply the init_db migrations and reconcile users
  clickhouse_migrations:
    path: /var/lib/clickhouse-schema/init_db
    login_port: 9440
    login_user: admin
    login_password: "{{ clickhouse_schema_login_password }}"
    secure: true
    ca_certs: /etc/chplatform/tls/ca.crt
    server_hostname: "{{ inventory_hostname }}"
    applied_by: "ansible@{{ inventory_hostname }}"
    users:
      - name: etl
        password: "{{ vault_clickhouse_etl_password }}"
        roles: [etl]
  no_log: true
"""

RETURN = r"""
applied:
  description: Migrations applied by this run (in check mode, the ones that would be).
  returned: always
  type: list
  elements: str
superseded:
  description: Migrations recorded in an earlier form (C(name (form))), accepted as applied.
  returned: always
  type: list
  elements: str
already_applied:
  description: Migrations found recorded before this run.
  returned: always
  type: list
  elements: str
users_changed:
  description: Users created, re-passworded or granted roles (in check mode, that would be).
  returned: always
  type: list
  elements: str
"""

import hashlib
import ssl
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.chplatform.platform.plugins.module_utils.clickhouse_migrations import (
    MigrationError,
    Runner,
    load_migrations,
    quote,
)

try:
    from clickhouse_driver import Client
    from clickhouse_driver.errors import Error as DriverError
    from clickhouse_driver.errors import ServerException

    HAS_DRIVER, DRIVER_IMPORT_ERROR = True, None
except ImportError:
    HAS_DRIVER, DRIVER_IMPORT_ERROR = False, traceback.format_exc()

AUTHENTICATION_FAILED = 516


class DriverExecutor:
    """The runner's executor over clickhouse-driver (native protocol)."""

    def __init__(self, client):
        self.client = client

    def execute(self, sql):
        return self.client.execute(sql)


def ident(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def client_args(p, user, password):
    """Keyword arguments of clickhouse_driver's Client for the module's parameters ``p``, logging in as ``user``."""
    args = dict(
        host=p["login_host"], port=p["login_port"], user=user, password=password, connect_timeout=p["connect_timeout"]
    )
    if p["secure"]:
        args.update(
            secure=True, verify=True, ca_certs=p["ca_certs"], server_hostname=p["server_hostname"] or p["login_host"]
        )
    return args


def tls_context(ca_certs):
    """The TLS context of a secure connection: the certificate must chain to ``ca_certs`` (the system's CAs when
    None) and carry the name connected to (server_hostname), TLS 1.2 or later."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_certs)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def new_client(p, user, password, **extra):
    """A Client for the module's parameters ``p`` (both of the module's connections are made here).

    With ``secure``, the connection's TLS context is the module's own (tls_context): clickhouse-driver 0.2.5, the
    version Debian bookworm ships, builds a context that verifies nothing (it assigns the requested CERT_REQUIRED
    to the context's options, not to its verify_mode); the driver has called _create_ssl_context(ssl_options) for
    every secure socket in every version since."""
    client = Client(**client_args(p, user, password), **extra)
    if p["secure"]:
        context = tls_context(p["ca_certs"])
        for connection in (client.connection, *client.connections):
            connection._create_ssl_context = lambda _ssl_options, context=context: context
    return client


def describe(p):
    """Where the module connects, for messages: user@host:port, and with TLS the name and CA verified."""
    where = f"{p['login_user']}@{p['login_host']}:{p['login_port']}"
    if p["secure"]:
        name = p["server_hostname"] or p["login_host"]
        where += f" (TLS, certificate verified for {name} against {p['ca_certs'] or 'the system CAs'})"
    return where


def password_works(module, user, password):
    client = new_client(module.params, user, password)
    try:
        client.execute("SELECT 1")
        return True
    except ServerException as exc:
        if exc.code == AUTHENTICATION_FAILED:
            return False
        raise
    finally:
        client.disconnect()


def reconcile_users(module, ex, users, check):
    changed = []
    for u in users:
        name, hashed = u["name"], hashlib.sha256(u["password"].encode("utf-8")).hexdigest()
        identified = f"IDENTIFIED WITH sha256_hash BY {quote(hashed)}"
        exists = ex.execute(f"SELECT count() FROM system.users WHERE name = {quote(name)}")[0][0] > 0
        todo = []
        if not exists:
            todo.append(f"CREATE USER IF NOT EXISTS {ident(name)} {identified}")
        elif not password_works(module, name, u["password"]):
            todo.append(f"ALTER USER {ident(name)} {identified}")
        granted = (
            {
                r[0]
                for r in ex.execute(f"SELECT granted_role_name FROM system.role_grants WHERE user_name = {quote(name)}")
            }
            if exists
            else set()
        )
        missing = [r for r in u["roles"] if r not in granted]
        if missing:
            todo.append(f"GRANT {', '.join(ident(r) for r in missing)} TO {ident(name)}")
        if u["roles"]:
            all_default = (
                ex.execute(f"SELECT default_roles_all FROM system.users WHERE name = {quote(name)}") if exists else []
            )
            if not exists or not all_default or not all_default[0][0]:
                todo.append(f"ALTER USER {ident(name)} DEFAULT ROLE ALL")
        if todo:
            changed.append(name)
            if not check:
                for sql in todo:
                    ex.execute(sql)
    return changed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            login_host=dict(type="str", default="localhost"),
            login_port=dict(type="int", default=9000),
            secure=dict(type="bool", default=False),
            ca_certs=dict(type="path"),
            server_hostname=dict(type="str"),
            login_user=dict(type="str", default="default"),
            login_password=dict(type="str", default="", no_log=True),
            connect_timeout=dict(type="int", default=10),
            table=dict(type="str", default="default.schema_migrations"),
            replicated=dict(type="bool", default=False),
            cluster=dict(type="str"),
            applied_by=dict(type="str", default="ansible"),
            users=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    password=dict(type="str", required=True, no_log=True),
                    roles=dict(type="list", elements="str", default=[]),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    if not HAS_DRIVER:
        module.fail_json(msg=missing_required_lib("clickhouse-driver (Debian: python3-clickhouse-driver)"),
                         exception=DRIVER_IMPORT_ERROR)  # fmt: skip
    p = module.params
    try:
        migrations = load_migrations(p["path"])
    except MigrationError as exc:
        module.fail_json(msg=str(exc))

    where = describe(p)
    try:
        client = new_client(p, p["login_user"], p["login_password"], send_receive_timeout=600)
    except OSError as exc:  # ssl.SSLError is one: the CA file is missing or not PEM
        module.fail_json(msg=f"cannot use the CA certificate ca_certs={p['ca_certs']} for ClickHouse at {where}: {exc}")
    try:
        client.execute("SELECT 1")
    except (DriverError, OSError) as exc:
        module.fail_json(msg=f"cannot connect to ClickHouse at {where}: {str(exc).strip().splitlines()[0]}")

    ex = DriverExecutor(client)
    runner = Runner(ex, table=p["table"], replicated=p["replicated"], cluster=p["cluster"])
    result = dict(changed=False, applied=[], already_applied=[], users_changed=[], superseded=[])
    try:
        if runner.table_exists():
            result["already_applied"] = sorted(runner.applied())
        result["applied"] = runner.apply(migrations, p["applied_by"], check=module.check_mode)
        result["superseded"] = [f"{name} ({form})" for name, form in runner.superseded]
        result["users_changed"] = reconcile_users(module, ex, p["users"], module.check_mode)
    except MigrationError as exc:
        module.fail_json(msg=str(exc), **result)
    except (DriverError, OSError) as exc:
        module.fail_json(msg=f"ClickHouse at {where}: {str(exc).strip().splitlines()[0]}", **result)
    finally:
        client.disconnect()
    result["changed"] = bool(result["applied"] or result["users_changed"])
    if result["applied"]:
        result["msg"] = ("would apply " if module.check_mode else "applied ") + ", ".join(result["applied"])
    else:
        result["msg"] = f"all {len(migrations)} migrations already applied"
    module.exit_json(**result)


if __name__ == "__main__":
    main()
