"""Shared helpers of the platform's DAGs: prerequisites (checks), ClickHouse access (clickhouse),
SQL builders (sql) and backup names/retention (backups), both importable without Airflow,
DAG defaults (defaults).

No hosts or credentials here: everything comes from Airflow connections and variables.
"""
