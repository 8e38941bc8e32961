# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host firewall of the platform, written once: which sources may reach which port of a host.

The ports a host listens on come from the same resolution as validation's port check
(``inventory_checks.check_ports``: the component, the port and the variable that sets it); which
groups may connect to each port variable comes from ``firewall_clients`` (role firewall). Both the
inventory checks (before any host is touched) and the role's filter (which renders
``/etc/nftables.conf``) call :func:`host_rules`, so a rule set the checks accept is the one applied.
"""

from __future__ import annotations

import ipaddress
from typing import Any

# The name in firewall_clients that stands for firewall_admin_sources (the operators' range).
ADMIN = "admin"


class FirewallError(ValueError):
    """An input the rules cannot be built from; the message names the fix."""


def networks(sources: Any, name: str = "firewall_admin_sources") -> list[str]:
    """Addresses and CIDR ranges, normalised (10.0.0.7 -> 10.0.0.7/32), in the given order."""
    if not isinstance(sources, (list, tuple)):
        raise FirewallError(f"{name} must be a list of addresses or CIDR ranges, e.g. ['10.20.0.0/24']")
    out = []
    for source in sources:
        try:
            out.append(str(ipaddress.ip_network(str(source).strip(), strict=False)))
        except ValueError:
            raise FirewallError(
                f"{name} has {source!r}, which is neither an address nor a CIDR range: write it as 10.20.0.5 or "
                "10.20.0.0/24"
            ) from None
    return out


def allows(address: str, sources: list[str]) -> bool:
    """Whether ``address`` is inside one of ``sources`` (addresses or ranges)."""
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(s, strict=False) for s in sources)


def host_rules(
    listeners: list[dict[str, Any]],
    clients: dict[str, list[str]],
    groups: dict[str, list[str]],
    addresses: dict[str, str],
    admin_sources: list[str],
    ssh_port: int = 22,
) -> list[dict[str, Any]]:
    """The accept rules of one host: SSH from the admin sources, then each port it listens on from
    the hosts of the groups that use it (and the admin sources where ``admin`` is listed).

    ``listeners``: [{port, component, variable}] of the host (one port may have several);
    ``addresses``: inventory host -> the address the others see it from.
    Returns [{port, variables, clients, ipv4, ipv6}] sorted by port; sources are CIDRs."""
    admin = networks(admin_sources)
    if not admin:
        raise FirewallError(
            "firewall_admin_sources is empty: SSH would be open to no one — set it to the range the "
            "operators and the controller come from, or set firewall_enabled: false"
        )
    by_port: dict[int, dict[str, Any]] = {}
    for item in listeners:
        variable = str(item["variable"])
        if variable not in clients:
            raise FirewallError(
                f"{item['component']} listens on {variable} ({item['port']}), which firewall_clients does not "
                f"name: add `{variable}: [<the groups that connect to it>]` (or [admin])"
            )
        rule = by_port.setdefault(int(item["port"]), {"variables": [], "clients": []})
        rule["variables"].append(f"{item['component']} ({variable})")
        rule["clients"] += [c for c in clients[variable] or [] if c not in rule["clients"]]
    rules = [{"port": int(ssh_port), "variables": ["sshd (ansible_port)"], "clients": [ADMIN]}]
    rules += [{"port": port, **rule} for port, rule in sorted(by_port.items()) if port != int(ssh_port)]
    for rule in rules:
        sources: list[str] = []
        for client in rule["clients"]:
            if client == ADMIN:
                found = admin
            else:
                found = []
                for host in groups.get(client, []):
                    if host not in addresses or not addresses[host]:
                        raise FirewallError(f"no address known for {host} (group {client}): gather its facts first")
                    found.append(str(ipaddress.ip_network(addresses[host], strict=False)))
            sources += [s for s in found if s not in sources]
        # nft refuses overlapping intervals in one set: a host inside the admin range is merged into it.
        nets = [ipaddress.ip_network(s) for s in sources]
        rule["ipv4"] = [str(n) for n in ipaddress.collapse_addresses(n for n in nets if n.version == 4)]
        rule["ipv6"] = [str(n) for n in ipaddress.collapse_addresses(n for n in nets if n.version == 6)]
    return rules


def unknown_clients(clients: Any, known_groups: set[str]) -> list[tuple[str, str]]:
    """(variable, name) pairs of firewall_clients that are neither a known group nor ``admin``."""
    if not isinstance(clients, dict):
        raise FirewallError("firewall_clients must map each port variable to the groups that connect to it")
    return [
        (variable, str(name))
        for variable, names in clients.items()
        for name in (names if isinstance(names, list) else [names])
        if str(name) != ADMIN and str(name) not in known_groups
    ]
