"""Quotes from an HTTP JSON API (URL in the Variable chplatform_api_quotes_url) into ext.api_quotes.

The API answers {"quotes": [{"id", "quote", "author", "tags"?}, ...]}. Loading a quote again
replaces it (ReplacingMergeTree); OPTIMIZE ... FINAL then removes the older versions.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from airflow.exceptions import AirflowFailException
from airflow.sdk import Variable, dag, task
from chplatform_common.checks import require
from chplatform_common.clickhouse import ch_client, ch_command, ch_scalar
from chplatform_common.defaults import DAG_KWARGS
from chplatform_common.quotes import parse_quotes
from chplatform_common.sql import API_QUOTES_COLUMNS, duplicates_sql, optimize_final_sql

log = logging.getLogger(__name__)
URL_VARIABLE = "chplatform_api_quotes_url"


@dag(dag_id="api_to_ext", schedule="@daily", doc_md=__doc__, **DAG_KWARGS)
def api_to_ext() -> None:
    @task
    def check_prerequisites() -> None:
        require(connections=["clickhouse_default"], variables=[URL_VARIABLE])

    @task
    def fetch() -> list[list[Any]]:
        url = Variable.get(URL_VARIABLE)
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - URL from a Variable
            payload = json.load(response)
        try:
            rows = parse_quotes(payload, source=url)
        except ValueError as exc:
            raise AirflowFailException(f"bad data from {url}: {exc}") from exc
        log.info("fetched %d quotes from %s", len(rows), url)
        return rows

    @task
    def load(rows: list[list[Any]]) -> int:
        client = ch_client()
        client.insert("ext.api_quotes", rows, column_names=API_QUOTES_COLUMNS)
        ch_command(client, optimize_final_sql("ext.api_quotes"))
        dups = int(ch_scalar(client, duplicates_sql("ext.api_quotes", "quote_id")))
        total = int(ch_scalar(client, "SELECT count() FROM ext.api_quotes FINAL"))
        log.info("inserted %d quotes; ext.api_quotes now has %d", len(rows), total)
        if dups:
            raise AirflowFailException(f"ext.api_quotes has {dups} duplicated quote_id after OPTIMIZE FINAL")
        return total

    data = fetch()
    check_prerequisites() >> data
    load(data)


api_to_ext()
