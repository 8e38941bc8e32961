#!/usr/bin/python
"""Ansible module: write a set of files, each with its content, mode and owner, in one call."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: file_set
short_description: Write a set of files with their content, mode and owner in one module call
description:
  - Compares each file of O(files) with the destination (SHA-256 of the content, mode, owner and
    group) and writes only those that differ. A file whose content matches but whose mode or
    owner does not gets only its attributes fixed.
  - Each file is written atomically - a temporary file in the destination's directory, with its
    mode and owner set and O(files[].validate) passed, then renamed over the destination - so a
    reader never sees a half-written file and a file that fails validation is never installed.
  - One call replaces a loop of M(ansible.builtin.copy), which costs several round trips per
    file; for a tree of dozens of rendered files (dashboards, DAGs, configuration drop-ins) that
    is the difference between seconds and half a minute per host.
  - The parent directories must exist; the module does not create them (their modes and owners
    belong to the role).
  - Supports check mode and diff mode (one diff per file written, text files up to 256 KiB).
  - With O(probe) instead, only reads the state of the paths given (nothing is sent but their
    names); the caller compares it with what it would write and sends only the files that differ.
version_added: "1.1.0"
author: chplatform
options:
  probe:
    description:
      - Paths whose state to read and return in RV(state); nothing is written. Exclusive with O(files).
    type: list
    elements: path
  files:
    description: The files to write. Exclusive with O(probe); one of the two is required.
    type: list
    elements: dict
    suboptions:
      dest:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: The whole content of the file (text).
        type: str
        required: true
      mode:
        description: Octal mode as a string, for example C("0644").
        type: str
        required: true
      owner:
        description: Owner's user name.
        type: str
        required: true
      group:
        description: Group name.
        type: str
        required: true
      validate:
        description:
          - Command run on the temporary file before it replaces the destination; C(%s) is the
            temporary file's path. A non-zero exit fails the module and leaves the destination
            as it was.
        type: str
"""

EXAMPLES = r"""
- name: Write the rendered configuration files
  chplatform.platform.file_set:
    files:
      - dest: /etc/clickhouse-server/config.d/10-cluster.xml
        content: "{{ lookup('ansible.builtin.template', 'cluster.xml.j2') }}"
        mode: "0640"
        owner: root
        group: clickhouse
        validate: xmllint --noout %s
"""

RETURN = r"""
written:
  description: Destinations whose content or attributes were (in check mode, would be) changed, in the order given.
  returned: with O(files)
  type: list
  elements: str
state:
  description: Each probed path's [sha256, mode, owner, group], or null when it does not exist.
  returned: with O(probe)
  type: dict
"""

DIFF_LIMIT = 256 * 1024


def current_state(path):
    """(sha256, mode, owner, group, bytes or None) of a file, or None when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    with open(path, "rb") as f:
        data = f.read()
    return (
        hashlib.sha256(data).hexdigest(),
        "%04o" % (st.st_mode & 0o7777),
        pwd.getpwuid(st.st_uid).pw_name,
        grp.getgrgid(st.st_gid).gr_name,
        data,
    )


def as_text(data):
    if data is None:
        return ""
    if len(data) > DIFF_LIMIT:
        return f"({len(data)} bytes, too large to show)\n"
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(data)} bytes of binary content)\n"


def ids(module, owner, group):
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        module.fail_json(msg=f"file_set: no user {owner!r} on this host; create it before writing files it owns")
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        module.fail_json(msg=f"file_set: no group {group!r} on this host; create it before writing files it owns")
    return uid, gid


def write(module, spec, data, mode, uid, gid):
    dest = spec["dest"]
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        module.fail_json(
            msg=f"file_set: the directory {directory} of {dest} does not exist; the role must create it first"
        )
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        if spec.get("validate"):
            if "%s" not in spec["validate"]:
                module.fail_json(msg=f"file_set: validate for {dest} must contain %s (the file to check)")
            cmd = spec["validate"].replace("%s", tmp)
            proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)  # noqa: S602 - the role's own validate command, as copy's validate runs it
            if proc.returncode != 0:
                module.fail_json(
                    msg="file_set: {} failed validation ({}), left unchanged".format(dest, spec["validate"]),
                    rc=proc.returncode,
                    stdout=proc.stdout,
                    stderr=proc.stderr,
                )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(
        argument_spec={
            "probe": {"type": "list", "elements": "path"},
            "files": {
                "type": "list",
                "elements": "dict",
                "options": {
                    "dest": {"type": "path", "required": True},
                    "content": {"type": "str", "required": True},
                    "mode": {"type": "str", "required": True},
                    "owner": {"type": "str", "required": True},
                    "group": {"type": "str", "required": True},
                    "validate": {"type": "str"},
                },
            },
        },
        mutually_exclusive=[("probe", "files")],
        required_one_of=[("probe", "files")],
        supports_check_mode=True,
    )
    if module.params["probe"] is not None:
        state = {}
        for path in module.params["probe"]:
            have = current_state(path)
            state[path] = list(have[:4]) if have else None
        module.exit_json(changed=False, state=state)
    written, diffs = [], []
    for spec in module.params["files"]:
        dest = spec["dest"]
        data = spec["content"].encode("utf-8")
        try:
            mode = int(spec["mode"], 8)
        except ValueError:
            module.fail_json(
                msg='file_set: mode {!r} of {} is not an octal string such as "0644"'.format(spec["mode"], dest)
            )
        want = (hashlib.sha256(data).hexdigest(), f"{mode:04o}", spec["owner"], spec["group"])
        have = current_state(dest)
        if have is not None and have[:4] == want:
            continue
        written.append(dest)
        if module._diff:
            before = as_text(have[4]) if have else ""
            diff = {"before_header": dest, "after_header": dest, "before": before, "after": as_text(data)}
            if have and have[1:4] != want[1:4]:
                diff["before_header"] += " (mode {}, {}:{})".format(*have[1:4])
                diff["after_header"] += " (mode {}, {}:{})".format(*want[1:4])
            diffs.append(diff)
        if module.check_mode:
            continue
        uid, gid = ids(module, spec["owner"], spec["group"])
        if have is not None and have[0] == want[0]:
            os.chown(dest, uid, gid)
            os.chmod(dest, mode)
        else:
            write(module, spec, data, mode, uid, gid)
    result = {"changed": bool(written), "written": written}
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
