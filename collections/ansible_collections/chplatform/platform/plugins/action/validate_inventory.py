# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action chplatform.platform.validate_inventory: check the inventory on the controller.

Runs the checks of plugins/plugin_utils/inventory_checks.py against every host of the inventory,
each host's variables resolved as its role will see them (the platform contract's defaults, the
role's defaults, the inventory, the role's vars), without contacting any host. Fails with one
line per problem, all of them at once.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.chplatform.platform.plugins.plugin_utils.inventory_checks import (
    COMPONENTS,
    NotDefined,
    Unresolvable,
    run_checks,
)

FACT_NAMES = re.compile(r"^(ansible_|facts$|lab_bundle_url$)")
UNDEFINED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _uses_facts(value: Any, variables: dict[str, Any], depth: int = 4, seen: set[str] | None = None) -> bool:
    """Whether a raw value's templates use the hosts' facts, directly or through other variables."""
    seen = set() if seen is None else seen
    if isinstance(value, dict):
        return any(_uses_facts(v, variables, depth, seen) for v in value.values())
    if isinstance(value, list):
        return any(_uses_facts(v, variables, depth, seen) for v in value)
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return False
    if "ansible_facts" in value or re.search(r"\bansible_(default_ipv4|hostname|fqdn|distribution)", value):
        return True
    if depth == 0:
        return False
    for name in set(IDENTIFIER.findall(value)) - seen:
        seen.add(name)
        if name in variables and _uses_facts(variables[name], variables, depth - 1, seen):
            return True
    return False


class AnsibleView:
    """inventory_checks.View over Ansible's inventory, the roles' files and its templating."""

    def __init__(self, action: ActionBase, task_vars: dict[str, Any], current: str | None) -> None:
        self._action = action
        self._task_vars = task_vars
        self._hostvars = task_vars["hostvars"]
        self.groups = {g: list(h) for g, h in task_vars["groups"].items()}
        self._current = current
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._role_data: dict[str, tuple[dict, dict, str]] = {}
        base = task_vars.get("playbook_dir") or os.getcwd()
        self._roles_paths = [os.path.join(base, "roles"), os.path.join(base, "..", "roles"), *C.DEFAULT_ROLES_PATH]

    # -- roles' files
    def _role_dir(self, role: str) -> str | None:
        for path in self._roles_paths:
            candidate = os.path.realpath(os.path.join(path, role))
            if os.path.isdir(os.path.join(candidate, "tasks")) or os.path.isdir(os.path.join(candidate, "defaults")):
                return candidate
        return None

    def role_file(self, role: str, relpath: str) -> str | None:
        directory = self._role_dir(role)
        path = os.path.join(directory, relpath) if directory else None
        return path if path and os.path.exists(path) else None

    def load_yaml(self, path: str) -> Any:
        return self._action._loader.load_from_file(path, trusted_as_template=True)

    def path_exists(self, path: str) -> bool:
        return os.path.exists(path)

    def _role_layers(self, role: str) -> tuple[dict, dict, str]:
        """(defaults of the contract and the role, the role's vars, the role's path)."""
        if role not in self._role_data:
            directory = self._role_dir(role)
            if directory is None:
                raise AnsibleError(f"validate_inventory: role {role} not found in {self._roles_paths}")
            defaults: dict[str, Any] = {}
            for dep in ("platform", role):
                path = self.role_file(dep, "defaults/main.yml")
                defaults.update(self.load_yaml(path) or {} if path else {})
            path = self.role_file(role, "vars/main.yml")
            role_vars = (self.load_yaml(path) or {}) if path else {}
            self._role_data[role] = (defaults, role_vars, directory)
        return self._role_data[role]

    def _variables(self, host: str, role: str) -> dict[str, Any]:
        key = (host, role)
        if key not in self._cache:
            defaults, role_vars, directory = self._role_layers(role)
            inventory = dict(self._hostvars.raw_get(host))
            merged = {**defaults, **inventory, **role_vars}
            merged["hostvars"] = self._hostvars
            merged["role_path"] = directory
            merged["role_name"] = role
            self._cache[key] = merged
        return self._cache[key]

    # -- recorded state on the hosts (their local facts, when gathered in this run or cached)
    def local_fact(self, host: str, name: str) -> dict | None:
        if self._current == host:
            variables = self._task_vars
        else:
            try:
                variables = self._hostvars.raw_get(host)
            except Exception:  # a host without variables (not in the inventory): nothing recorded
                return None
        local = variables.get("ansible_local")
        if not isinstance(local, dict):
            facts = variables.get("ansible_facts")
            local = facts.get("local") if isinstance(facts, dict) else None
        value = local.get(name) if isinstance(local, dict) else None
        return dict(value) if isinstance(value, dict) else None

    # -- values
    def is_defined(self, host: str, name: str, role: str) -> bool:
        if self._current == host and name in self._task_vars:
            return True
        return name in self._variables(host, role)

    def get(self, host: str, name: str, role: str) -> Any:
        if self._current == host and name in self._task_vars:
            variables = self._task_vars
        else:
            variables = self._variables(host, role)
            if name not in variables:
                raise NotDefined(name)
        templar = self._action._templar.copy_with_new_env(available_variables=variables)
        try:
            return templar.template(variables[name])
        except AnsibleError as exc:
            message = str(exc)
            found = UNDEFINED.search(message)
            missing = found.group(1) if found else None
            # A value built from the hosts' facts (directly or through the variables it uses) is
            # known only once they are gathered: the roles check it then.
            needs_facts = bool(missing and FACT_NAMES.search(missing)) or _uses_facts(variables[name], variables)
            raise Unresolvable(message.splitlines()[0], missing=missing, needs_facts=needs_facts) from None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(
            argument_spec={
                "components": {"type": "list", "elements": "str", "choices": sorted(COMPONENTS)},
                "inventory_wide": {"type": "bool", "default": True},
            }
        )
        components = args.get("components") or list(COMPONENTS)
        inventory_wide = args["inventory_wide"]
        # Inside a role the current host's own variables are the exact ones (play vars included),
        # and the hosts the role is applied to are checked too, even outside the component's group.
        in_role = self._task._role is not None
        current = task_vars.get("inventory_hostname") if in_role else None
        play_hosts = list(task_vars.get("ansible_play_hosts_all") or []) if in_role else None
        view = AnsibleView(self, task_vars, current)
        contract_path = view.role_file("platform", "defaults/main.yml")
        contract = sorted((view.load_yaml(contract_path) or {}).keys()) if contract_path else []
        try:
            ctx = run_checks(
                view,
                components=components,
                inventory_wide=inventory_wide,
                contract_names=contract,
                validator_factory=ArgumentSpecValidator,
                play_hosts=play_hosts,
            )
        except ValueError as exc:
            return dict(result, failed=True, msg=str(exc))
        lines = [p.line() for p in ctx.problems]
        result.update(
            changed=False,
            problems=lines,
            deferred=sorted({f"{name} ({host})" for name, host in ctx.deferred}),
            ports={host: {str(p): users for p, users in sorted(ports.items())} for host, ports in ctx.ports.items()},
            # {host: [{port, component, variable}]}: what the firewall role opens (component firewall).
            listeners=ctx.listeners,
            checked=components,
        )
        if lines:
            result["failed"] = True
            result["msg"] = (
                f"The inventory has {len(lines)} problem(s); nothing was changed on any host. Fix each:\n"
                + "\n".join(f"- {line}" for line in lines)
            )
        else:
            result["msg"] = f"inventory checks passed: {', '.join(components)}"
        return result
