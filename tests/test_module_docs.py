"""Every module of the chplatform.platform collection: its documentation, with the shared fragments
(plugins/doc_fragments/), names exactly the options its argument spec accepts.

The documented options come from `ansible-doc --json`; the accepted ones from the module itself,
called with its required options and one unknown option, which AnsibleModule refuses by listing
every parameter it supports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, ansible_env

COLLECTION = ROOT / "collections/ansible_collections/chplatform/platform"
MODULES = sorted(f"chplatform.platform.{p.stem}" for p in (COLLECTION / "plugins/modules").glob("*.py"))
ANSIBLE = Path(sys.executable).parent  # the venv that runs pytest has ansible
# Options a module requires beyond `required` (its required_if rules at their defaults, one of
# its required_one_of).
CONDITIONALLY_REQUIRED = {"chplatform.platform.minio_user": ["secret_key"], "chplatform.platform.file_set": ["probe"]}


def documented_options(module: str) -> dict:
    out = subprocess.run(
        [str(ANSIBLE / "ansible-doc"), "--json", "-t", "module", module],
        cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)[module]["doc"]["options"]


def accepted_options(module: str, required: dict[str, str]) -> set[str]:
    """``required`` maps each required option to its documented type; each gets an empty value of it."""
    empty = {"list": [], "dict": {}}
    values = {name: empty.get(kind, "x") for name, kind in required.items()}
    args = json.dumps({**values, "chplatform_unknown_option": 1})
    out = subprocess.run(
        [str(ANSIBLE / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
         "-e", f"ansible_python_interpreter={sys.executable}", "-m", module, "-a", args],
        cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    found = re.search(r"Supported parameters include: ([^\"\n]+)", out.stdout)
    assert found, f"{module} did not refuse an unknown option:\n{out.stdout[-1500:]}"
    # Aliases are listed as "name (alias)"; keep the names.
    return {re.sub(r"\s*\(.*\)$", "", p.strip()) for p in found.group(1).rstrip(".").split(",")}


@pytest.mark.parametrize("module", MODULES)
def test_documented_options_are_the_accepted_ones(module: str) -> None:
    doc = documented_options(module)
    required = {name: spec.get("type", "str") for name, spec in doc.items() if spec.get("required")}
    required.update({name: doc[name].get("type", "str") for name in CONDITIONALLY_REQUIRED.get(module, [])})
    accepted = accepted_options(module, required)
    assert set(doc) == accepted, (
        f"{module}: documented but not accepted {sorted(set(doc) - accepted)}, "
        f"accepted but not documented {sorted(accepted - set(doc))}"
    )
