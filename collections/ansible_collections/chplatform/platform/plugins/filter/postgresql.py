# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq's environment (PGHOST, PGUSER, PGSSLMODE...) for pg_dump, pg_restore and psql run against a
database of the platform, with the TLS parameters of the platform contract (platform_postgresql_tls)."""

from __future__ import annotations

from typing import Any

DOCUMENTATION = r"""
name: libpq_env
short_description: libpq's environment variables for a connection to the platform's PostgreSQL
description:
  - Returns PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD and PGCONNECT_TIMEOUT, and each key of the
    TLS parameters (C(sslmode), C(sslrootcert)...) as its libpq variable (C(PGSSLMODE), C(PGSSLROOTCERT)...).
    Every value is a string. Holds the password; use it with no_log.
positional: _input
options:
  _input:
    description: The libpq TLS parameters (platform_postgresql_tls), e.g. sslmode and sslrootcert.
    type: dict
    required: true
  host:
    description: The server's address.
    type: str
    required: true
  port:
    description: The server's port.
    type: int
    required: true
  dbname:
    description: The database.
    type: str
    required: true
  user:
    description: The role to log in as.
    type: str
    required: true
  password:
    description: Its password.
    type: str
    required: true
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
"""


def libpq_env(
    tls: dict[str, Any] | None, host: str, port: Any, dbname: str, user: str, password: str, connect_timeout: Any = 10
) -> dict[str, str]:
    env = {
        "PGHOST": str(host),
        "PGPORT": str(port),
        "PGDATABASE": str(dbname),
        "PGUSER": str(user),
        "PGPASSWORD": str(password),
        "PGCONNECT_TIMEOUT": str(connect_timeout),
    }
    env.update({f"PG{str(key).upper()}": str(value) for key, value in (tls or {}).items()})
    return env


class FilterModule:
    def filters(self) -> dict:
        return {"libpq_env": libpq_env}
