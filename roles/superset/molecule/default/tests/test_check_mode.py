"""`converge.yml --check --diff` on the converged superset scenario: nothing to change, no secret printed."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests"))

from converge_check import check_diff_is_clean


def test_check_diff_on_converged_hosts_changes_nothing() -> None:
    check_diff_is_clean()
