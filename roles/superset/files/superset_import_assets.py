"""Import a Superset export bundle (dashboards as code) through the REST API, idempotently.

Installed by the superset role and run with the venv's Python. The bundle is a directory
(metadata.yaml, databases/, datasets/, charts/, dashboards/); it is zipped in memory and sent to
``POST /api/v1/assets/import/`` (which overwrites every object it names, matched by UUID), with
the database passwords as the ``passwords`` mapping, so they are never written into a file.

Nothing is imported when the digest of the bundle (and passwords) equals the one recorded in the
stamp file AND every UUID of the bundle is present in ``GET /api/v1/assets/export/``.

Credentials come from a JSON file readable by root only (--credentials):
{"username": ..., "password": ..., "passwords": {"databases/<name>.yaml": "<password>"}}.
Prints one JSON line: {"changed": bool, "imported": [...], "missing": [...]}; exits 1 on error.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import requests
import yaml

KINDS = ("databases", "datasets", "charts", "dashboards")


def bundle_files(root: Path) -> dict[str, bytes]:
    """Every YAML file of the bundle, keyed by its path relative to the bundle root."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.yaml")) if path.is_file()}


def bundle_uuids(files: dict[str, bytes]) -> set[tuple[str, str]]:
    """(kind, uuid) of every object of the bundle."""
    found = set()
    for name, content in files.items():
        kind = name.split("/", 1)[0]
        if kind in KINDS:
            found.add((kind, str(yaml.safe_load(content)["uuid"])))
    return found


def digest(files: dict[str, bytes], passwords: dict[str, str]) -> str:
    sha = hashlib.sha256()
    for name, content in sorted(files.items()):
        sha.update(name.encode() + b"\0" + content + b"\0")
    sha.update(json.dumps(passwords, sort_keys=True).encode())
    return sha.hexdigest()


def make_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in sorted(files.items()):
            archive.writestr(f"bundle/{name}", content)
    return buf.getvalue()


class Superset:
    def __init__(self, url: str, user: str, password: str, timeout: int) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        resp = self.session.post(
            f"{self.url}/api/v1/security/login",
            json={"username": user, "password": password, "provider": "db", "refresh": False},
            timeout=timeout,
        )
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def present_uuids(self) -> set[tuple[str, str]]:
        """(kind, uuid) of every object Superset holds, from a full export of the assets."""
        resp = self.session.get(f"{self.url}/api/v1/assets/export/", timeout=self.timeout)
        resp.raise_for_status()
        found = set()
        with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
            for name in archive.namelist():
                parts = name.split("/")
                if len(parts) > 2 and parts[1] in KINDS and name.endswith(".yaml"):
                    found.add((parts[1], str(yaml.safe_load(archive.read(name))["uuid"])))
        return found

    def import_bundle(self, data: bytes, passwords: dict[str, str]) -> None:
        # The API is CSRF-protected: fetch a token (it binds to the session cookie).
        resp = self.session.get(f"{self.url}/api/v1/security/csrf_token/", timeout=self.timeout)
        resp.raise_for_status()
        # The session cookie is Secure in production: send it explicitly even over plain HTTP to
        # the local port (requests would withhold it).
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        resp = requests.post(
            f"{self.url}/api/v1/assets/import/",
            files={"bundle": ("bundle.zip", data, "application/zip")},
            data={"passwords": json.dumps(passwords)},
            headers={
                "Authorization": self.session.headers["Authorization"],
                "X-CSRFToken": resp.json()["result"],
                "Referer": self.url,
                "Cookie": cookie,
            },
            timeout=self.timeout,
        )
        if resp.status_code != 200:
            raise RuntimeError(f"import failed: HTTP {resp.status_code}: {resp.text[:2000]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8088")
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--stamp", type=Path, required=True)
    parser.add_argument("--credentials", type=Path, required=True)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--check", action="store_true", help="report what would change, change nothing")
    args = parser.parse_args()

    credentials = json.loads(args.credentials.read_text())
    passwords = credentials.get("passwords", {})
    files = bundle_files(args.bundle)
    wanted = bundle_uuids(files)
    new_digest = digest(files, passwords)
    old_digest = args.stamp.read_text().strip() if args.stamp.exists() else ""

    api = Superset(args.url, credentials["username"], credentials["password"], args.timeout)
    missing = sorted(wanted - api.present_uuids())
    if new_digest == old_digest and not missing:
        print(json.dumps({"changed": False, "imported": [], "missing": []}))
        return 0
    if args.check:
        print(json.dumps({"changed": True, "imported": [], "missing": [list(m) for m in missing]}))
        return 0

    api.import_bundle(make_zip(files), passwords)
    still_missing = sorted(wanted - api.present_uuids())
    if still_missing:
        print(json.dumps({"changed": True, "error": "objects missing after import", "missing": still_missing}))
        return 1
    args.stamp.write_text(new_digest + "\n")
    print(json.dumps({"changed": True, "imported": sorted(f"{k}/{u}" for k, u in wanted), "missing": []}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
