# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback chplatform.platform.change_summary: what a run did (or would do), per host, at the end."""

from __future__ import annotations

from dataclasses import dataclass

from ansible import constants as C
from ansible import context
from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: change_summary
type: aggregate
short_description: At the end of a run, the tasks that changed each host (or would, in check mode)
description:
  - >-
    Adds a C(CHANGE SUMMARY) section after the play recap: for every host of the run, the tasks that
    reported a change (role and task name, as in the TASK headers; handlers included), how many times
    each changed and, for a loop, how many of its items changed.
  - >-
    In check mode (C(--check), usually with C(--diff)) the same list says "would change", a preview of
    what the real run would do. A task that ran with C(check_mode=false) during a check run is marked
    so (it ran for real; in this project such tasks only read, or do their own dry run and report
    what would change). In a real run, a task forced into check mode (C(check_mode=true)) is counted apart,
    as "would change".
  - >-
    A host without changes reads "no change". A failed or unreachable host is named with the task
    that failed (the last one, when several did); tasks whose failure was ignored or rescued do not
    count as failures.
  - >-
    Only task names are printed, as the TASK headers already show them. Results, diffs and loop item
    values are never printed (they may hold secrets); a loop is shown by its counts only.
  - >-
    The summary never contains the text C(changed=) nor a line that starts with a host name and a
    colon followed by C(ok=), so that tools that parse the recap (molecule's idempotence step,
    scripts that read C(changed=N)) read the same lines as without it.
  - >-
    Enable it in C(ansible.cfg) with C(callbacks_enabled = chplatform.platform.change_summary).
version_added: "1.2.0"
author: chplatform
requirements:
  - enabled in configuration (C(callbacks_enabled))
options:
  max_tasks:
    description:
      - >-
        How many changed tasks to list per host; the rest are counted in one "and N more" line.
      - C(0) lists none (each host's counts only).
    type: int
    default: 15
    ini:
      - section: callback_change_summary
        key: max_tasks
    env:
      - name: ANSIBLE_CALLBACK_CHANGE_SUMMARY_MAX_TASKS
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = ansible.posix.profile_tasks, chplatform.platform.change_summary
# [callback_change_summary]
# max_tasks = 10
#
# ansible-playbook -i inventories/prod site.yml --check --diff   ends with, for example:
#
# CHANGE SUMMARY (check mode: the tasks below would change) *************************
# pg01.example.internal: 2 tasks would change
#   - postgresql : Write postgresql.conf
#   - postgresql : Restart PostgreSQL (handler)
# kafka01.example.internal: no change
# minio01.example.internal: UNREACHABLE at "Gathering Facts"
"""


@dataclass
class _Change:
    """One task's changes on one host, summed over its runs (a task of a role included twice, a handler
    notified in two plays)."""

    runs: int = 0  # results that reported a change
    items_changed: int = 0  # loop items that changed, over every run
    items: int = 0  # loop items, over every run that changed
    loop: bool = False


def _tasks(n: int) -> str:
    return "task" if n == 1 else "tasks"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "chplatform.platform.change_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The name each task had in its TASK header (templated with the play's variables, never with a
        # loop item), by task uuid: (role, name).
        self._labels: dict[str, tuple[str, str]] = {}
        # host -> {(role, name, handler, preview): _Change}, in the order the changes happened.
        self._changes: dict[str, dict[tuple[str, str, bool, bool], _Change]] = {}
        # host -> (how, role, name) of the last failure that was not ignored.
        self._failures: dict[str, tuple[str, str, str]] = {}

    # ---- names ----------------------------------------------------------------------------------------

    @staticmethod
    def _role_name(task) -> str:
        role = getattr(task, "_role", None)
        return role.get_name(include_role_fqcn=False) if role else ""

    def _remember(self, task) -> None:
        name = (task.name or task.action or "").strip()
        self._labels[task._uuid] = (self._role_name(task), name)

    def _label(self, task) -> tuple[str, str]:
        label = self._labels.get(task._uuid)
        if label is None:
            label = (self._role_name(task), (task.name or task.action or "").strip())
        return label

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._remember(task)

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self._remember(task)

    def v2_playbook_on_cleanup_task_start(self, task) -> None:
        self._remember(task)

    # ---- results --------------------------------------------------------------------------------------

    @staticmethod
    def _run_in_check_mode() -> bool:
        return bool(context.CLIARGS.get("check", False))

    def _task_in_check_mode(self, result) -> bool:
        """Whether this result comes from a task that ran in check mode (the run's mode unless the task
        sets check_mode itself)."""
        value = result.task_fields.get("check_mode")
        return value if isinstance(value, bool) else self._run_in_check_mode()

    def v2_runner_on_ok(self, result) -> None:
        if not result.is_changed():
            return
        task = result.task
        role, name = self._label(task)
        handler = isinstance(task, Handler)
        preview = self._task_in_check_mode(result)
        host = result.host.get_name()
        change = self._changes.setdefault(host, {}).setdefault((role, name, handler, preview), _Change())
        change.runs += 1
        # Only the shape and the changed flags of a loop's results are read: never an item or a value.
        items = result.result.get("results")
        if isinstance(items, list):
            change.loop = True
            change.items += len(items)
            change.items_changed += sum(1 for item in items if isinstance(item, dict) and item.get("changed"))

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        if ignore_errors:
            return
        self._failures[result.host.get_name()] = ("FAILED", *self._label(result.task))

    def v2_runner_on_unreachable(self, result) -> None:
        self._failures[result.host.get_name()] = ("UNREACHABLE", *self._label(result.task))

    # ---- the summary ----------------------------------------------------------------------------------

    @staticmethod
    def _task_line(role: str, name: str, handler: bool, change: _Change, mode: str | None) -> str:
        line = f"{role} : {name}" if role else name
        notes = ["handler"] if handler else []
        if mode:
            notes.append(mode)
        if change.loop:
            notes.append(f"{change.items_changed} of {change.items} items")
        if change.runs > 1:
            notes.append(f"{change.runs} times")
        return f"  - {line}" + (f" ({', '.join(notes)})" if notes else "")

    def _limit(self) -> int:
        try:
            return max(int(self.get_option("max_tasks")), 0)
        except (KeyError, TypeError, ValueError):
            return 15

    def _host_line(self, host: str, stats, check: bool) -> tuple[str, str]:
        """The host's first line (what happened, in counts) and its colour."""
        changes = self._changes.get(host, {})
        # In a real run, the tasks forced into check mode changed nothing: counted apart. In a check run,
        # a task with check_mode: false is counted with the others (the line names its mode).
        previews = 0 if check else sum(1 for key in changes if key[3])
        applied = len(changes) - previews
        counts = [f"{applied} {_tasks(applied)} {'would change' if check else 'changed'}"] if applied else []
        if previews:
            counts.append(f"{previews} {_tasks(previews)} would change (check_mode: true)")
        summary = stats.summarize(host)
        if summary.get("unreachable") or summary.get("failures"):
            default = ("UNREACHABLE" if summary.get("unreachable") else "FAILED", "", "?")
            how, role, name = self._failures.get(host, default)
            task = f"{role} : {name}" if role else name
            color = C.COLOR_UNREACHABLE if how == "UNREACHABLE" else C.COLOR_ERROR
            return f'{host}: {how} at "{task}"' + (f"; before that {', '.join(counts)}" if counts else ""), color
        if counts:
            return f"{host}: {', '.join(counts)}", C.COLOR_CHANGED
        return f"{host}: no change", C.COLOR_OK

    def v2_playbook_on_stats(self, stats) -> None:
        check = self._run_in_check_mode()
        limit = self._limit()
        title = "CHANGE SUMMARY"
        if check:
            title += " (check mode: the tasks below would change)"
        self._display.banner(title)
        hosts = sorted(stats.processed.keys())
        if not hosts:
            self._display.display("no host was processed")
        for host in hosts:
            head, color = self._host_line(host, stats, check)
            self._display.display(head, color=color)
            changes = self._changes.get(host, {})
            for (role, name, handler, preview), change in list(changes.items())[:limit]:
                mode = None if preview == check else f"check_mode: {str(preview).lower()}"
                self._display.display(self._task_line(role, name, handler, change, mode), color=C.COLOR_CHANGED)
            if len(changes) > limit:
                self._display.display(f"  - and {len(changes) - limit} more", color=C.COLOR_CHANGED)
