#!/usr/bin/env python3
"""Where a `bin/test` run spent its time: the stage table it printed, then each molecule scenario
split into its actions (create, prepare, converge, idempotence, verify, destroy).

    bin/test 2>&1 | tee run.log; bench/ci_phases.py run.log

Action times come from the profile_tasks timestamps inside each action (the first and the last
task), so an action without Ansible tasks (verify, which runs pytest) is timed from the end of the
action before it to the start of the one after it. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STAGE = re.compile(r"######## (.*)")
ACTION = re.compile(r"➜ (\w+): Executing$")
STAMP = re.compile(r"\w+day \d+ \w+ \d{4}\s+(\d\d:\d\d:\d\d)")
ROW = re.compile(r"^(.{44}) +(\d+)  (passed|FAILED.*)$")


def main(path: str) -> None:
    lines = ANSI.sub("", Path(path).read_text(errors="replace")).splitlines()
    print("stage table")
    for line in lines:
        if ROW.match(line) or line.startswith(("stage ", "total ", "stages:")):
            print("  " + line)
    # (scenario, action, first stamp, last stamp)
    spans: list[list] = []
    stage = None
    for line in lines:
        if m := STAGE.search(line):
            stage = m.group(1)
            continue
        if (m := ACTION.search(line)) and stage and stage.startswith("molecule"):
            spans.append([stage, m.group(1), None, None])
            continue
        if (m := STAMP.search(line)) and spans and spans[-1][0] == stage:
            t = datetime.strptime(m.group(1), "%H:%M:%S")
            spans[-1][2] = spans[-1][2] or t
            spans[-1][3] = t
    print("\nmolecule actions (seconds)")
    for i, (scenario, action, first, last) in enumerate(spans):
        if first is None:
            # No task ran inside (verify): from the previous action's end to the next one's start.
            prev = spans[i - 1] if i and spans[i - 1][0] == scenario else None
            nxt = spans[i + 1] if i + 1 < len(spans) and spans[i + 1][0] == scenario else None
            if prev and nxt and prev[3] and nxt[2]:
                print(f"  {scenario:40s} {action:12s} {(nxt[2] - prev[3]).total_seconds():6.0f}")
            continue
        print(f"  {scenario:40s} {action:12s} {(last - first).total_seconds():6.0f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench/ci_phases.py LOG  (the output of bin/test)")
    main(sys.argv[1])
