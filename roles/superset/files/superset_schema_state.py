"""Print, as JSON, the installed Superset version and the metadata database's alembic revision(s),
with what the stamp (argv[1]) recorded after the last check that found the schema at head.

It imports neither Superset nor Flask (a fraction of a second, where `superset db current` takes
several): the role skips `superset db current` when nothing changed since the stamp was written.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys

from sqlalchemy import create_engine, inspect, text


def main() -> int:
    stamp = sys.argv[1]
    spec = importlib.util.spec_from_file_location("superset_config", os.environ["SUPERSET_CONFIG_PATH"])
    config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config)
    engine = create_engine(config.SQLALCHEMY_DATABASE_URI)
    with engine.connect() as conn:
        revisions = (
            sorted(row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version")))
            if inspect(conn).has_table("alembic_version")
            else []
        )
    engine.dispose()
    current = {"superset": importlib.metadata.version("apache-superset"), "revisions": revisions}
    recorded = None
    if os.path.exists(stamp):
        with open(stamp, encoding="utf-8") as f:
            recorded = json.load(f)
    print(json.dumps({"current": current, "recorded": recorded}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
