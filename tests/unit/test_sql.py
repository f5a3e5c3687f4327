"""`lakehouse sql` output formats (the queries themselves run in tests/integration/test_analyst.py)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from lakehouse.sql import QueryError, QueryResult, render

RESULT = QueryResult(
    columns=("ward", "patients", "first_seen", "params", "note"),
    rows=(
        ("MICU", 12, datetime(2026, 11, 26, 8, 0, tzinfo=UTC), ["spo2", "heart_rate"], None),
        ("HOME", 3, date(2026, 11, 25), [], "it's, quoted"),
        ("SICU", Decimal("1.50"), None, None, "x"),
    ),
    truncated=True,
)


def test_table_format_aligns_columns_and_says_how_many_rows() -> None:
    lines = render(RESULT, "table").splitlines()
    assert lines[0].split(" | ")[0].strip() == "ward"
    assert set(lines[1]) <= {"-", "+"}
    assert lines[2].startswith("MICU | 12 ") and '["spo2", "heart_rate"]' in lines[2]
    assert "NULL" in lines[4]
    assert len({line.index("|") for line in lines[:1] + lines[2:5]}) == 1, "columns line up"
    assert lines[-1] == "(3 rows, more not shown)"


def test_json_format_is_an_array_of_objects_with_iso_times() -> None:
    rows = json.loads(render(RESULT, "json"))
    assert rows[0] == {
        "ward": "MICU",
        "patients": 12,
        "first_seen": "2026-11-26T08:00:00+00:00",
        "params": ["spo2", "heart_rate"],
        "note": None,
    }
    assert rows[1]["first_seen"] == "2026-11-25" and rows[2]["patients"] == 1.5


def test_csv_format_has_a_header_and_quotes_what_needs_it() -> None:
    rows = list(csv.reader(io.StringIO(render(RESULT, "csv"))))
    assert rows[0] == list(RESULT.columns)
    assert rows[2] == ["HOME", "3", "2026-11-25", "[]", "it's, quoted"]
    assert rows[3][2] == "" and len(rows) == 4


def test_unknown_format_is_refused() -> None:
    with pytest.raises(QueryError, match="unknown format 'xml'"):
        render(RESULT, "xml")
