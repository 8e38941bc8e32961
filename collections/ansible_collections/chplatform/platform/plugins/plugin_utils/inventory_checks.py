# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every check of the platform's inventory, written once.

``playbooks/validate.yml`` runs all of them on the controller before any host is contacted; each
role's ``tasks/assert.yml`` runs its own component's checks for standalone use. Both call the
``chplatform.platform.validate_inventory`` action, which plugs an :class:`View` over Ansible's
variables into :func:`run_checks`; the tests plug in plain dictionaries.

A check returns :class:`Problem` objects, one line each: the variable, where it is set (a host
or a group), its value (secrets are never shown, only their length) and the fix. Checks never
stop at the first problem: an inventory with five mistakes gets five lines in one run.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from ansible_collections.chplatform.platform.plugins.module_utils.minio_common import bucket_name_problem
from ansible_collections.chplatform.platform.plugins.plugin_utils.firewall import (
    ADMIN,
    FirewallError,
    networks,
    unknown_clients,
)

# Component -> (inventory pattern of its hosts, role that configures it). The playbooks under
# playbooks/ use the same patterns (tests/test_validate.py checks they agree).
COMPONENTS: dict[str, tuple[str, str]] = {
    "common": ("all", "common"),
    "postgresql": ("postgres", "postgresql"),
    "minio": ("minio", "minio"),
    "kafka": ("kafka", "kafka"),
    "clickhouse_keeper": ("clickhouse_keeper:!clickhouse", "clickhouse_keeper"),
    "clickhouse": ("clickhouse", "clickhouse"),
    "clickhouse_schema": ("clickhouse", "clickhouse_schema"),
    "airflow": ("airflow", "airflow"),
    "superset": ("superset", "superset"),
    "monitoring": ("monitoring", "prometheus"),
    "firewall": ("all", "firewall"),
}
# The groups a platform needs, each with at least one host.
REQUIRED_GROUPS = ("clickhouse", "clickhouse_keeper", "postgres", "kafka", "minio", "airflow", "superset")

# Variables whose value is never shown (only its length).
SECRET_NAME = re.compile(r"(password|secret|token|fernet|_key$|^vault_)", re.IGNORECASE)
PLACEHOLDERS = ("", "CHANGE-ME")


class Unresolvable(Exception):
    """A variable's template cannot be rendered; ``missing`` names the undefined variable if known."""

    def __init__(self, message: str, missing: str | None = None, needs_facts: bool = False) -> None:
        super().__init__(message)
        self.missing = missing
        self.needs_facts = needs_facts


class Deferred(str):
    """A value that cannot be known here: it depends on the hosts' facts (known once they are
    gathered), or its template failed (reported once, by itself). Truthy, never a number; checks
    treat it as 'set, unknown', so that one cause gives one line."""

    def __new__(cls) -> Deferred:
        return super().__new__(cls, "(unknown here)")


class NotDefined(Exception):
    """The variable is not defined at all (no role default, no inventory value)."""


class View(Protocol):
    """What the checks need from Ansible: the groups, and each host's variables as a role sees them."""

    groups: dict[str, list[str]]

    def get(self, host: str, name: str, role: str) -> Any:
        """The templated value of ``name`` on ``host`` for ``role`` (its defaults and vars included).
        Raises NotDefined or Unresolvable."""

    def is_defined(self, host: str, name: str, role: str) -> bool:
        """Whether ``name`` has any value on ``host`` (raw, untemplated)."""

    def role_file(self, role: str, relpath: str) -> str | None:
        """Path of a file of a role (e.g. meta/argument_specs.yml), None if absent."""

    def load_yaml(self, path: str) -> Any:
        """Parse a YAML file of the controller."""

    def path_exists(self, path: str) -> bool:
        """Whether a path exists on the controller."""

    # Optional (views without it have no recorded state): local_fact(host, name) -> dict | None, a
    # local fact of the host (ansible_local.<name>) when its facts were gathered or are cached.


@dataclass(frozen=True)
class Problem:
    variable: str
    where: str
    value: str
    fix: str

    def line(self) -> str:
        return f"{self.variable} on {self.where} is {self.value}: {self.fix}"


def show(name: str, value: Any) -> str:
    """A value as the report shows it: secrets by their length only."""
    if SECRET_NAME.search(name):
        if value is None:
            return "empty"
        return f"a secret of {len(str(value))} characters" if str(value) else "empty"
    if isinstance(value, str):
        return repr(value)
    return str(value) if not isinstance(value, (list, dict)) else repr(_redact(value))


def _redact(value: Any) -> Any:
    """A list or mapping with every secret inside it (by its key's name) replaced by its length."""
    if isinstance(value, dict):
        return {
            k: (f"<secret of {len(str(v))} characters>" if SECRET_NAME.search(str(k)) else _redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


@dataclass
class Context:
    """A check's access to the inventory: resolving errors become problems, never exceptions."""

    view: View
    problems: list[Problem] = field(default_factory=list)
    # Checks that could not run before facts are gathered: (variable, host).
    deferred: list[tuple[str, str]] = field(default_factory=list)
    _reported: set[tuple[str, str]] = field(default_factory=set)
    # The contract's raw defaults (roles/platform/defaults/main.yml), read on first use.
    contract: dict[str, Any] | None = None
    # The ports each host's services ask for: {host: {port: ["component (variable)"]}} (check_ports).
    ports: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    # The same, structured for the firewall: {host: [{port, component, variable}]} (check_ports).
    listeners: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def hosts(self, pattern: str) -> list[str]:
        """Hosts of a group; 'a:!b' means hosts of a that are not in b; 'all' every host."""
        groups = self.view.groups
        if pattern == "all":
            return sorted(
                {h for g, hs in groups.items() if g not in ("all", "ungrouped") for h in hs}
                | set(groups.get("ungrouped", []))
            )
        include, _, exclude = pattern.partition(":!")
        excluded = set(groups.get(exclude, [])) if exclude else set()
        return [h for h in groups.get(include, []) if h not in excluded]

    def add(self, variable: str, where: str, value: Any, fix: str, shown: str | None = None) -> None:
        self.problems.append(Problem(variable, where, shown if shown is not None else show(variable, value), fix))

    def var(self, host: str, name: str, role: str, default: Any = None) -> Any:
        """The value of a variable, or ``default`` when it is undefined or cannot be resolved
        (an unresolvable value is reported once, naming what is missing)."""
        try:
            return self.view.get(host, name, role)
        except NotDefined:
            return default
        except Unresolvable as exc:
            self._unresolvable(host, name, exc)
            return Deferred()

    def items(self, host: str, name: str, role: str) -> list:
        """A list variable's items ([] when it is undefined, unknown here or not a list)."""
        value = self.var(host, name, role)
        return list(value) if isinstance(value, list) else []

    def _unresolvable(self, host: str, name: str, exc: Unresolvable) -> None:
        if exc.needs_facts:
            self.deferred.append((name, host))
            return
        key = (exc.missing or name, host if not (exc.missing or "").startswith("vault_") else "*")
        if key in self._reported:
            return
        self._reported.add(key)
        if exc.missing and exc.missing.startswith("vault_"):
            self.add(
                exc.missing,
                "the inventory",
                None,
                f"it is not defined, and {name} needs it — add it to group_vars/all/vault.yml "
                "(ansible-vault edit …; see inventories/production.example)",
                shown="undefined",
            )
        elif exc.missing:
            self.add(
                name,
                host,
                None,
                f"it refers to {exc.missing}, which is not defined — define {exc.missing} or set {name} directly",
                shown="unresolvable",
            )
        else:
            self.add(
                name, host, None, f"its template does not render ({exc}) — fix the expression", shown="unresolvable"
            )


# ------------------------------------------------------------------------------------------------
# helpers


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return int(value)
    return None


def _group_host(ctx: Context, component: str) -> str | None:
    hosts = ctx.hosts(COMPONENTS[component][0])
    return hosts[0] if hosts else None


def _port_of_address(address: Any) -> int | None:
    if not isinstance(address, str):
        return None
    return _int(address.rpartition(":")[2])


VAULT_MAPPING = re.compile(r"^\{\{\s*(vault_[A-Za-z0-9_]+)\s*\}\}$")


def vault_source(ctx: Context, name: str) -> str | None:
    """The vault_* secret the platform contract maps to ``name`` (None if it maps none)."""
    if ctx.contract is None:
        path = ctx.view.role_file("platform", "defaults/main.yml")
        ctx.contract = (ctx.view.load_yaml(path) or {}) if path else {}
    found = VAULT_MAPPING.match(str(ctx.contract.get(name, "")).strip())
    return found.group(1) if found else None


def secret_fix(ctx: Context, name: str, requirement: str = "") -> str:
    """The fix for an empty or bad secret: name the vault_* secret that feeds it."""
    source = vault_source(ctx, name)
    need = f" ({requirement})" if requirement else ""
    if source:
        return f"set {source}{need} in group_vars/all/vault.yml (the platform contract maps it to {name})"
    return f"set it{need}"


# ------------------------------------------------------------------------------------------------
# inventory-wide checks


def check_groups(ctx: Context) -> None:
    for group in REQUIRED_GROUPS:
        if not ctx.view.groups.get(group):
            ctx.add(
                f"group {group}",
                "the inventory",
                None,
                f"the platform needs at least one host in group {group} — add one to your hosts.yml "
                "(see inventories/production.example/hosts.yml)",
                shown="empty" if group in ctx.view.groups else "missing",
            )


def check_secrets(ctx: Context) -> None:
    """Every vault_* secret the platform needs is defined (not deleted), non-empty, not a placeholder."""
    hosts = ctx.hosts("all")
    if not hosts:
        return
    host = hosts[0]
    names = ctx.items(host, "platform_secrets", "common")
    for name in names:
        if not ctx.view.is_defined(host, name, "common"):
            ctx._reported.add((name, "*"))
            ctx.add(
                name,
                "the inventory",
                None,
                "it is not defined (deleted?) — add it to group_vars/all/vault.yml (ansible-vault edit …)",
                shown="undefined",
            )
            continue
        value = ctx.var(host, name, "common")
        if value is None or str(value) in PLACEHOLDERS:
            ctx.add(
                name,
                "the inventory",
                value,
                "it is empty or still the example placeholder — set it in group_vars/all/vault.yml",
                shown="empty" if not value else "the placeholder CHANGE-ME",
            )


def check_contract(ctx: Context, contract_names: list[str]) -> None:
    """A contract value must be the same on every host: the server and its clients read it."""
    hosts = ctx.hosts("all")
    for name in contract_names:
        if name == "platform_secrets" or SECRET_NAME.search(name):
            continue
        values: dict[str, list[str]] = {}
        for host in hosts:
            value = ctx.var(host, name, "common")
            values.setdefault(repr(value), []).append(host)
        if len(values) > 1:
            (common_value, _), *others = sorted(values.items(), key=lambda kv: -len(kv[1]))
            for value, where in others:
                ctx.add(
                    name,
                    ", ".join(where),
                    None,
                    f"other hosts use {common_value}; it is part of the platform contract, which every component "
                    "must agree on — set it once in group_vars/all, not per group or host",
                    shown=value,
                )


# Ports each component listens on: (variable, condition variable that must be truthy or None).
PORTS: dict[str, list[tuple[str, str | None]]] = {
    "clickhouse": [
        ("clickhouse_https_port", None),
        ("clickhouse_tcp_port_secure", None),
        ("clickhouse_interserver_https_port", None),
        ("clickhouse_http_port", "clickhouse_plaintext_ports"),
        ("clickhouse_tcp_port", "clickhouse_plaintext_ports"),
        ("clickhouse_interserver_http_port", "clickhouse_plaintext_ports"),
        ("clickhouse_prometheus_port", None),
    ],
    "clickhouse_keeper": [
        ("clickhouse_keeper_tcp_port_secure", None),
        ("clickhouse_keeper_tcp_port", "clickhouse_plaintext_ports"),
        ("clickhouse_keeper_raft_port", None),
    ],
    "kafka": [
        ("kafka_port", None),
        ("kafka_controller_port", None),
        ("kafka_broker_port", None),
        ("kafka_external_listener_port", None),
    ],
    "postgresql": [("postgresql_port", None)],
    "minio": [("minio_api_address", None), ("minio_console_address", None)],
    "airflow": [
        ("airflow_api_port", None),
        ("airflow_worker_log_server_port", None),
        ("airflow_trigger_log_server_port", None),
        ("airflow_scheduler_health_check_port", None),
        ("airflow_fixture_api_port", "airflow_fixture_api_enabled"),
        # nginx in front of the UI (roles/web_proxy); the app's own port above stays on loopback.
        ("web_https_port", "platform_web_tls"),
        ("web_http_port", "platform_web_tls"),
    ],
    "superset": [
        ("superset_port", None),
        ("web_https_port", "platform_web_tls"),
        ("web_http_port", "platform_web_tls"),
    ],
    "monitoring": [
        ("prometheus_port", None),
        ("alertmanager_port", None),
        ("blackbox_exporter_port", None),
        ("kafka_lag_exporter_port", None),
    ],
}
# The exporters Prometheus scrapes on the hosts of another component (variable, condition), and on
# every host (node).
EXPORTER_PORTS: dict[str, list[tuple[str, str | None]]] = {
    "common": [("node_exporter_port", "common_node_exporter")],
    "postgresql": [("postgres_exporter_port", "postgresql_exporter_enabled")],
    "kafka": [("kafka_jmx_exporter_port", "kafka_jmx_exporter_enabled")],
    "clickhouse_keeper": [("clickhouse_prometheus_port", None)],
    "airflow": [("statsd_exporter_port", "airflow_statsd_enabled")],
}


def check_ports(ctx: Context) -> None:
    """Two services on one host must not ask for the same port."""
    wanted: dict[str, dict[int, list[str]]] = {}
    ctx.listeners = {}
    keepers = set(ctx.view.groups.get("clickhouse_keeper", []))
    for component, ports, exporters in [
        *((c, p, False) for c, p in PORTS.items()),
        *((c, p, True) for c, p in EXPORTER_PORTS.items()),
    ]:
        # Keeper's own ports on every Keeper host; its metrics port only where no ClickHouse server
        # serves it (EXPORTER_PORTS use the component's own pattern: standalone Keeper nodes).
        pattern = (
            "clickhouse_keeper" if component == "clickhouse_keeper" and not exporters else COMPONENTS[component][0]
        )
        role = "clickhouse" if component == "clickhouse_keeper" else COMPONENTS[component][1]
        for host in ctx.hosts(pattern):
            if component == "clickhouse_keeper" and host not in keepers:
                continue
            for name, condition in ports:
                if condition and not ctx.var(host, condition, role, default=True):
                    continue
                value = ctx.var(host, name, role)
                port = _port_of_address(value) if name.endswith("_address") else _int(value)
                if port:
                    wanted.setdefault(host, {}).setdefault(port, []).append(f"{component} ({name})")
                    ctx.listeners.setdefault(host, []).append({"port": port, "component": component, "variable": name})
    ctx.ports = wanted
    for host, ports in wanted.items():
        for port, users in sorted(ports.items()):
            if len(users) > 1:
                ctx.add(
                    f"port {port}",
                    host,
                    None,
                    f"wanted by {' and '.join(users)} — put the services on different hosts or change one "
                    "port (contract ports in group_vars/all)",
                    shown="taken twice",
                )


# Variables that name another host: (component whose role resolves it, variable).
HOST_REFERENCES: list[tuple[str, str]] = [
    ("common", "platform_postgresql_host"),
    ("common", "platform_minio_host"),
    ("common", "platform_clickhouse_host"),
    ("clickhouse", "clickhouse_postgres_host"),
    ("airflow", "airflow_db_host"),
    ("superset", "superset_db_host"),
    ("superset", "superset_clickhouse_host"),
]


# Client host variables whose emptiness the component's own check reports (_check_host_set).
HOSTS_CHECKED_BY_COMPONENT = {"airflow_db_host", "superset_db_host", "superset_clickhouse_host"}


def check_host_references(ctx: Context) -> None:
    known = set(ctx.hosts("all"))
    external = set()
    for host in ctx.hosts("all")[:1]:
        external = set(ctx.items(host, "platform_external_hosts", "common"))
    for component, name in HOST_REFERENCES:
        pattern, role = COMPONENTS[component]
        for host in ctx.hosts(pattern):
            value = ctx.var(host, name, role)
            if value in (None, "") and (component == "common" or name in HOSTS_CHECKED_BY_COMPONENT):
                # An empty group: check_groups says so, and the client's component check names the variable.
                continue
            if value not in known and value not in external:
                ctx.add(
                    name,
                    host,
                    value,
                    "it names no host of the inventory — use an inventory host name, or list an outside name "
                    "(a load balancer) in platform_external_hosts",
                )
                break


# ------------------------------------------------------------------------------------------------
# component checks (also run by each role's assert.yml)


def check_common(ctx: Context, hosts: list[str]) -> None:
    for host in hosts:
        for i, item in enumerate(ctx.items(host, "common_ca_certificates", "common")):
            if (
                not isinstance(item, dict)
                or not ({"src", "pem"} & set(item))
                or ("src" not in item and "name" not in item)
            ):
                ctx.add(
                    f"common_ca_certificates[{i}]",
                    host,
                    item,
                    "each item needs src (a PEM file on the controller) or pem (the text) with a name",
                )
        tz = ctx.var(host, "common_timezone", "common")
        if tz is not None and not re.fullmatch(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*", str(tz)):
            ctx.add("common_timezone", host, tz, "use a zoneinfo name such as Etc/UTC or Europe/Berlin")
        locale = ctx.var(host, "common_locale", "common")
        if locale is not None and not re.fullmatch(r"[a-z]{2,3}_[A-Z]{2}\.UTF-8", str(locale)):
            ctx.add("common_locale", host, locale, "use a UTF-8 locale such as en_US.UTF-8")


def check_keeper_quorum(ctx: Context) -> None:
    keepers = ctx.view.groups.get("clickhouse_keeper", [])
    if not keepers:
        ctx.add(
            "group clickhouse_keeper",
            "the inventory",
            None,
            "ClickHouse needs a Keeper quorum — put 3 hosts (1 only for a test) in group clickhouse_keeper, "
            "each with its clickhouse_keeper_server_id",
            shown="empty" if "clickhouse_keeper" in ctx.view.groups else "missing",
        )
        return
    if len(keepers) % 2 == 0:
        ctx.add(
            "group clickhouse_keeper",
            "the inventory",
            None,
            "the Keeper quorum needs an odd number of hosts (3 or 5; 1 only for a test) so that a majority "
            "survives a failure — add or remove a host in group clickhouse_keeper",
            shown=f"{len(keepers)} hosts ({', '.join(keepers)})",
        )
    servers = ctx.view.groups.get("clickhouse", [])
    check_node_ids(
        ctx,
        keepers,
        "clickhouse_keeper_server_id",
        lambda host: "clickhouse" if host in servers else "clickhouse_keeper",
        minimum=1,
        kind="a positive integer",
        unset_fix="set it under the host in hosts.yml: a positive integer, unique, never reused",
        shared_fix="these Keeper nodes share it — give each Keeper node its own id (ids are the Raft identity: "
        "stable, never reused, never from list order)",
    )
    check_keeper_membership(ctx, keepers, lambda host: "clickhouse" if host in servers else "clickhouse_keeper")


# What each Keeper member recorded when a role last configured it (roles/clickhouse_keeper/tasks/member.yml):
# {"server_id": id, "host": inventory name, "members": [{"id", "host", "hostname"}, ...]}.
KEEPER_FACT = "chplatform_keeper"
KEEPER_FACT_FILE = "/etc/ansible/facts.d/chplatform_keeper.fact"
KEEPER_REPLACE = "replace one member per run with playbooks/replace_keeper.yml (docs/keeper_replacement.md)"


def _recorded_keeper(ctx: Context, host: str) -> dict | None:
    getter = getattr(ctx.view, "local_fact", None)
    value = getter(host, KEEPER_FACT) if getter else None
    return value if isinstance(value, dict) else None


def check_keeper_membership(ctx: Context, keepers: list[str], role_of) -> None:
    """The inventory's quorum against the membership the live members recorded (their local facts,
    known once facts are gathered or cached; nothing to compare before the first run): a live
    member keeps its id, an id never moves to another host, and one change removes no more members
    than the recorded quorum tolerates."""
    records = {host: record for host in keepers if (record := _recorded_keeper(ctx, host))}
    if not records:
        return
    wanted = {host: _int(ctx.var(host, "clickhouse_keeper_server_id", role_of(host))) for host in keepers}
    holders: dict[int, set[str]] = {}
    for record in records.values():
        for member in record.get("members") or []:
            if isinstance(member, dict) and _int(member.get("id")) is not None:
                holders.setdefault(_int(member.get("id")), set()).add(str(member.get("host")))
    for host, record in records.items():
        recorded, new = _int(record.get("server_id")), wanted.get(host)
        if recorded is not None and new is not None and recorded != new:
            ctx.add(
                "clickhouse_keeper_server_id",
                host,
                new,
                f"{host} is Keeper member {recorded} (recorded in {KEEPER_FACT_FILE} when it was configured) and a "
                f"live member's id never changes — set it back to {recorded}; to give the quorum a new id, add a NEW "
                f"host with that id in place of this one: {KEEPER_REPLACE}",
            )
    for host in keepers:
        new = wanted.get(host)
        others = holders.get(new, set()) - {host} if new is not None else set()
        if others and host not in holders.get(new, set()) and _int((records.get(host) or {}).get("server_id")) != new:
            ctx.add(
                "clickhouse_keeper_server_id",
                host,
                new,
                f"id {new} belonged to {', '.join(sorted(others))} (recorded by the members in {KEEPER_FACT_FILE}) and "
                f"a Keeper id is never reused — give {host} a new id, higher than every id used so far "
                f"({max(holders) + 1} or more)",
            )
    ids = {i for i in wanted.values() if i is not None}
    seen: set[frozenset[int]] = set()
    for host, record in records.items():
        old = {_int(m.get("id")): str(m.get("host")) for m in record.get("members") or [] if isinstance(m, dict)}
        old.pop(None, None)
        if not old or frozenset(old) in seen:
            continue
        seen.add(frozenset(old))
        removed = sorted(i for i in old if i not in ids)
        tolerated = (len(old) - 1) // 2
        if len(removed) > tolerated:
            ctx.add(
                "group clickhouse_keeper",
                "the inventory",
                None,
                f"it removes {len(removed)} members at once ({', '.join(f'{old[i]} (id {i})' for i in removed)}) "
                f"from the quorum of {len(old)} that {host} runs with (recorded in {KEEPER_FACT_FILE}), which "
                f"tolerates {tolerated} — {KEEPER_REPLACE}, each change applied before the next",
                shown=f"{len(keepers)} hosts ({', '.join(keepers)})",
            )


def check_node_ids(
    ctx: Context, hosts: list[str], name: str, role_of, minimum: int, kind: str, unset_fix: str, shared_fix: str
) -> None:
    """An explicit node id per host (the identity of a Raft member or a broker): set, a whole number
    of at least ``minimum``, and shared by no two hosts."""
    seen: dict[int, list[str]] = {}
    for host in hosts:
        raw = ctx.var(host, name, role_of(host))
        value = _int(raw)
        if raw is None:
            ctx.add(name, host, None, unset_fix, shown="unset")
        elif value is None or value < minimum:
            ctx.add(name, host, raw, f"use {kind}, unique and never reused")
        else:
            seen.setdefault(value, []).append(host)
    for value, where in seen.items():
        if len(where) > 1:
            ctx.add(name, ", ".join(where), value, shared_fix)


def check_clickhouse_cluster(ctx: Context) -> None:
    servers = ctx.view.groups.get("clickhouse", [])
    if not servers:
        return
    replicas: dict[tuple[int, str], list[str]] = {}
    shards: set[int] = set()
    for host in servers:
        shard_raw = ctx.var(host, "clickhouse_shard", "clickhouse")
        shard = _int(shard_raw)
        replica = ctx.var(host, "clickhouse_replica", "clickhouse")
        if shard is None or shard < 1:
            ctx.add(
                "clickhouse_shard",
                host,
                shard_raw,
                "set it under the host in hosts.yml: the shard number (1, 2, ...)",
                shown="unset" if shard_raw is None else None,
            )
        else:
            shards.add(shard)
        if not replica:
            ctx.add(
                "clickhouse_replica",
                host,
                replica,
                "set it under the host in hosts.yml: a replica name unique within its shard",
                shown="unset",
            )
        elif shard is not None:
            replicas.setdefault((shard, str(replica)), []).append(host)
    for (shard, replica), where in replicas.items():
        if len(where) > 1:
            ctx.add(
                "clickhouse_replica",
                ", ".join(where),
                replica,
                f"these hosts of shard {shard} share it — give each replica of a shard its own name",
            )
    count = _int(ctx.var(servers[0], "clickhouse_shard_count", "clickhouse", default=0)) or 0
    wanted = set(range(1, max([count, *shards, 0]) + 1))
    for shard in sorted(wanted - shards):
        ctx.add(
            f"shard {shard}",
            "group clickhouse",
            None,
            f"it has no replica — add a host with clickhouse_shard: {shard}, or renumber the shards from 1 "
            "without gaps (or lower clickhouse_shard_count)",
            shown="empty",
        )


def _check_install_source(ctx: Context, host: str, role: str, prefix: str) -> None:
    source = ctx.var(host, f"{prefix}_install_source", role)
    sources = ("apt", "artifacts", "preinstalled")
    if source is not None and source not in sources:
        ctx.add(f"{prefix}_install_source", host, source, f"use one of {', '.join(sources)}")
    if source == "artifacts" and not (
        ctx.var(host, f"{prefix}_artifacts_dir", role) or ctx.var(host, f"{prefix}_artifacts_url", role)
    ):
        ctx.add(
            f"{prefix}_artifacts_url",
            host,
            "",
            f"with {prefix}_install_source: artifacts set {prefix}_artifacts_dir (.deb files on the controller) "
            f"or {prefix}_artifacts_url (a base URL serving them)",
        )
    available = ctx.var(host, f"{prefix}_packages_available", role)
    if available is not None and not isinstance(available, bool) and str(available).lower() not in ("true", "false"):
        ctx.add(f"{prefix}_packages_available", host, available, "use true or false")


def _check_not_empty(ctx: Context, host: str, role: str, names: list[str]) -> None:
    for name in names:
        value = ctx.var(host, name, role)
        if value is None or str(value) == "":
            ctx.add(name, host, value, secret_fix(ctx, name))


def check_clickhouse(ctx: Context, hosts: list[str]) -> None:
    check_keeper_quorum(ctx)
    check_clickhouse_cluster(ctx)
    for host in hosts:
        _check_install_source(ctx, host, "clickhouse", "clickhouse")
        _check_not_empty(
            ctx,
            host,
            "clickhouse",
            [
                "clickhouse_admin_password",
                "clickhouse_interserver_secret",
                "clickhouse_s3_secret_key",
                "clickhouse_pg_prod_password",
                "clickhouse_pg_airflow_password",
            ],
        )


def check_clickhouse_keeper(ctx: Context, hosts: list[str]) -> None:
    check_keeper_quorum(ctx)
    for host in hosts:
        _check_install_source(ctx, host, "clickhouse_keeper", "clickhouse_keeper")


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SCHEMA_ROLES = ("observer", "analytic", "data_engineer", "etl_role", "bi_role", "monitoring_role")


def check_clickhouse_schema(ctx: Context, hosts: list[str]) -> None:
    for host in hosts[:1]:
        role = "clickhouse_schema"
        for name in (
            "clickhouse_schema_packages_available",
            "clickhouse_schema_replicated",
            "clickhouse_schema_on_cluster",
        ):
            value = ctx.var(host, name, role)
            if value is not None and str(value).lower() not in ("true", "false"):
                ctx.add(name, host, value, "use true or false")
        applying = str(ctx.var(host, "clickhouse_schema_packages_available", role, default=True)).lower() != "false"
        login_password = ctx.var(host, "clickhouse_schema_login_password", role, default="")
        if applying and (login_password is None or str(login_password) == ""):
            ctx.add(
                "clickhouse_schema_login_password",
                host,
                login_password,
                secret_fix(ctx, "clickhouse_schema_login_password", "the admin password the migrations log in with"),
            )
        on_cluster = str(ctx.var(host, "clickhouse_schema_on_cluster", role, default=False)).lower() == "true"
        replicated = str(ctx.var(host, "clickhouse_schema_replicated", role, default=False)).lower() == "true"
        if on_cluster and not replicated:
            ctx.add(
                "clickhouse_schema_on_cluster",
                host,
                True,
                "ON CLUSTER over plain MergeTree would give every server its own unreplicated data — set "
                "clickhouse_schema_replicated: true or clickhouse_schema_on_cluster: false",
            )
        for name in (
            "clickhouse_schema_kafka_collection",
            "clickhouse_schema_pg_prod_collection",
            "clickhouse_schema_pg_airflow_collection",
            "clickhouse_schema_storage_policy",
        ):
            value = ctx.var(host, name, role)
            if value is not None and not IDENTIFIER.fullmatch(str(value)):
                ctx.add(name, host, value, "use a plain identifier (letters, digits, _), the name in the server config")
        table = ctx.var(host, "clickhouse_schema_table", role)
        if table is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*", str(table)):
            ctx.add("clickhouse_schema_table", host, table, "use database.table with plain identifiers")
        src = ctx.var(host, "clickhouse_schema_src_dir", role)
        if src and not ctx.view.path_exists(f"{src}/001_databases.sql.j2"):
            ctx.add(
                "clickhouse_schema_src_dir",
                host,
                src,
                "it holds no NNN_name.sql.j2 migration — point it at files/clickhouse/init_db of this repository",
            )
        users = ctx.items(host, "clickhouse_schema_users", role)
        for i, user in enumerate(users):
            name = user.get("name") if isinstance(user, dict) else None
            label = f"clickhouse_schema_users[{name or i}]"
            if not name or not IDENTIFIER.fullmatch(str(name)):
                ctx.add(f"{label}.name", host, name, "give each user an identifier as name")
            if not isinstance(user, dict) or not user.get("password"):
                ctx.add(f"{label}.password", host, "", "map it from its vault_clickhouse_<user>_password secret")
            bad = [r for r in (user.get("roles") or [] if isinstance(user, dict) else []) if r not in SCHEMA_ROLES]
            if bad:
                ctx.add(
                    f"{label}.roles", host, bad, f"grant only roles the migrations create: {', '.join(SCHEMA_ROLES)}"
                )


WILDCARDS = ("*", "0.0.0.0", "::")  # noqa: S104  the addresses refused, not bound
SHA256 = re.compile(r"(sha256:)?[0-9a-fA-F]{64}")


def check_kafka(ctx: Context, hosts: list[str]) -> None:
    role = "kafka"
    check_node_ids(
        ctx,
        hosts,
        "kafka_node_id",
        lambda _host: role,
        minimum=0,
        kind="a whole number",
        unset_fix="set it under the host in hosts.yml: a whole number, unique and never reused",
        shared_fix="these nodes share it — give every Kafka node its own id",
    )
    roles_by_host: dict[str, list[str]] = {}
    for host in hosts:
        process_roles = ctx.var(host, "kafka_process_roles", role, default=["broker", "controller"])
        if not isinstance(process_roles, list) or not process_roles or set(process_roles) - {"broker", "controller"}:
            ctx.add(
                "kafka_process_roles",
                host,
                process_roles,
                "use [broker, controller] (default), [broker] or [controller]",
            )
            process_roles = ["broker", "controller"]
        roles_by_host[host] = process_roles
    controllers = [h for h, r in roles_by_host.items() if "controller" in r]
    brokers = [h for h, r in roles_by_host.items() if "broker" in r]
    if hosts and not controllers:
        ctx.add(
            "kafka_process_roles",
            "group kafka",
            None,
            "KRaft needs a controller quorum — give controller to 1 or 3 hosts "
            "(kafka_process_roles: [broker, controller], the default, or [controller])",
            shown="no controller",
        )
    elif hosts and len(controllers) % 2 == 0:
        ctx.add(
            "kafka_process_roles",
            "group kafka",
            None,
            "the KRaft quorum needs an odd number of controllers — set kafka_process_roles per host "
            "(e.g. [broker] on the extra hosts)",
            shown=f"{len(controllers)} controllers ({', '.join(controllers)})",
        )
    if hosts and not brokers:
        ctx.add("kafka_process_roles", "group kafka", None, "at least one node must be a broker", shown="no broker")
    for host in hosts[:1]:
        version = str(ctx.var(host, "kafka_version", role))
        offered = [str(v) for v in ctx.items(host, "kafka_artifact_versions", role)]
        if offered and version not in offered:
            # The source has no such release: its URL and checksum are empty; saying so too helps nobody.
            ctx.add(
                "kafka_version",
                host,
                version,
                f"the artifact source offers Kafka {', '.join(sorted(offered))}: set kafka_version to one of them, "
                f"or pin {version} in files/bundle/versions.yml (kafka_version or kafka_previous_version) "
                "and run bin/bundle build",
            )
        elif not (ctx.var(host, "kafka_artifact_url", role) or ctx.var(host, "kafka_artifact_src", role)):
            ctx.add("kafka_artifact_url", host, "", "set kafka_artifact_url or kafka_artifact_src (the distribution)")
        sha = ctx.var(host, "kafka_artifact_sha256", role)
        if sha is not None and not SHA256.fullmatch(str(sha)) and not (offered and version not in offered):
            ctx.add(
                "kafka_artifact_sha256",
                host,
                sha,
                "set the sha256 (64 hex digits) of the tarball — Apache publishes only sha512: run sha256sum once",
            )
        cluster_id = ctx.var(host, "kafka_cluster_id", role, default="")
        if cluster_id and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", str(cluster_id)):
            ctx.add(
                "kafka_cluster_id",
                host,
                cluster_id,
                "leave it empty or use a 22-character base64url UUID not starting with '-' (kafka-storage random-uuid)",
            )
        heap = ctx.var(host, "kafka_heap_opts", role)
        if heap is not None and not re.search(r"-Xmx[0-9]+[kmgKMG]", str(heap)):
            ctx.add("kafka_heap_opts", host, heap, "include a maximum heap, e.g. -Xms1g -Xmx1g")
        cluster_name = ctx.var(host, "kafka_cluster_name", role)
        if cluster_name is not None and not str(cluster_name):
            ctx.add(
                "kafka_cluster_name",
                host,
                cluster_name,
                "set a name: it seeds the cluster id of a new cluster (kafka_cluster_id empty)",
            )
        ports = {n: _int(ctx.var(host, n, role)) for n in ("kafka_port", "kafka_controller_port", "kafka_broker_port")}
        for port_name, port in ports.items():
            if port is not None and not 0 < port < 65536:
                ctx.add(port_name, host, port, "use a TCP port between 1 and 65535 (set once in group_vars/all)")
        external = _int(ctx.var(host, "kafka_external_listener_port", role, default=0)) or 0
        if ports["kafka_port"] and ports["kafka_port"] == ports["kafka_controller_port"]:
            ctx.add("kafka_controller_port", host, ports["kafka_controller_port"], "use a port other than kafka_port")
        if ports["kafka_broker_port"] and ports["kafka_broker_port"] in (
            ports["kafka_port"],
            ports["kafka_controller_port"],
        ):
            ctx.add(
                "kafka_broker_port",
                host,
                ports["kafka_broker_port"],
                "use a port other than kafka_port and kafka_controller_port",
            )
        if external and external in ports.values():
            ctx.add(
                "kafka_external_listener_port",
                host,
                external,
                "use a port other than kafka_port, kafka_controller_port and kafka_broker_port",
            )
        replication = min(3, len(brokers)) or 1
        override = ctx.var(host, "kafka_internal_replication_factor", role, default="")
        if _int(override):
            replication = _int(override)
        topics = (ctx.items(host, "kafka_topics", role)) + (ctx.items(host, "kafka_topics_extra", role))
        names = Counter(t.get("name") for t in topics if isinstance(t, dict))
        for i, topic in enumerate(topics):
            if not isinstance(topic, dict):
                ctx.add(f"kafka_topics[{i}]", "group kafka", topic, "each topic is a mapping with a name")
                continue
            name = topic.get("name")
            label = f"kafka_topics[{name or i}]"
            if not name or not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", str(name)):
                ctx.add(f"{label}.name", "group kafka", name, "use letters, digits, '.', '_' or '-' (at most 249)")
            if topic.get("state", "present") not in ("present", "absent"):
                ctx.add(f"{label}.state", "group kafka", topic.get("state"), "use present or absent")
            partitions = _int(topic.get("partitions", 1))
            if partitions is None or partitions < 1:
                ctx.add(f"{label}.partitions", "group kafka", topic.get("partitions"), "use a whole number >= 1")
            rf_raw = topic.get("replication_factor", replication)
            rf = _int(rf_raw)
            if rf is None or rf < 1:
                ctx.add(f"{label}.replication_factor", "group kafka", rf_raw, "use a whole number >= 1")
            elif rf > len(brokers):
                ctx.add(
                    f"{label}.replication_factor",
                    "group kafka",
                    rf_raw,
                    f"the group has {len(brokers)} broker(s) — lower it to {len(brokers)} "
                    "or add brokers to group kafka",
                )
            if not isinstance(topic.get("configs", {}), dict):
                ctx.add(f"{label}.configs", "group kafka", topic.get("configs"), "write the configs as a mapping")
            if name and names[name] > 1:
                ctx.add(
                    f"{label}",
                    "group kafka",
                    name,
                    "the topic is listed twice (kafka_topics + kafka_topics_extra): keep one entry",
                )
                names[name] = 1
        check_kafka_users(ctx, host, role, hosts)


KAFKA_ACL_OPERATIONS = {
    "all", "read", "write", "create", "delete", "alter", "describe", "cluster_action",
    "describe_configs", "alter_configs", "idempotent_write", "create_tokens", "describe_tokens",
}  # fmt: skip
KAFKA_ACL_RESOURCES = {"topic", "group", "cluster", "transactional_id"}


def check_kafka_users(ctx: Context, host: str, role: str, kafka_hosts: list[str]) -> None:
    """kafka_users: one name each, never a Kafka host's (its certificate is that principal, a super
    user), and ACLs Kafka knows, before the kafka_user module would meet them half-way through a run."""
    users = ctx.items(host, "kafka_users", role)
    seen: Counter = Counter(u.get("name") for u in users if isinstance(u, dict))
    for i, user in enumerate(users):
        name = user.get("name") if isinstance(user, dict) else None
        label = f"kafka_users[{name or i}]"
        if not name:
            ctx.add(f"{label}.name", "the inventory", name, "give every Kafka user a name", shown="unset")
            continue
        if name in kafka_hosts:
            ctx.add(
                f"{label}.name",
                "the inventory",
                name,
                "rename the user: User:<Kafka host> is that host's certificate, a super user of the cluster",
            )
        if seen[name] > 1:
            ctx.add(label, "the inventory", name, "the user is listed twice: keep one entry")
            seen[name] = 1
        for j, acl in enumerate(user.get("acls", []) or []):
            where = f"{label}.acls[{j}]"
            if not isinstance(acl, dict) or acl.get("resource_type") not in KAFKA_ACL_RESOURCES:
                rtype = acl.get("resource_type") if isinstance(acl, dict) else acl
                fix = "use topic, group, cluster or transactional_id"
                ctx.add(f"{where}.resource_type", "the inventory", rtype, fix)
                continue
            unknown = [op for op in acl.get("operations") or [] if str(op).lower() not in KAFKA_ACL_OPERATIONS]
            if unknown or not acl.get("operations"):
                ctx.add(
                    f"{where}.operations",
                    "the inventory",
                    acl.get("operations"),
                    f"use Kafka's operations: {', '.join(sorted(KAFKA_ACL_OPERATIONS))}",
                )


def check_postgresql(ctx: Context, hosts: list[str]) -> None:
    role = "postgresql"
    for host in hosts[:1]:
        users = ctx.items(host, "postgresql_users", role)
        present_users = {u.get("name") for u in users if isinstance(u, dict) and u.get("state", "present") == "present"}
        for i, user in enumerate(users):
            name = user.get("name") if isinstance(user, dict) else None
            if not name:
                ctx.add(f"postgresql_users[{i}].name", host, name, "give every user a name")
            elif user.get("state", "present") == "present" and not str(user.get("password") or ""):
                ctx.add(
                    f"postgresql_users[{name}].password",
                    host,
                    "",
                    f"set it (map it from vault_postgresql_{name.removesuffix('_owner')}_password) "
                    "or give the user state: absent",
                )
        databases = [
            d for d in (ctx.items(host, "postgresql_databases", role)) if d.get("state", "present") == "present"
        ]
        db_names = {d.get("name") for d in databases}
        for db in databases:
            name = db.get("name")
            if not name or not re.fullmatch(r"[a-z_][a-z0-9_]*", str(name)):
                ctx.add(f"postgresql_databases[{name}].name", host, name, "use a lower-case name of [a-z0-9_]")
            if db.get("owner") not in present_users | {"postgres"}:
                ctx.add(
                    f"postgresql_databases[{name}].owner",
                    host,
                    db.get("owner"),
                    f"use one of postgresql_users ({', '.join(sorted(present_users))}) or postgres",
                )
        for entry in ctx.items(host, "postgresql_hba_group_access", role):
            if not isinstance(entry, dict) or not {"group", "database", "user"} <= set(entry):
                ctx.add("postgresql_hba_group_access", host, entry, "each entry needs group, database and user")
                continue
            if entry["database"] not in db_names:
                ctx.add("postgresql_hba_group_access", host, entry, "its database is not in postgresql_databases")
            if entry["user"] not in present_users:
                ctx.add("postgresql_hba_group_access", host, entry, "its user is not in postgresql_users")
        for user in users:
            for grant in (user.get("select_on") or []) if isinstance(user, dict) else []:
                if grant.get("database") not in db_names or not re.fullmatch(
                    r"[a-z_][a-z0-9_]*", str(grant.get("schema", "public"))
                ):
                    ctx.add(
                        f"postgresql_users[{user.get('name')}].select_on",
                        host,
                        grant,
                        "database must be one of postgresql_databases and schema (default public) a lower-case name",
                    )
        migrations = ctx.items(host, "postgresql_migrations", role)
        migrations_dir = ctx.var(host, "postgresql_migrations_dir", role, default="")
        versions = Counter((m.get("database"), str(m.get("version"))) for m in migrations if isinstance(m, dict))
        for m in migrations:
            label = f"postgresql_migrations[{m.get('database')} {m.get('version')}]"
            if m.get("database") not in db_names:
                ctx.add(label, host, m.get("database"), "its database must be one of postgresql_databases")
            if not re.fullmatch(r"[0-9]+", str(m.get("version", ""))):
                ctx.add(label, host, m.get("version"), "its version must be a whole number")
            elif versions[(m.get("database"), str(m.get("version")))] > 1:
                ctx.add(label, host, m.get("version"), "the version is used twice in that database")
            if not re.fullmatch(r"[a-z0-9_]+", str(m.get("name", ""))):
                ctx.add(label, host, m.get("name"), "its name must be [a-z0-9_]")
            path = str(m.get("file", ""))
            path = path if path.startswith("/") else f"{migrations_dir}/{path}"
            if not m.get("file") or not ctx.view.path_exists(path):
                ctx.add(label, host, m.get("file"), f"the file does not exist on the controller ({path})")
        check_postgresql_backup(ctx, host)
    for host in hosts:
        hba_type = ctx.var(host, "postgresql_hba_connection_type", role)
        ssl = ctx.var(host, "postgresql_ssl", role, default=True)
        tls_on = isinstance(ssl, Deferred) or str(ssl).lower() in ("true", "yes", "on", "1")
        if hba_type == "hostssl" and not tls_on:
            ctx.add(
                "postgresql_hba_connection_type",
                host,
                hba_type,
                "hostssl entries need TLS: set postgresql_ssl: true (or, for a migration only, "
                "postgresql_hba_connection_type: host)",
            )
        check_postgresql_packages(ctx, host)
        addresses = ctx.var(host, "postgresql_listen_addresses", role)
        if addresses is None or isinstance(addresses, Deferred):
            continue
        if not addresses or any(str(a) in WILDCARDS for a in addresses):
            ctx.add(
                "postgresql_listen_addresses",
                host,
                addresses,
                "name the addresses to listen on (localhost and the private address), not a wildcard",
            )


# A Debian version of the server's packages: <major>.<minor>-<Debian revision>, e.g. 15.18-0+deb12u1.
POSTGRESQL_PACKAGE_VERSION = re.compile(r"(?P<major>[0-9]+)\.[0-9]+-[0-9A-Za-z.+~]+")


def check_postgresql_packages(ctx: Context, host: str) -> None:
    """The pin of the server's packages (postgresql_package_version) and the upgrade switch
    (postgresql_minor_upgrade), before apt runs."""
    role = "postgresql"
    upgrade = ctx.var(host, "postgresql_minor_upgrade", role, default=False)
    if not isinstance(upgrade, (bool, Deferred)) and str(upgrade).lower() not in ("true", "false"):
        ctx.add("postgresql_minor_upgrade", host, upgrade, "use true or false")
    pin = ctx.var(host, "postgresql_package_version", role, default="")
    major = ctx.var(host, "postgresql_version", role, default="15")
    if isinstance(pin, Deferred) or isinstance(major, Deferred) or pin is None or pin == "":
        return
    match = POSTGRESQL_PACKAGE_VERSION.fullmatch(pin) if isinstance(pin, str) else None
    if match is None or match["major"] != str(major):
        ctx.add(
            "postgresql_package_version",
            host,
            pin,
            f"give a full Debian version of postgresql-{major} as a quoted string, as apt-cache madison "
            f'postgresql-{major} lists it (e.g. "15.18-0+deb12u1" for 15), or "" for no pin',
        )


# pgBackRest (the postgresql role's tasks/backup.yml, postgresql_backup).
PGBACKREST_STANZA = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
PGBACKREST_COMPRESS = ("none", "gz", "bz2", "lz4", "zst")
TRUE_WORDS = ("true", "yes", "on", "1")


def _quiet_items(ctx: Context, host: str, name: str, role: str) -> list | None:
    """A list variable's items, or None when it is undefined or does not resolve (reported by
    whichever check owns it, not here)."""
    try:
        value = ctx.view.get(host, name, role)
    except (NotDefined, Unresolvable):
        return None
    return list(value) if isinstance(value, list) else None


def check_postgresql_backup(ctx: Context, host: str) -> None:
    """pgBackRest's inputs: MinIO there and over HTTPS, the stanza, the bucket and the user MinIO
    creates for it, retention and schedules, before the first WAL segment is archived."""
    role = "postgresql"
    backup = ctx.var(host, "postgresql_backup", role, default=False)
    if isinstance(backup, Deferred):
        return
    if str(backup).lower() not in (*TRUE_WORDS, "false", "no", "off", "0"):
        ctx.add("postgresql_backup", host, backup, "use true or false")
        return
    if str(backup).lower() not in TRUE_WORDS:
        return
    minio_host = ctx.var(host, "platform_minio_host", role, default="")
    if not minio_host:
        ctx.add(
            "postgresql_backup",
            host,
            True,
            "pgBackRest keeps the backups in MinIO and the inventory has no host in group minio: add one, "
            "or set postgresql_backup: false in group_vars/all",
        )
    tls = ctx.var(host, "minio_tls", role, default=True)
    if not isinstance(tls, Deferred) and str(tls).lower() not in TRUE_WORDS:
        ctx.add(
            "postgresql_backup",
            host,
            True,
            "pgBackRest reaches S3 over HTTPS only and minio_tls is false: set minio_tls: true, "
            "or postgresql_backup: false in group_vars/all",
        )
    stanza = ctx.var(host, "platform_pgbackrest_stanza", role)
    if stanza is not None and not isinstance(stanza, Deferred) and not PGBACKREST_STANZA.fullmatch(str(stanza)):
        ctx.add(
            "platform_pgbackrest_stanza",
            host,
            stanza,
            "use lower-case letters, digits, _ and - (up to 63, e.g. chplatform), set once in group_vars/all; "
            "renaming it starts a new, empty stanza",
        )
    bucket = str(ctx.var(host, "platform_minio_pgbackrest_bucket", role, default="") or "")
    rule = bucket_name_problem(bucket)
    if rule:
        suggestion = re.sub(r"[^a-z0-9.-]", "-", bucket.lower()).strip(".-") or "postgresql-backups"
        ctx.add("platform_minio_pgbackrest_bucket", host, bucket, f"{rule} — rename it, e.g. '{suggestion}'")
    user_name = str(ctx.var(host, "platform_minio_pgbackrest_user", role, default="") or "")
    # MinIO's lists as its role sees them; one that does not resolve here (a secret of another user
    # missing) is the minio component's to report, and these cross-checks wait for it.
    buckets = _quiet_items(ctx, minio_host, "minio_buckets", "minio") if minio_host in ctx.hosts("minio") else None
    users = _quiet_items(ctx, minio_host, "minio_users", "minio") if minio_host in ctx.hosts("minio") else None
    if buckets is not None and users is not None:
        buckets += _quiet_items(ctx, minio_host, "minio_buckets_extra", "minio") or []
        users += _quiet_items(ctx, minio_host, "minio_users_extra", "minio") or []
        present = {b.get("name") for b in buckets if isinstance(b, dict) and b.get("state", "present") == "present"}
        if not rule and bucket not in present:
            ctx.add(
                "platform_minio_pgbackrest_bucket",
                host,
                bucket,
                "MinIO does not create that bucket: keep the contract's minio_buckets entry "
                '`- name: "{{ platform_minio_pgbackrest_bucket }}"` (or add it to minio_buckets_extra)',
            )
        user = next((u for u in users if isinstance(u, dict) and u.get("name") == user_name), None)
        if user is None or user.get("state", "present") != "present":
            ctx.add(
                "platform_minio_pgbackrest_user",
                host,
                user_name,
                "MinIO has no such user: keep the contract's minio_users entry for it "
                "(read_write on platform_minio_pgbackrest_bucket, secret minio_pgbackrest_secret_key)",
            )
        elif not rule and bucket not in (user.get("read_write") or []):
            ctx.add(
                f"minio_users[{user_name}].read_write",
                "group minio",
                user.get("read_write"),
                f"pgBackRest writes and expires its backups in {bucket}: grant read_write on it",
            )
    secret = ctx.var(host, "minio_pgbackrest_secret_key", role, default="")
    if not isinstance(secret, Deferred) and not 8 <= len(str(secret or "")) <= 40:
        ctx.add(
            "minio_pgbackrest_secret_key",
            host,
            secret,
            secret_fix(ctx, "minio_pgbackrest_secret_key", "8 to 40 characters"),
        )
    for name, low, high, what in (
        ("postgresql_backup_retention_full", 1, 9999999, "the number of full backups to keep"),
        ("postgresql_backup_process_max", 1, 999, "the number of processes"),
    ):
        value = ctx.var(host, name, role)
        number = _int(value)
        if value is not None and not isinstance(value, Deferred) and not (number and low <= number <= high):
            ctx.add(name, host, value, f"use a whole number from {low} to {high}: {what}")
    compress = ctx.var(host, "postgresql_backup_compress_type", role)
    if compress is not None and compress not in PGBACKREST_COMPRESS:
        ctx.add("postgresql_backup_compress_type", host, compress, f"use one of {', '.join(PGBACKREST_COMPRESS)}")
    path = ctx.var(host, "postgresql_backup_repo_path", role)
    if path is not None and not re.fullmatch(r"/[A-Za-z0-9_./-]*", str(path)):
        ctx.add("postgresql_backup_repo_path", host, path, "use an absolute path in the bucket, e.g. /pgbackrest")
    for name in ("postgresql_backup_full_schedule", "postgresql_backup_incr_schedule"):
        value = ctx.var(host, name, role)
        if value is not None and (not str(value).strip() or not re.fullmatch(r"[A-Za-z0-9 *,.:/~-]+", str(value))):
            ctx.add(
                name,
                host,
                value,
                "use a systemd OnCalendar expression such as 'Sun *-*-* 02:30:00' "
                "(check it with systemd-analyze calendar '<expression>')",
            )


def _check_go_binary(
    ctx: Context, host: str, role: str, prefix: str, what: str, module: str, version_var: str, other_fix: str = ""
) -> None:
    """A binary built from a Go module (no upstream package): its URL or controller path, and its
    sha256 (``<prefix>_url`` / ``<prefix>_src`` / ``<prefix>_sha256``)."""
    if not (ctx.var(host, f"{prefix}_url", role) or ctx.var(host, f"{prefix}_src", role)):
        ctx.add(
            f"{prefix}_url",
            host,
            "",
            f"set {prefix}_url or {prefix}_src to {what} built with go install "
            f"{module}@{ctx.var(host, version_var, role, default=f'<{version_var}>')} "
            f"(bin/bundle builds one), and {prefix}_sha256 to its sha256{other_fix}",
        )
    sha = ctx.var(host, f"{prefix}_sha256", role)
    if sha is not None and not SHA256.fullmatch(str(sha)):
        ctx.add(f"{prefix}_sha256", host, sha, "set the binary's sha256 (64 hex digits, bin/bundle's manifest.json)")


def check_minio(ctx: Context, hosts: list[str]) -> None:
    role = "minio"
    for host in hosts[:1]:
        _check_go_binary(
            ctx, host, role, "minio_artifact", "a server binary", "github.com/minio/minio", "minio_version"
        )
        user = str(ctx.var(host, "minio_root_user", role, default="") or "")
        if len(user) < 3:
            ctx.add("minio_root_user", host, user, "use at least 3 characters")
        password = ctx.var(host, "minio_root_password", role, default="")
        if password is not None and not 8 <= len(str(password)) <= 40:
            ctx.add("minio_root_password", host, password, secret_fix(ctx, "minio_root_password", "8 to 40 characters"))
        if bool(ctx.var(host, "minio_tls_cert", role, default="")) != bool(
            ctx.var(host, "minio_tls_key", role, default="")
        ):
            ctx.add(
                "minio_tls_cert", host, None, "set both minio_tls_cert and minio_tls_key, or neither", shown="half set"
            )
        api = _port_of_address(ctx.var(host, "minio_api_address", role))
        console = _port_of_address(ctx.var(host, "minio_console_address", role))
        if not api or not console or api == console:
            ctx.add(
                "minio_api_address",
                host,
                ctx.var(host, "minio_api_address", role),
                "minio_api_address and minio_console_address must be [host]:port with two different ports",
            )
        buckets = (ctx.items(host, "minio_buckets", role)) + (ctx.items(host, "minio_buckets_extra", role))
        counts = Counter(b.get("name") for b in buckets if isinstance(b, dict))
        for bucket in buckets:
            name = str(bucket.get("name", "")) if isinstance(bucket, dict) else ""
            rule = bucket_name_problem(name)
            if rule:
                suggestion = re.sub(r"[^a-z0-9.-]", "-", name.lower()).strip(".-") or "my-bucket"
                ctx.add(f"minio_buckets[{name}].name", "group minio", name, f"{rule} — rename it, e.g. '{suggestion}'")
            elif counts[name] > 1:
                ctx.add(f"minio_buckets[{name}]", "group minio", name, "the bucket is listed twice: keep one entry")
                counts[name] = 1
        users = (ctx.items(host, "minio_users", role)) + (ctx.items(host, "minio_users_extra", role))
        for user in users:
            name = str(user.get("name", ""))
            label = f"minio_users[{name}]"
            if not 3 <= len(name) <= 20:
                ctx.add(f"{label}.name", "group minio", name, "use 3 to 20 characters")
            if user.get("state", "present") == "absent":
                continue
            secret = str(user.get("secret_key") or "")
            if not 8 <= len(secret) <= 40:
                feeder = f"minio_{name}_secret_key"
                ctx.add(
                    f"{label}.secret_key",
                    "group minio",
                    secret,
                    secret_fix(ctx, feeder, "8 to 40 characters")
                    if vault_source(ctx, feeder)
                    else f"use 8 to 40 characters (map it from a vault secret such as vault_minio_{name}_secret_key)",
                )
            grants = [
                *(user.get("read_write") or []),
                *(user.get("read_only") or []),
                *(user.get("read_delete") or []),
            ]
            if not (grants or user.get("policy") or user.get("policies")):
                ctx.add(
                    f"{label}",
                    "group minio",
                    name,
                    "grant it something: read_write / read_only / read_delete buckets, a policy or policies",
                )
            for bucket in grants:
                rule = bucket_name_problem(str(bucket))
                if rule:
                    ctx.add(
                        f"{label}.read_write/read_only/read_delete",
                        "group minio",
                        bucket,
                        f"{rule} — grant the bucket by its valid name (minio_buckets)",
                    )


def _check_host_set(ctx: Context, host: str, role: str, name: str, group: str) -> None:
    """A client's server host: empty when the inventory has no host in the server's group."""
    value = ctx.var(host, name, role)
    if value is not None and not str(value):
        ctx.add(name, host, value, f"put a host in the inventory group {group}, or set {name} to the server's name")


def check_airflow(ctx: Context, hosts: list[str]) -> None:
    role = "airflow"
    for host in hosts[:1]:
        for name, minimum in (
            ("airflow_db_password", 1),
            ("airflow_admin_password", 1),
            ("airflow_api_secret_key", 16),
            ("airflow_jwt_secret", 16),
        ):
            value = str(ctx.var(host, name, role, default="") or "")
            if len(value) < minimum:
                ctx.add(
                    name, host, value, secret_fix(ctx, name, f"at least {minimum} characters" if minimum > 1 else "")
                )
            if "'" in value:
                ctx.add(name, host, value, "it must not contain a single quote (it is written into airflow.env)")
        fernet = ctx.var(host, "airflow_fernet_key", role, default="")
        if fernet is not None and not re.fullmatch(r"[A-Za-z0-9_-]{43}=", str(fernet)):
            ctx.add(
                "airflow_fernet_key",
                host,
                fernet,
                "use a url-safe base64 32-byte key (43 characters + '=', "
                f"{vault_source(ctx, 'airflow_fernet_key') or 'its vault secret'}): python3 -c 'import base64,os;"
                "print(base64.urlsafe_b64encode(os.urandom(32)).decode())'",
            )
        _check_host_set(ctx, host, role, "airflow_db_host", "postgres")
        if ctx.var(host, "airflow_statsd_enabled", role, default=True):
            _check_go_binary(
                ctx,
                host,
                role,
                "airflow_statsd_exporter",
                "a statsd_exporter binary",
                "github.com/prometheus/statsd_exporter",
                "airflow_statsd_exporter_version",
                ", or set airflow_statsd_enabled: false",
            )
        connections = (ctx.items(host, "airflow_connections", role)) + (
            ctx.items(host, "airflow_connections_extra", role)
        )
        for conn in connections:
            conn_id = conn.get("conn_id") if isinstance(conn, dict) else None
            label = f"airflow_connections[{conn_id or '?'}]"
            if not conn_id or not re.fullmatch(r"[A-Za-z0-9_.-]+", str(conn_id)):
                ctx.add(f"{label}.conn_id", host, conn_id, "use letters, digits, _ . -")
                continue
            state = conn.get("state", "present")
            if state not in ("present", "absent"):
                ctx.add(f"{label}.state", host, state, "use present or absent")
            if state == "present" and not conn.get("conn_type"):
                ctx.add(f"{label}.conn_type", host, None, "set the connection type", shown="unset")
            if "extra" in conn and not isinstance(conn["extra"], dict):
                ctx.add(f"{label}.extra", host, conn["extra"], "write extra as a mapping")


def check_superset(ctx: Context, hosts: list[str]) -> None:
    role = "superset"
    for host in hosts[:1]:
        for name in (
            "superset_secret_key",
            "superset_admin_password",
            "superset_db_password",
            "superset_clickhouse_password",
        ):
            value = ctx.var(host, name, role, default="")
            if not isinstance(value, str) or not value:
                ctx.add(name, host, value, secret_fix(ctx, name))
        key = str(ctx.var(host, "superset_secret_key", role, default="") or "")
        if key and len(key) < 32:
            ctx.add(
                "superset_secret_key",
                host,
                key,
                "use at least 32 characters (it signs sessions and encrypts passwords)",
            )
        _check_host_set(ctx, host, role, "superset_db_host", "postgres")
        _check_host_set(ctx, host, role, "superset_clickhouse_host", "clickhouse")
        for name in ("superset_port", "superset_workers"):
            value = ctx.var(host, name, role)
            if value is not None and not (_int(value) or 0) > 0:
                ctx.add(name, host, value, "use a positive whole number")
        if str(ctx.var(host, "superset_assets_import", role, default=True)).lower() == "true":
            src = ctx.var(host, "superset_assets_src", role)
            if src and not ctx.view.path_exists(f"{src}/metadata.yaml"):
                ctx.add("superset_assets_src", host, src, "point it at an export bundle directory with metadata.yaml")


def check_monitoring(ctx: Context, hosts: list[str]) -> None:
    role = "prometheus"
    for host in hosts[:1]:
        value = ctx.var(host, "prometheus_alertmanager_receivers", role)
        if isinstance(value, Deferred):
            continue  # built from the hosts' facts: the role's own check runs once they are known
        receivers = ctx.items(host, "prometheus_alertmanager_receivers", role)
        if not receivers:
            ctx.add(
                "prometheus_alertmanager_receivers",
                host,
                [],
                "name at least one receiver, e.g. [{name: ops, webhook_url: "
                "'https://chat.example.internal/hooks/alerts'}] or [{name: ops, email_to: 'ops@example.internal'}]",
            )
        names = []
        for i, receiver in enumerate(receivers):
            name = str(receiver.get("name") or "") if isinstance(receiver, dict) else ""
            label = f"prometheus_alertmanager_receivers[{name or i}]"
            if not name:
                ctx.add(f"{label}.name", host, None, "give the receiver a name", shown="unset")
            names.append(name)
            url = str(receiver.get("webhook_url") or "") if isinstance(receiver, dict) else ""
            mail = str(receiver.get("email_to") or "") if isinstance(receiver, dict) else ""
            if not url and not mail:
                ctx.add(
                    label,
                    host,
                    None,
                    "set webhook_url (http:// or https://) or email_to: a receiver without either sends nowhere",
                    shown="no webhook_url, no email_to",
                )
            elif url and not re.match(r"https?://[^/\s]+", url):
                ctx.add(f"{label}.webhook_url", host, url, "use an http:// or https:// URL")
            if mail and not (ctx.var(host, "prometheus_alertmanager_smtp", role, default={}) or {}).get("smarthost"):
                ctx.add(
                    "prometheus_alertmanager_smtp",
                    host,
                    None,
                    f"{label} sends e-mail: set prometheus_alertmanager_smtp.smarthost (host:port) and .from",
                    shown="no smarthost",
                )
        routes = ctx.var(host, "prometheus_alertmanager_routes", role, default={}) or {}
        for severity, receiver in routes.items() if isinstance(routes, dict) else []:
            if receiver not in names:
                ctx.add(
                    f"prometheus_alertmanager_routes.{severity}",
                    host,
                    receiver,
                    "route to one of prometheus_alertmanager_receivers: "
                    f"{', '.join(n for n in names if n) or '(none defined)'}",
                )


def check_scrape_targets(ctx: Context) -> None:
    """Every port Prometheus scrapes is one a service on that host listens on (an exporter turned
    off, or a port changed on one side only, would leave a target down for good)."""
    if not ctx.hosts("monitoring"):
        return
    for component, ports in EXPORTER_PORTS.items():
        role = COMPONENTS[component][1]
        for host in ctx.hosts(COMPONENTS[component][0]):
            for name, condition in ports:
                if condition and not ctx.var(host, condition, role, default=True):
                    ctx.add(
                        condition,
                        host,
                        False,
                        f"Prometheus (group monitoring) scrapes {name} here, but no service would listen on it: "
                        f"turn {condition} back on, or take the host out of the monitoring targets",
                    )


def check_firewall(ctx: Context, hosts: list[str]) -> None:
    """The host firewall's inputs: an admin range SSH stays open to, a client list for every port a
    host listens on, and only known groups in it (plugin_utils/firewall.py builds the rules)."""
    role = "firewall"
    if not ctx.listeners:
        check_ports(ctx)
    known = {pattern.partition(":!")[0] for pattern, _ in COMPONENTS.values()} | set(ctx.view.groups)
    reported: set[tuple[str, str]] = set()
    # The same admin-source problem on every host is one line, not one per host.
    admin_problems: dict[tuple[str, str], list[str]] = {}
    for host in hosts:
        if not ctx.var(host, "firewall_enabled", role, default=True):
            continue
        sources = ctx.var(host, "firewall_admin_sources", role, default=[])
        if not isinstance(sources, Deferred):
            try:
                if not networks(sources):
                    fix = (
                        "set the addresses or CIDR ranges the operators and the controller connect from "
                        "(SSH stays open to them only), or set firewall_enabled: false"
                    )
                    admin_problems.setdefault((show("firewall_admin_sources", sources), fix), []).append(host)
            except FirewallError as exc:
                fix = str(exc).partition(": ")[2] or str(exc)
                admin_problems.setdefault((show("firewall_admin_sources", sources), fix), []).append(host)
        clients = ctx.var(host, "firewall_clients", role, default={})
        if isinstance(clients, Deferred):
            continue
        try:
            unknown = unknown_clients(clients, known)
        except FirewallError as exc:
            ctx.add("firewall_clients", host, clients, str(exc))
            continue
        for variable, name in unknown:
            if (variable, name) not in reported:
                reported.add((variable, name))
                ctx.add(
                    f"firewall_clients.{variable}",
                    "the inventory",
                    name,
                    f"name an inventory group or '{ADMIN}' (firewall_admin_sources); known groups: "
                    f"{', '.join(sorted(g for g in known if g not in ('all', 'ungrouped')))}",
                )
        for item in ctx.listeners.get(host, []):
            variable = item["variable"]
            if variable not in clients and (variable, "") not in reported:
                reported.add((variable, ""))
                ctx.add(
                    "firewall_clients",
                    host,
                    None,
                    f"{item['component']} listens on {variable} ({item['port']}) here, but no entry says who may "
                    f"connect: add `{variable}: [<groups>]` (or [{ADMIN}]) to firewall_clients",
                    shown=f"no {variable}",
                )

    for (shown, fix), where in admin_problems.items():
        place = "the inventory" if where == hosts else ", ".join(where)
        ctx.add("firewall_admin_sources", place, None, fix, shown=shown)


COMPONENT_CHECKS = {
    "common": check_common,
    "postgresql": check_postgresql,
    "minio": check_minio,
    "kafka": check_kafka,
    "clickhouse_keeper": check_clickhouse_keeper,
    "clickhouse": check_clickhouse,
    "clickhouse_schema": check_clickhouse_schema,
    "airflow": check_airflow,
    "superset": check_superset,
    "monitoring": check_monitoring,
    "firewall": check_firewall,
}


# ------------------------------------------------------------------------------------------------
# role inputs against meta/argument_specs.yml


def check_argument_specs(
    ctx: Context,
    role: str,
    hosts: list[str],
    validator_factory,
    entry_point: str = "main",
    as_role: str | None = None,
    skip: set[str] | None = None,
) -> None:
    """Type errors in a role's inputs, one line per variable (not a spec dump). ``entry_point`` is
    the spec's entry point; ``as_role`` the role whose view resolves the values (default ``role``)."""
    path = ctx.view.role_file(role, "meta/argument_specs.yml")
    if not path:
        return
    spec = ((ctx.view.load_yaml(path) or {}).get("argument_specs") or {}).get(entry_point, {}).get("options") or {}
    reported: set[str] = set(skip or ())
    for host in hosts:
        for name, option in spec.items():
            if name in reported:
                continue
            value = ctx.var(host, name, as_role or role)
            if value is None or isinstance(value, Deferred):
                continue
            option = {k: v for k, v in option.items() if k not in ("description", "default", "required")}
            errors = validator_factory({name: option}).validate({name: value}).error_messages
            if errors:
                message = str(errors[0])
                kind = TYPE_WORDS.get(option.get("type", "str"), (f"a {option.get('type')}",))[0]
                elements = option.get("elements")
                elements = f" of {TYPE_WORDS.get(elements, (None, f'{elements}s'))[1]}" if elements else ""
                if option.get("choices"):
                    fix = f"use one of {', '.join(map(str, option['choices']))}"
                else:
                    fix = f"it must be {kind}{elements}"
                ctx.add(name, host, value, f"{fix} (roles/{role}/meta/argument_specs.yml: {_short(message)})")
                reported.add(name)


# argument_specs types as the fix says them: (one, several as list elements).
TYPE_WORDS = {
    "int": ("an integer", "integers"),
    "str": ("a string", "strings"),
    "bool": ("a boolean (true or false)", "booleans"),
    "list": ("a list", "lists"),
    "dict": ("a mapping", "mappings"),
    "float": ("a number", "numbers"),
    "path": ("a path", "paths"),
    "raw": ("a value", "values"),
}


def _short(message: str) -> str:
    message = re.sub(r"\s+", " ", message)
    return message if len(message) <= 160 else message[:157] + "..."


# ------------------------------------------------------------------------------------------------


def run_checks(
    view: View,
    components: list[str] | None = None,
    inventory_wide: bool = True,
    contract_names: list[str] | None = None,
    validator_factory=None,
    play_hosts: list[str] | None = None,
) -> Context:
    """Run the checks of ``components`` (all by default); with ``inventory_wide`` also the groups,
    secrets, contract, port and host-reference checks that no single role can make.

    ``play_hosts`` are the hosts a role is applied to (its assert.yml passes them): they are checked
    with the component's group, so that a role applied outside its group (standalone use, a test
    play on localhost) has its inputs checked instead of passing unchecked."""
    ctx = Context(view)
    components = list(components or COMPONENTS)
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; known: {sorted(COMPONENTS)}")
    if inventory_wide:
        check_groups(ctx)
        check_secrets(ctx)
    for component in components:
        hosts = ctx.hosts(COMPONENTS[component][0])
        hosts += [h for h in play_hosts or [] if h not in hosts]
        if not hosts:
            continue
        if validator_factory is not None:
            check_argument_specs(ctx, COMPONENTS[component][1], hosts, validator_factory)
        COMPONENT_CHECKS[component](ctx, hosts)
    if inventory_wide:
        if validator_factory is not None:
            # The contract's own types (roles/platform/meta/argument_specs.yml), for the variables
            # no component's spec has reported already.
            done = {p.variable for p in ctx.problems}
            check_argument_specs(
                ctx,
                "platform",
                ctx.hosts("all"),
                validator_factory,
                entry_point="contract",
                as_role="common",
                skip=done,
            )
        # check_firewall resolves the ports first when it runs; they are not resolved twice.
        if not ctx.listeners:
            check_ports(ctx)
        check_scrape_targets(ctx)
        check_host_references(ctx)
        if contract_names:
            check_contract(ctx, contract_names)
    ctx.problems = _merge_problems(ctx.problems)
    return ctx


def _merge_problems(problems: list[Problem]) -> list[Problem]:
    """One line per problem: the same variable, place and value found by two checks (a role's
    argument spec and a component check, or two components) is one line; fixes that say more
    than another replace it, different fixes are joined."""
    merged: dict[tuple[str, str, str], list[str]] = {}
    for p in problems:
        fixes = merged.setdefault((p.variable, p.where, p.value), [])
        if any(p.fix in fix for fix in fixes):
            continue
        fixes[:] = [fix for fix in fixes if fix not in p.fix] + [p.fix]
    return [Problem(variable, where, value, "; and ".join(fixes)) for (variable, where, value), fixes in merged.items()]
