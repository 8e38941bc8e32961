#!/usr/bin/env python3
"""Reconcile Airflow connections, variables and the admin password with a desired state.

Reads JSON from stdin: {"check": bool, "connections": [...], "variables": {...},
"admin": {"username": str, "password": str}}. Compares with the metadata database and changes
only what differs. Prints {"changed": [<what changed>]} (never a secret). Managed by Ansible.
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


def reconcile_admin(session: Any, admin: dict[str, Any], check: bool) -> list[str]:
    from sqlalchemy import text
    from werkzeug.security import check_password_hash, generate_password_hash

    row = session.execute(
        text("SELECT password FROM ab_user WHERE username = :u"), {"u": admin["username"]}
    ).one_or_none()
    if row is None:
        return [f"user {admin['username']} missing"]
    if row[0] and check_password_hash(row[0], admin["password"]):
        return []
    if not check:
        session.execute(
            text("UPDATE ab_user SET password = :p WHERE username = :u"),
            {"p": generate_password_hash(admin["password"]), "u": admin["username"]},
        )
    return [f"user {admin['username']} password updated"]


def user_exists(username: str) -> bool:
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        return session.execute(text("SELECT 1 FROM ab_user WHERE username = :u"), {"u": username}).first() is not None


def main() -> int:
    if sys.argv[1:2] == ["--user-exists"]:
        # Last line of the output: Airflow may log to stdout before it.
        print("\n" + ("present" if user_exists(sys.argv[2]) else "absent"))
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
        if desired.get("admin"):
            changed += reconcile_admin(session, desired["admin"], check)
        if check:
            session.rollback()
    # Last line of the output: Airflow may log to stdout before it.
    print("\n" + json.dumps({"changed": changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
