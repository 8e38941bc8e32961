"""The replicated rendering's DDL executes in the real engine against a coordination service.

chdb (ClickHouse 26.9 as a library) is configured with ``<zookeeper><implementation>testkeeper``
and the server's macros; every ReplicatedMergeTree table then registers in the coordination
service under /clickhouse/tables/{shard}/{database}/{table}. What chdb cannot execute is named:

- the ``ON CLUSTER`` clause: chdb refuses distributed DDL ("Replicated DDL queries are
  disabled"). The per-host rendering (the role's default) has none; the on-cluster rendering is
  the same text plus the clause (checked in test_init_db_syntax.py), so the per-host rendering
  is what runs here;
- the Kafka engine table: chdb has no message-broker schedule pool (background_message_broker_
  schedule_pool_size is 0 and not configurable), so creating it raises "Shutdown was called";
  it is replaced by a Null-engine stand-in with the same columns (tests.services.kafka_standin)
  so that the materialized view reading it is created unchanged;
- INSERT into a replicated table: the chdb replica stays read-only (inserts hang);
- RBAC statements: chdb has no writable access storage.
Those statements are still parsed by ClickHouse's parser (test_init_db_syntax.py).

Runs in a subprocess: chdb aborts at interpreter exit once replicated tables hold testkeeper
sessions, which would otherwise take pytest down with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path[:0] = [{root!r}, {root!r} + "/collections"]
    from pathlib import Path
    from ansible_collections.chplatform.platform.plugins.module_utils.clickhouse_migrations import load_migrations
    from tests.services import ChdbExecutor, chdb_connect, render_init_db, is_rbac, kafka_standin
    work = Path({work!r})
    config = '''<clickhouse>
      <zookeeper><implementation>testkeeper</implementation></zookeeper>
      <macros><shard>01</shard><replica>replica01</replica><cluster>main</cluster></macros>
      <storage_configuration>
        <disks><cold><type>local</type><path>{work}/cold/</path></cold></disks>
        <policies><tiered><volumes><hot><disk>default</disk></hot><cold><disk>cold</disk></cold></volumes></tiered></policies>
      </storage_configuration>
      <named_collections>
        <pg_prod><host>127.0.0.1</host><port>5432</port><user>u</user><password>p</password><database>prod</database></pg_prod>
        <pg_airflow><host>127.0.0.1</host><port>5432</port><user>u</user><password>p</password><database>airflow</database></pg_airflow>
      </named_collections>
    </clickhouse>'''
    ex = ChdbExecutor(chdb_connect(work, config), rewrite=kafka_standin)
    out = {{"executed": 0, "failed": [], "not_run": []}}
    for m in load_migrations(str(render_init_db(work / "sql", "replicated"))):
        for st in m.statements:
            if is_rbac(st.text) or st.text.startswith("INSERT"):
                out["not_run"].append(f"{{m.name}}:{{st.number}}")
                continue
            try:
                ex.execute(st.text)
                out["executed"] += 1
            except Exception as exc:
                out["failed"].append(f"{{m.name}} statement {{st.number}} ({{st.first_line}}): {{str(exc)[:300]}}")
    out["replicas"] = ex.execute(
        "SELECT database || '.' || table, zookeeper_path, replica_name, total_replicas FROM system.replicas ORDER BY 1")
    out["engines"] = dict((d + "." + t, e) for d, t, e in ex.execute(
        "SELECT database, name, engine FROM system.tables WHERE database IN "
        "('streams','raw','parsed','dict','airflow_metadata','ext','prod','datamart','dashboard')"))
    print("RESULT " + json.dumps(out, default=str))
    sys.stdout.flush()
    os._exit(0)
    """
)


def test_replicated_rendering_executes_against_testkeeper(tmp_path):
    script = SCRIPT.format(root=str(ROOT), work=str(tmp_path))
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=240, env=dict(os.environ)
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"the chdb subprocess died (rc {r.returncode}):\n{r.stderr[-3000:]}"
    out = json.loads(lines[-1].removeprefix("RESULT "))
    assert out["failed"] == [], "\n".join(out["failed"])
    assert out["executed"] >= 35
    # total_replicas is read from the coordination service: 1 means the replica registered there.
    assert all(total == 1 for *_, total in out["replicas"]), out["replicas"]
    replicas = {name: (path, replica) for name, path, replica, _ in out["replicas"]}
    assert replicas["raw.sensor_data"] == ("/clickhouse/tables/01/raw/sensor_data", "replica01")
    assert replicas["parsed.sensor_data"] == ("/clickhouse/tables/01/parsed/sensor_data", "replica01")
    assert replicas["datamart.trips"][0] == "/clickhouse/tables/01/datamart/trips"
    assert out["engines"]["parsed.sensor_data"] == "ReplicatedReplacingMergeTree"
    assert out["engines"]["airflow_metadata.dag_run"] == "PostgreSQL"
    assert out["engines"]["dict.zones"] == "Dictionary"
    assert out["engines"]["streams.sensor_data_to_raw"] == "MaterializedView"
    # Every MergeTree-family table of the rendering is replicated.
    plain = [t for t, e in out["engines"].items() if e.endswith("MergeTree") and not e.startswith("Replicated")]
    assert plain == [], plain
