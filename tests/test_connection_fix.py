"""The preflight play's one-line fixes for SSH and sudo failures (filter chplatform.platform.connection_fix),
from the messages OpenSSH, Ansible and sudo really print."""

from __future__ import annotations

import pytest
from ansible_collections.chplatform.platform.plugins.filter.connection import connection_fix

CHANGED_KEY = """@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
Offending ED25519 key in /home/op/.ssh/known_hosts:5
Host key verification failed."""
LOOSE_KEY = """@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
Permissions 0644 for '/home/op/.ssh/id_ed25519' are too open.
deploy@pg01: Permission denied (publickey)."""


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (CHANGED_KEY, "pg01: its SSH host key is not the one recorded in known_hosts"),
        ("Host key verification failed.", "ssh-keygen -R pg01"),
        (
            LOOSE_KEY,
            "pg01: SSH refuses /home/op/.ssh/id_ed25519 (mode 0644), readable by others"
            " — chmod 600 /home/op/.ssh/id_ed25519",
        ),
        (
            "deploy@pg01: Permission denied (publickey).",
            "not authorized for deploy — add its public key to ~deploy/.ssh/authorized_keys",
        ),
        ("Task failed: Missing sudo password", "pg01: deploy cannot become root without a password"),
        ("sudo: a password is required", "NOPASSWD:ALL"),
        ("ssh: connect to host 127.0.0.1 port 2 Connection refused", "pg01: SSH cannot reach it (Connection refused)"),
        ("something else entirely\nsecond line", "pg01: something else entirely"),
    ],
)
def test_each_failure_becomes_one_line_with_its_fix(message, expected):
    line = connection_fix(message, "pg01", "deploy")
    assert expected in line
    assert "\n" not in line
