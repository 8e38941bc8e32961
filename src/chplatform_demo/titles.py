"""A small synthetic titles catalogue with the columns of the Netflix titles CSV that file_to_ext loads."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from pathlib import Path

COLUMNS = [
    "show_id", "type", "title", "director", "cast", "country", "date_added",
    "release_year", "rating", "duration", "listed_in", "description",
]  # fmt: skip
_WORDS = ["River", "Night", "Harbor", "Signal", "Orchard", "Glass", "Winter", "Atlas", "Echo", "Lantern", "Meridian"]
_PEOPLE = ["A. Moreau", "B. Okafor", "C. Lindqvist", "D. Tanaka", "E. Alvarez", "F. Novak", "G. Haddad", "H. Kim"]
_COUNTRIES = ["United States", "India", "United Kingdom", "Japan", "France", "Brazil", "Nigeria", "Germany"]
_RATINGS = ["G", "PG", "PG-13", "R", "TV-14", "TV-MA", "TV-PG"]
_GENRES = ["Dramas", "Comedies", "Documentaries", "International Movies", "Thrillers", "Kids' TV", "Docuseries"]


def generate(rows: int = 500, seed: int = 1) -> list[dict[str, str]]:
    """``rows`` titles, the same for the same seed; some directors, casts and countries left empty as in the source."""
    if not 0 < rows <= 1_000_000:
        raise ValueError(f"rows must be between 1 and 1000000, not {rows}")
    rng = random.Random(seed)  # noqa: S311 - seeded demo data, not a secret
    out = []
    for i in range(1, rows + 1):
        movie = rng.random() < 0.7
        added = date(2016, 1, 1) + timedelta(days=rng.randrange(0, 3650))
        out.append({
            "show_id": f"s{i}",
            "type": "Movie" if movie else "TV Show",
            "title": " ".join(rng.sample(_WORDS, 2)) + f" {i}",
            "director": rng.choice(_PEOPLE) if movie and rng.random() < 0.8 else "",
            "cast": ", ".join(rng.sample(_PEOPLE, 3)) if rng.random() < 0.9 else "",
            "country": rng.choice(_COUNTRIES) if rng.random() < 0.9 else "",
            "date_added": added.strftime("%B %-d, %Y"),
            "release_year": str(rng.randint(1960, added.year)),
            "rating": rng.choice(_RATINGS),
            "duration": f"{rng.randint(70, 160)} min" if movie else f"{rng.randint(1, 6)} Seasons",
            "listed_in": ", ".join(rng.sample(_GENRES, 2)),
            "description": f"A synthetic title number {i} of the chplatform demo catalogue.",
        })  # fmt: skip
    return out


def to_csv(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def write_csv(rows: list[dict[str, str]], path: Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(to_csv(rows))
    tmp.replace(path)
    return path
