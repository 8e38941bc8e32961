"""Validation of the quotes API answer (importable without Airflow, for tests)."""

from __future__ import annotations

from typing import Any


def parse_quotes(payload: Any, source: str) -> list[list[Any]]:
    """Validate the API answer and turn it into rows; raise ValueError on bad data."""
    if not isinstance(payload, dict) or not isinstance(payload.get("quotes"), list):
        raise ValueError('expected a JSON object with a "quotes" list')
    rows = []
    for i, item in enumerate(payload["quotes"]):
        if not isinstance(item, dict):
            raise ValueError(f"quote #{i} is not an object")
        qid, text, author = item.get("id"), item.get("quote"), item.get("author")
        if not isinstance(qid, int) or qid <= 0:
            raise ValueError(f"quote #{i} has no positive integer id: {qid!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"quote {qid} has an empty text")
        if not isinstance(author, str) or not author.strip():
            raise ValueError(f"quote {qid} has no author")
        tags = item.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError(f"quote {qid} has tags that are not a list of strings")
        rows.append([qid, text.strip(), author.strip(), tags, source])
    if not rows:
        raise ValueError("the API returned no quotes")
    return rows
