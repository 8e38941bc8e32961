# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The components a run applies (chplatform_components), read once for every playbook."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: components
short_description: The components a run applies, from chplatform_components
description:
  - Reads C(chplatform_components) as playbooks/upgrade.yml and playbooks/services.yml take it (C(all),
    a comma-separated string or a list) and returns the list of component names, in the order the
    playbooks apply them; C(all) is every one.
  - An unknown name fails, naming the known ones, before any host is touched.
  - The names are the component playbooks' (playbooks/<name>.yml) and validate_inventory's.
positional: _input
options:
  _input:
    description: C(all), C(kafka,minio) or a list of names.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Leave Kafka alone in a run for other components
  ansible.builtin.meta: end_play
  when: "'kafka' not in (chplatform_components | default('all') | chplatform.platform.components)"
"""

RETURN = r"""
_value:
  description: The component names, in the order the playbooks apply them.
  type: list
  elements: str
"""

# The order of site.yml and services.yml: Keeper before the ClickHouse servers that need it.
KNOWN = ["minio", "postgresql", "kafka", "clickhouse_keeper", "clickhouse", "airflow", "superset", "monitoring"]


def components(value) -> list[str]:
    if value is None or value == "all" or value == ["all"]:
        return list(KNOWN)
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else [str(n).strip() for n in value]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in KNOWN]
    if unknown or not names:
        raise AnsibleFilterError(
            f"chplatform_components names {', '.join(unknown) or 'nothing'}: use all, or some of "
            f"{', '.join(KNOWN)} (comma-separated), e.g. -e chplatform_components=kafka"
        )
    return [n for n in KNOWN if n in names]


class FilterModule:
    def filters(self):
        return {"components": components}
