# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the host firewall (role firewall): its rules, and whether a source may connect."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.chplatform.platform.plugins.plugin_utils.firewall import (
    FirewallError,
    allows,
    host_rules,
    networks,
)

DOCUMENTATION = r"""
name: firewall_rules
short_description: The accept rules of one host's firewall
description:
  - From the ports the host listens on (C(chplatform.platform.validate_inventory) with O(ports=true)
    returns them per host as C(listeners)), the groups that connect to each port variable
    (C(firewall_clients)), the inventory's groups and each host's address, and the admin range.
  - Returns one rule per port, SSH first, each with its IPv4 and IPv6 source ranges.
positional: _input, clients, groups, addresses, admin_sources, ssh_port
options:
  _input:
    description: The host's listeners, [{port, component, variable}].
    type: list
    required: true
  clients:
    description: Port variable -> groups that connect to it (C(admin) = the admin sources).
    type: dict
    required: true
  groups:
    description: The inventory's groups (C(groups)).
    type: dict
    required: true
  addresses:
    description: Inventory host -> the address the other hosts see it from.
    type: dict
    required: true
  admin_sources:
    description: The operators' addresses and ranges.
    type: list
    required: true
  ssh_port:
    description: The port sshd listens on.
    type: int
    default: 22
"""


def firewall_rules(listeners, clients, groups, addresses, admin_sources, ssh_port=22):
    try:
        return host_rules(list(listeners or []), dict(clients or {}), groups, addresses, admin_sources, ssh_port)
    except FirewallError as exc:
        raise AnsibleFilterError(str(exc)) from None


def firewall_allows(address, sources):
    """Whether an address is inside one of the sources (addresses or CIDR ranges)."""
    try:
        return allows(str(address), networks(sources))
    except (FirewallError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"firewall_rules": firewall_rules, "firewall_allows": firewall_allows}
