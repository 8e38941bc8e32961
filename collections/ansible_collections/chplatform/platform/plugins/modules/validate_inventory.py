#!/usr/bin/python
# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the validate_inventory action (plugins/action/validate_inventory.py): it runs
on the controller only, so there is no module code here."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate_inventory
short_description: Check the whole inventory on the controller before any host is touched
description:
  - Resolves every host's variables as its role will see them (platform contract, role defaults,
    inventory, role vars) and runs the platform's checks on them, on the controller only.
  - Reports every problem at once, one line each (variable, host or group, value, fix); secrets are
    never shown, only their length.
  - playbooks/validate.yml runs all checks; each role's tasks/assert.yml runs its own component's,
    for the hosts of the component's group and the hosts the play applies the role to.
  - The types of a role's inputs come from its meta/argument_specs.yml; with I(inventory_wide), the
    contract's from roles/platform/meta/argument_specs.yml (entry point C(contract)).
options:
  components:
    description: Components to check (default all); see inventory_checks.COMPONENTS.
    type: list
    elements: str
  inventory_wide:
    description:
      - Also run the checks no single role can make (required groups, secrets, contract
        consistency, port collisions, host references).
    type: bool
    default: true
author: chplatform
"""

EXAMPLES = r"""
- name: Check the whole inventory before any host is touched
  chplatform.platform.validate_inventory:

- name: Check this role's inputs (standalone use of a role)
  chplatform.platform.validate_inventory:
    components: [kafka]
    inventory_wide: false
  run_once: true
"""

RETURN = r"""
problems:
  description: One line per problem (variable, host or group, value, fix).
  returned: always
  type: list
  elements: str
deferred:
  description: Variables that need the hosts' facts and are checked by the roles instead.
  returned: always
  type: list
  elements: str
ports:
  description: The ports each host's services listen on, from the inventory (inventory-wide checks only).
  returned: always
  type: dict
  sample: {pg01: {"5432": ["postgresql (postgresql_port)"]}}
checked:
  description: The components checked.
  returned: always
  type: list
  elements: str
"""
