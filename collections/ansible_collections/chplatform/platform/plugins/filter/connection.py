# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn an SSH or privilege-escalation failure into one line that names the fix (preflight play)."""

from __future__ import annotations

import re

UNREACHABLE = r"(Connection refused|Connection timed out|No route to host|Could not resolve hostname[^\n]*)"

DOCUMENTATION = r"""
name: connection_fix
short_description: One line naming the fix for a failed SSH login or sudo
description:
  - Reads the message of an unreachable host or of a failed privilege escalation and returns one
    line that says what is wrong and what to do (host key changed, private key too open, key not
    authorized, no passwordless sudo, host not reachable).
positional: _input, host, user
options:
  _input:
    description: The failure message (the result's C(msg)).
    type: str
    required: true
  host:
    description: The inventory name of the host.
    type: str
    required: true
  user:
    description: The remote user.
    type: str
    default: ""
"""


def connection_fix(message: object, host: str, user: str = "") -> str:
    text = str(message or "")
    who = user or "the remote user"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key verification failed" in text:
        known = re.search(r"Offending \S+ key in (\S+?):\d+", text) or re.search(r"known hosts? file[ s]+(\S+)", text)
        where = f" -f {known.group(1)}" if known else ""
        return (
            f"{host}: its SSH host key is not the one recorded in known_hosts — if the host was rebuilt, remove "
            f"the old key (ssh-keygen -R {host}{where}) and record the new one; if not, stop: the connection "
            "may be intercepted"
        )
    bad_key = re.search(r"Permissions (\d+) for '([^']+)' are too open", text)
    if bad_key or "UNPROTECTED PRIVATE KEY FILE" in text:
        key = bad_key.group(2) if bad_key else "the private key"
        mode = f" (mode {bad_key.group(1)})" if bad_key else ""
        return f"{host}: SSH refuses {key}{mode}, readable by others — chmod 600 {key}"
    if "Permission denied (publickey" in text:
        return f"{host}: the SSH key is not authorized for {who} — add its public key to ~{who}/.ssh/authorized_keys"
    if re.search(r"(?i)missing sudo password|a password is required|incorrect sudo password|not in the sudoers", text):
        return (
            f"{host}: {who} cannot become root without a password — give it passwordless sudo "
            f"(/etc/sudoers.d/{who}: '{who} ALL=(ALL) NOPASSWD:ALL') or run with --ask-become-pass"
        )
    reach = re.search(
        r"(Connection refused|Connection timed out|No route to host|Could not resolve hostname[^\n]*)", text
    )
    if reach:
        return f"{host}: SSH cannot reach it ({reach.group(1)}) — check ansible_host / ansible_port and that sshd runs"
    first = text.strip().splitlines()[0] if text.strip() else "unknown failure"
    return f"{host}: {first}"


class FilterModule:
    def filters(self) -> dict:
        return {"connection_fix": connection_fix}
