#!/usr/bin/env python3
"""Reconcile the admin user, Airflow connections and variables with a desired state.

Reads JSON from stdin: {"check": bool, "connections": [...], "variables": {...},
"admin": {"username", "password", "email", "firstname", "lastname"},
"clickhouse_dags": {"available": bool, "tag": str, "stamp": path}}. Compares with the metadata
database and changes only what differs: creates the admin user (Admin role) when absent, keeps its
password equal to the desired one; pauses the DAGs that need ClickHouse while no server runs
(reconcile_clickhouse_dags). Prints {"changed": [<what changed>]} (never a secret). One
Python start-up does all of it. Managed by Ansible.

`--migration-state STAMP` prints {"current": ..., "recorded": ...} instead: the installed
packages and the metadata database's alembic revisions, and what STAMP (JSON, written by the
role after a successful check or `airflow db migrate`) recorded, or null. It does not import
Airflow, so it costs a fraction of a second where `airflow db check-migrations` costs seconds.
"""

from __future__ import annotations

import json
import sys
from typing import Any

FIELDS = ("conn_type", "host", "schema", "login", "password", "port", "description")


def _desired_conn(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {f: item.get(f) or None for f in FIELDS}
    if out["port"] is not None:
        out["port"] = int(out["port"])
    extra = item.get("extra") or {}
    out["extra"] = extra
    return out


def _current_conn(conn: Any) -> dict[str, Any]:
    out: dict[str, Any] = {f: getattr(conn, f) or None for f in FIELDS}
    try:
        out["extra"] = json.loads(conn.extra) if conn.extra else {}
    except ValueError:
        out["extra"] = {"<unparsable>": True}
    return out


def reconcile_connections(session: Any, items: list[dict[str, Any]], check: bool) -> list[str]:
    from airflow.models import Connection

    changed = []
    for item in items:
        conn_id = item["conn_id"]
        conn = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
        if item.get("state", "present") == "absent":
            if conn is not None:
                changed.append(f"connection {conn_id} deleted")
                if not check:
                    session.delete(conn)
            continue
        want = _desired_conn(item)
        if conn is not None and _current_conn(conn) == want:
            continue
        diff = (
            "created"
            if conn is None
            else "updated (" + ", ".join(k for k, v in _current_conn(conn).items() if want[k] != v) + ")"
        )
        changed.append(f"connection {conn_id} {diff}")
        if check:
            continue
        if conn is None:
            conn = Connection(conn_id=conn_id)
            session.add(conn)
        for field in FIELDS:
            if field == "password":
                conn.set_password(want["password"])
            else:
                setattr(conn, field, want[field])
        conn.set_extra(json.dumps(want["extra"], sort_keys=True) if want["extra"] else None)
    return changed


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def reconcile_variables(session: Any, items: dict[str, Any], check: bool) -> list[str]:
    from airflow.models import Variable

    changed = []
    for key, value in sorted(items.items()):
        var = session.query(Variable).filter(Variable.key == key).one_or_none()
        if value is None:
            if var is not None:
                changed.append(f"variable {key} deleted")
                if not check:
                    session.delete(var)
            continue
        text = _as_text(value)
        if var is not None and var.val == text:
            continue
        changed.append(f"variable {key} {'created' if var is None else 'updated'}")
        if check:
            continue
        if var is None:
            session.add(Variable(key=key, val=text))
        else:
            var.set_val(text)
    return changed


def _create_admin(admin: dict[str, Any]) -> None:
    """Create the FAB user with the Admin role, as `airflow users create` does (in this process:
    the password never appears on a command line)."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
    from airflow.utils.providers_configuration_loader import providers_configuration_loaded

    @providers_configuration_loaded
    def create() -> None:
        with get_application_builder() as appbuilder:
            role = appbuilder.sm.find_role("Admin")
            if role is None:
                raise SystemExit("the FAB role Admin does not exist: has the API server started once?")
            user = appbuilder.sm.add_user(
                admin["username"],
                admin.get("firstname") or admin["username"],
                admin.get("lastname") or admin["username"],
                admin.get("email") or f"{admin['username']}@example.invalid",
                role,
                admin["password"],
            )
            if not user:
                raise SystemExit(f"could not create the user {admin['username']}")

    create()


def reconcile_admin(session: Any, admin: dict[str, Any], check: bool) -> list[str]:
    from sqlalchemy import text
    from werkzeug.security import check_password_hash, generate_password_hash

    row = session.execute(
        text("SELECT password FROM ab_user WHERE username = :u"), {"u": admin["username"]}
    ).one_or_none()
    if row is None:
        if not check:
            _create_admin(admin)
        return [f"user {admin['username']} created"]
    if row[0] and check_password_hash(row[0], admin["password"]):
        return []
    if not check:
        session.execute(
            text("UPDATE ab_user SET password = :p WHERE username = :u"),
            {"p": generate_password_hash(admin["password"]), "u": admin["username"]},
        )
    return [f"user {admin['username']} password updated"]


def reconcile_clickhouse_dags(session: Any, want: dict[str, Any], check: bool) -> list[str]:
    """The DAGs tagged ``want["tag"]`` need a ClickHouse server. Without one (``available`` false),
    pause those that are not, and leave the stamp file ``want["stamp"]`` saying so (DAGs parsed
    later are created paused by their own defaults). With one, and the stamp present: unpause the
    tagged DAGs that are paused (the platform paused them) and remove the stamp. Pauses an
    operator makes while a server runs are never touched."""
    import os

    from airflow.models import DagModel, DagTag

    dags = session.query(DagModel).filter(DagModel.tags.any(DagTag.name == want["tag"])).order_by(DagModel.dag_id).all()
    stamp = want["stamp"]
    changed = []
    if not want["available"]:
        for dag in dags:
            if not dag.is_paused:
                changed.append(f"DAG {dag.dag_id} paused: no ClickHouse server")
                if not check:
                    dag.is_paused = True
        if not os.path.exists(stamp):
            changed.append("recorded that the platform pauses the ClickHouse DAGs")
            if not check:
                with open(stamp, "w", encoding="utf-8") as f:
                    f.write(f"The platform paused the DAGs tagged {want['tag']}: no ClickHouse server runs.\n")
        return changed
    if os.path.exists(stamp):
        for dag in dags:
            if dag.is_paused:
                changed.append(f"DAG {dag.dag_id} unpaused: ClickHouse is available")
                if not check:
                    dag.is_paused = False
        changed.append("the ClickHouse DAGs are no longer paused by the platform")
        if not check:
            session.flush()
            os.unlink(stamp)
    return changed


def migration_state(stamp: str) -> dict[str, Any]:
    """The installed packages and the database's alembic revisions (every alembic_version* table:
    Airflow's and the FAB provider's), next to what the stamp recorded."""
    import hashlib
    import os
    from importlib.metadata import distributions, version

    from sqlalchemy import column, create_engine, inspect, select, table

    packages = sorted(f"{d.metadata['Name']}=={d.version}".lower() for d in distributions())
    uri = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if not uri:
        raise SystemExit("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is not set: run through airflow-cli")
    engine = create_engine(uri)
    revisions: dict[str, list[str]] = {}
    try:
        with engine.connect() as conn:
            for name in sorted(inspect(conn).get_table_names()):
                if name.startswith("alembic_version"):
                    rows = conn.execute(select(column("version_num")).select_from(table(name)))
                    revisions[name] = sorted(r[0] for r in rows)
    finally:
        engine.dispose()
    current = {
        "airflow_version": version("apache-airflow-core"),
        "packages_sha256": hashlib.sha256("\n".join(packages).encode()).hexdigest(),
        "revisions": revisions,
    }
    try:
        with open(stamp, encoding="utf-8") as f:
            recorded = json.load(f)
    except (FileNotFoundError, ValueError):
        recorded = None
    return {"current": current, "recorded": recorded}


def main() -> int:
    if sys.argv[1:2] == ["--migration-state"]:
        print(json.dumps(migration_state(sys.argv[2]), sort_keys=True))
        return 0
    desired = json.load(sys.stdin)
    check = bool(desired.get("check"))
    from airflow import settings
    from airflow.utils.session import create_session

    if settings.Session is None:
        settings.configure_orm()
    changed: list[str] = []
    with create_session() as session:
        changed += reconcile_connections(session, desired.get("connections", []), check)
        changed += reconcile_variables(session, desired.get("variables", {}), check)
        if desired.get("clickhouse_dags"):
            changed += reconcile_clickhouse_dags(session, desired["clickhouse_dags"], check)
        if check:
            session.rollback()
    # The admin after the connections and variables are committed: creating it uses FAB's own session.
    if desired.get("admin"):
        with create_session() as session:
            changed += reconcile_admin(session, desired["admin"], check)
            if check:
                session.rollback()
    # Last line of the output: Airflow may log to stdout before it.
    print("\n" + json.dumps({"changed": changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
