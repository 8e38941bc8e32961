"""The first task of every DAG: fail early, naming each missing connection or variable."""

from __future__ import annotations

from collections.abc import Iterable

from airflow.exceptions import AirflowFailException
from airflow.sdk import BaseHook, Variable


def missing_prerequisites(connections: Iterable[str], variables: Iterable[str]) -> list[str]:
    """Return 'connection X' / 'variable Y' for each one Airflow does not know."""
    missing = []
    for conn_id in connections:
        try:
            BaseHook.get_connection(conn_id)
        except Exception:  # not-found errors differ across Airflow versions
            missing.append(f"connection {conn_id}")
    for key in variables:
        try:
            Variable.get(key)
        except Exception:  # not-found errors differ across Airflow versions
            missing.append(f"variable {key}")
    return missing


def require(connections: Iterable[str] = (), variables: Iterable[str] = ()) -> None:
    """Raise a non-retryable failure naming every missing connection and variable."""
    missing = missing_prerequisites(list(connections), list(variables))
    if missing:
        raise AirflowFailException(
            "Missing Airflow prerequisites: "
            + ", ".join(missing)
            + " (managed by the airflow role: airflow_connections / airflow_variables)"
        )
