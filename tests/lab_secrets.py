"""The lab's generated secrets on the controller (~/.local/share/chplatform/lab/secrets, or
$CHPLATFORM_LAB_STATE/secrets), for tests that must log in or look for leaks. Molecule verify tests
import it as tests.lab_secrets (pyproject's pytest pythonpath holds the repository root)."""

from __future__ import annotations

import os
from pathlib import Path

STATE = Path(os.environ.get("CHPLATFORM_LAB_STATE", "~/.local/share/chplatform/lab")).expanduser()
SECRETS = STATE / "secrets"
# The lab's CA and its hosts' certificates (roles/pki, pki_dir of inventories/lab).
PKI = STATE / "pki"


def lab_secret(name: str) -> str:
    """The value of one secret (the password lookup's file holds it as its first word)."""
    return (SECRETS / name).read_text().split()[0]


def lab_secret_values(min_length: int = 12) -> dict[str, str]:
    """Every secret (file name → value) at least ``min_length`` long: short ones could match by chance."""
    values = {}
    for path in sorted(SECRETS.glob("*")):
        words = path.read_text().split() if path.is_file() else []
        if words and len(words[0]) >= min_length:
            values[path.name] = words[0]
    return values


def lab_ca() -> Path:
    """The lab CA's certificate on the controller."""
    return PKI / "ca.crt"


def lab_host_certificate(host: str) -> Path:
    """A lab host's certificate on the controller, as the pki role issued it."""
    return PKI / "hosts" / f"{host}.crt"
