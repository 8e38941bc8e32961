"""The Python locks of the hosts' venvs (files/bundle/python/<app>.lock) against what they must satisfy.

- every requirement of <app>.in is pinned in <app>.lock at a version it allows;
- the pinned versions satisfy the declared requirements of the application's own wheel (apache-superset
  with its clickhouse extra, apache-airflow), read from the wheel in the bundle's wheelhouse;
- Superset 6.1.0's known metadata gaps are closed by the lock (flask-caching < 2.5, rich, cachetools)."""

from __future__ import annotations

import zipfile
from email.parser import Parser

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .conftest import BUNDLE_DIR, ROOT

PYTHON = ROOT / "files" / "bundle" / "python"
# The hosts: Debian 12, CPython 3.11, x86_64 Linux.
HOST_ENV = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "linux"}
APPS = {"superset": ("apache-superset", {"clickhouse"}), "airflow": ("apache-airflow", set())}


def lock_pins(app: str) -> dict[str, Version]:
    pins = {}
    for line in (PYTHON / f"{app}.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{app}.lock: {line!r} is not an exact pin"
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def in_requirements(app: str) -> list[Requirement]:
    lines = (PYTHON / f"{app}.in").read_text().splitlines()
    return [Requirement(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip()]


@pytest.mark.parametrize("app", sorted(APPS))
def test_lock_pins_every_input_within_its_range(app: str) -> None:
    pins = lock_pins(app)
    for req in in_requirements(app):
        name = canonicalize_name(req.name)
        assert name in pins, f"{app}.in asks for {req} but {app}.lock does not pin it: re-lock (docs/DEVELOPING.md)"
        assert pins[name] in req.specifier, f"{app}.lock pins {name}=={pins[name]}, outside {req} of {app}.in"


def app_wheel_requirements(app: str) -> list[Requirement]:
    dist, _extras = APPS[app]
    wheels = sorted(BUNDLE_DIR.glob(f"wheels/{app}-*/{dist.replace('-', '_')}-*.whl"))
    if not wheels:
        pytest.skip(f"no {dist} wheel in {BUNDLE_DIR}/wheels: run bin/bundle build")
    with zipfile.ZipFile(wheels[-1]) as whl:
        (meta,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        headers = Parser().parsestr(whl.read(meta).decode())
    return [Requirement(r) for r in headers.get_all("Requires-Dist") or []]


@pytest.mark.parametrize("app", sorted(APPS))
def test_lock_satisfies_the_applications_declared_requirements(app: str) -> None:
    _dist, extras = APPS[app]
    pins = lock_pins(app)
    problems = []
    for req in app_wheel_requirements(app):
        wanted = (
            req.marker is None
            or req.marker.evaluate({**HOST_ENV, "extra": ""})
            or any(req.marker.evaluate({**HOST_ENV, "extra": extra}) for extra in extras)
        )
        if not wanted:
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req} is not pinned")
        elif req.specifier and pins[name] not in req.specifier:
            problems.append(f"{name}=={pins[name]} is outside {req.specifier}")
    assert not problems, f"{app}.lock against its application's metadata: {problems}"


def test_superset_lock_closes_the_known_metadata_gaps() -> None:
    pins = lock_pins("superset")
    assert pins["flask-caching"] < Version("2.5"), "flask-caching 2.5 breaks Superset 6.1.0 (apache/superset#43860)"
    for imported_not_declared in ("rich", "cachetools"):
        assert imported_not_declared in pins, f"Superset 6.1.0 imports {imported_not_declared}; the lock must pin it"
