"""Ask Superset's own query layer for the data of every chart of the given dashboards.

Run on the Superset host with Superset's virtualenv, as the superset user, with its configuration
(SUPERSET_CONFIG_PATH): chart_rows.py TITLE [TITLE ...]. Prints one JSON line:
[{"dashboard", "chart", "rows", "error"}]: rows returned (at most 10 asked for), or the first line
of the error the chart's database gave. The query is built from the chart's saved parameters by
the dataset's own query builder, as Superset builds it for a dashboard (metrics, group-by, x-axis).
"""

from __future__ import annotations

import json
import re
import sys


def query_object(params: dict) -> dict:
    metrics = params.get("metrics") or ([params["metric"]] if params.get("metric") else [])
    columns = [c for c in (params.get("groupby") or []) + (params.get("all_columns") or []) if isinstance(c, str)]
    if isinstance(params.get("x_axis"), str) and params["x_axis"] not in columns:
        columns.insert(0, params["x_axis"])
    return {
        "metrics": metrics,
        "columns": columns,
        "row_limit": 10,
        "filter": [],
        "extras": {},
        "is_timeseries": False,
        "granularity": None,
        "from_dttm": None,
        "to_dttm": None,
    }


def reason(error: str | None) -> str | None:
    """The error's cause in a few words: "replica01:8123: Connection refused" for an unreachable
    database (the driver's message nests it deep), else its first line."""
    if not error:
        return None
    where = re.search(r"host='([^']+)', port=(\d+)", error)
    why = re.search(r"\[Errno -?\d+\] ([^'\")]+)", error)
    if where and why:
        return f"{where[1]}:{where[2]}: {why[1].strip()}"
    return error.strip().splitlines()[0]


def main() -> None:
    from superset.app import create_app

    app = create_app()
    out = []
    with app.app_context():
        from superset.extensions import db
        from superset.models.dashboard import Dashboard

        for title in sys.argv[1:]:
            dashboard = db.session.query(Dashboard).filter_by(dashboard_title=title).one_or_none()
            if dashboard is None:
                out.append({"dashboard": title, "chart": None, "rows": 0, "error": "no such dashboard"})
                continue
            for chart in sorted(dashboard.slices, key=lambda c: c.slice_name):
                try:
                    result = chart.datasource.query(query_object(json.loads(chart.params or "{}")))
                    rows = 0 if result.df is None else len(result.df)
                    error = result.error_message
                except Exception as exc:  # the chart's failure is the answer, whatever it is
                    rows, error = 0, str(exc)
                out.append({"dashboard": title, "chart": chart.slice_name, "rows": rows, "error": reason(error)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
