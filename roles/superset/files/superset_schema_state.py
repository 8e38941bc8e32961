"""Print, as JSON, the installed Superset version and the metadata database's alembic revision(s),
with what the stamp (argv[1]) recorded after the last check that found the schema at head.

With --record (after `superset db current` found the schema at head, or `superset db upgrade`
brought it there), write the current state to the stamp instead (atomically, mode 0640) and print
{"current": ..., "written": true when the stamp changed}.

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
    record = "--record" in sys.argv[1:]
    stamp = next(a for a in sys.argv[1:] if a != "--record")
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
    if not record:
        print(json.dumps({"current": current, "recorded": recorded}))
        return 0
    if recorded != current:
        tmp = f"{stamp}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640), "w", encoding="utf-8") as f:
            json.dump(current, f, indent=4, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o640)
        os.replace(tmp, stamp)
    print(json.dumps({"current": current, "written": recorded != current}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
