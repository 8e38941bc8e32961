# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The address each inventory host is seen from by the others, written once."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: host_addresses
short_description: The address each host is seen from by the other hosts
description:
  - C(common_private_address) where the inventory sets it, else the address of the host's default
    IPv4 route from its facts; an empty string for a host whose facts are not known.
positional: _input, hosts, strict
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The inventory hosts to look up.
    type: list
    elements: str
    required: true
  strict:
    description: Fail, naming the host and the fix, when a host's address is not known.
    type: bool
    default: false
"""


def host_address(hostvars, host) -> str:
    variables = hostvars[host]
    if variables.get("common_private_address"):
        return str(variables["common_private_address"])
    facts = variables.get("ansible_facts") or {}
    return str((facts.get("default_ipv4") or {}).get("address") or "")


def host_addresses(hostvars, hosts, strict=False) -> dict[str, str]:
    addresses = {str(host): host_address(hostvars, host) for host in hosts}
    missing = [host for host, address in addresses.items() if not address]
    if strict and missing:
        raise AnsibleFilterError(
            f"no address known for {', '.join(missing)}: gather their facts in this run (or set common_private_address)"
        )
    return addresses


class FilterModule:
    def filters(self):
        return {"host_addresses": host_addresses}
