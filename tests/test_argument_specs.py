"""The roles' meta/argument_specs.yml agree with their inputs: every default documented, spec
defaults equal to the defaults files, the platform contract's variables documented once in
roles/platform (entry point `contract`) and, where a role uses one, in that role's spec too, and
no spec keeps a variable that no longer exists."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT

ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml") if p.parts[-3] != "platform")
CONTRACT = yaml.safe_load((ROOT / "roles/platform/defaults/main.yml").read_text())
CONTRACT_SPEC = yaml.safe_load((ROOT / "roles/platform/meta/argument_specs.yml").read_text())["argument_specs"]


def spec_of(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]


def defaults_of(role: str) -> dict:
    path = ROOT / "roles" / role / "defaults/main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def uncommented_text(role: str) -> str:
    """What the role's files say outside comments (tasks, handlers, vars, defaults, templates)."""
    text = []
    for sub in ("tasks", "handlers", "vars", "defaults", "templates"):
        for path in (ROOT / "roles" / role / sub).rglob("*"):
            if path.is_file():
                lines = path.read_text(errors="replace").splitlines()
                text += [line for line in lines if not line.lstrip().startswith(("#", "{#"))]
    return "\n".join(text)


def test_every_role_but_the_contract_has_a_spec():
    assert set(ROLES) == {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()} - {"platform"}


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_agree_with_the_defaults_file(role):
    spec, defaults = spec_of(role), defaults_of(role)
    for name, option in spec.items():
        if "default" not in option:
            continue
        assert name in defaults, f"roles/{role} spec gives {name} a default the role does not define" + (
            " (it is the platform contract's: say 'default from the platform contract')" if name in CONTRACT else ""
        )
        assert option["default"] == defaults[name], (
            f"roles/{role}: {name} is {defaults[name]!r}, the spec says {option['default']!r}"
        )


@pytest.mark.parametrize("role", ROLES)
def test_every_input_of_the_defaults_file_is_in_the_spec(role):
    missing = sorted(set(defaults_of(role)) - set(spec_of(role)))
    assert not missing, f"roles/{role}/meta/argument_specs.yml lacks {missing}"


@pytest.mark.parametrize("role", ROLES)
def test_the_contract_variables_a_role_uses_are_in_its_spec(role):
    spec, text = spec_of(role), uncommented_text(role)
    # A name followed by a colon is a mapping key (the firewall's firewall_clients names the port
    # variables it opens), not a use of the contract's value.
    used = [name for name in CONTRACT if re.search(rf"\b{name}\b(?!:)", text)]
    for name in used:
        assert name in spec, f"roles/{role} uses {name} of the platform contract: document it in its spec"
        description = (
            " ".join(spec[name]["description"])
            if isinstance(spec[name]["description"], list)
            else spec[name]["description"]
        )
        assert "platform contract" in description, f"roles/{role}: say that {name} comes from the platform contract"
        assert spec[name]["type"] == CONTRACT_SPEC["contract"]["options"][name]["type"], name


@pytest.mark.parametrize("role", ROLES)
def test_no_spec_keeps_a_variable_that_no_longer_exists(role):
    defaults = defaults_of(role)
    for name, option in spec_of(role).items():
        description = str(option.get("description", ""))
        # A required input (the caller passes it: web_proxy_upstream_port) has no default by design.
        assert name in defaults or name in CONTRACT or option.get("required") or "host variable" in description, (
            f"roles/{role} spec documents {name}, which neither the role's defaults nor the platform contract "
            "define (and it is not a host variable): remove it"
        )


def test_the_contract_spec_documents_and_types_every_contract_variable():
    assert "main" not in CONTRACT_SPEC, "a main entry point would make every role check every secret when it starts"
    options = CONTRACT_SPEC["contract"]["options"]
    assert set(options) == set(CONTRACT), (
        f"undocumented: {sorted(set(CONTRACT) - set(options))}, gone: {sorted(set(options) - set(CONTRACT))}"
    )
    for name, option in options.items():
        assert option.get("type"), name
        if "default" in option:
            assert option["default"] == CONTRACT[name], name
        if isinstance(CONTRACT[name], str) and "vault_" in CONTRACT[name]:
            assert option.get("no_log") is True, f"{name} is a secret: no_log: true"
