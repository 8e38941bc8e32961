"""Backup names and retention for the clickhouse_backup DAGs (importable without Airflow).

The 'backups' disk is an s3_plain disk: each backup is the directory <prefix><name>/ of the
backups bucket, so the bucket's listing is the list of backups."""

from __future__ import annotations

import re
from datetime import datetime

# What the DAGs name their backups; anything else in the bucket is never expired.
_OWN = re.compile(r"^(full|incr)_\d{8}T\d{4}$")


def backup_name(kind: str, now: datetime) -> str:
    """full_20260101T0100 / incr_20260101T0215: sortable by time."""
    return f"{kind}_{now:%Y%m%dT%H%M}"


def names_from_prefixes(prefixes: list[str], prefix: str) -> list[str]:
    """Backup names from the bucket's common prefixes under ``prefix`` ("main/full_x/" -> "full_x")."""
    return sorted(p[len(prefix) :].strip("/") for p in prefixes if p.startswith(prefix) and p[len(prefix) :].strip("/"))


def expired_backups(names: list[str], keep_full: int) -> list[str]:
    """Backups to delete: those of the DAGs older than the keep_full-th newest full backup (whose
    incrementals stay with it). Names the DAGs do not make are left alone."""
    own = [n for n in names if _OWN.match(n)]
    fulls = sorted(n for n in own if n.startswith("full_"))
    if keep_full < 1 or len(fulls) <= keep_full:
        return []
    oldest_kept = fulls[-keep_full]
    return sorted((n for n in own if n[5:] < oldest_kept[5:]), key=lambda n: (n[5:], n))
