"""`lakehouse sql "QUERY"`: ad hoc SQL over a region's catalog, printed as a table, JSON or CSV.

Bad SQL and missing tables become one-line :class:`QueryError` messages (the CLI exits non-zero), not
JVM stack traces.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import SparkSession

from lakehouse.errors import LakehouseError

FORMATS = ("table", "json", "csv")
logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)  # PySpark logs every refused query in JSON


class QueryError(LakehouseError):
    """A query the catalog or the parser refused: one line saying what is wrong."""

    exit_code = 1


@dataclass(frozen=True)
class QueryResult:
    """Column names and the first rows of a query; ``truncated`` when more rows existed than were fetched."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool


def _unquote(name: str) -> str:
    return name.replace("`", "")


def explain_error(exc: AnalysisException) -> str:
    """One line for an analysis or parse error: what is wrong, in the analyst's terms."""
    condition = exc.getCondition() or ""
    params = exc.getMessageParameters() or {}
    if condition == "TABLE_OR_VIEW_NOT_FOUND":
        name = _unquote(params.get("relationName", "?"))
        return f"table or view not found: {name} (list them with: SHOW TABLES IN <bronze|silver|gold|dq|ops>)"
    if condition == "SCHEMA_NOT_FOUND":
        return (
            f"database not found: {_unquote(params.get('schemaName', '?'))} (databases: bronze, silver, gold, dq, ops)"
        )
    if condition == "PARSE_SYNTAX_ERROR":
        return f"SQL syntax error at or near {params.get('error', '?')}{params.get('hint', '')}"
    if condition == "UNRESOLVED_COLUMN.WITH_SUGGESTION":
        column = _unquote(params.get("objectName", "?"))
        return f"column not found: {column} (did you mean one of {params.get('proposal', '?')}?)"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else condition
    return first.split(" SQLSTATE")[0].strip()


def run(spark: SparkSession, query: str, limit: int) -> QueryResult:
    """Run ``query`` and fetch at most ``limit`` rows; refused queries raise :class:`QueryError`."""
    if not query.strip():
        raise QueryError("empty query")
    try:
        frame = spark.sql(query)
        rows = frame.take(limit + 1)
    except (ParseException, AnalysisException) as exc:
        raise QueryError(explain_error(exc)) from None
    return QueryResult(
        columns=tuple(frame.columns),
        rows=tuple(tuple(r) for r in rows[:limit]),
        truncated=len(rows) > limit,
    )


def _plain(value: Any) -> Any:
    """A value as JSON or CSV carry it: timestamps ISO 8601, decimals as numbers, arrays as lists."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    plain = _plain(value)
    return json.dumps(plain) if isinstance(plain, list | dict) else str(plain)


def render(result: QueryResult, fmt: str) -> str:
    """The result as an aligned text table, a JSON array of objects, or CSV with a header."""
    if fmt == "json":
        return json.dumps([dict(zip(result.columns, map(_plain, row), strict=True)) for row in result.rows])
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow(["" if v is None else _cell(v) for v in row])
        return out.getvalue().rstrip("\n")
    if fmt != "table":
        raise QueryError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")
    cells = [[_cell(v) for v in row] for row in result.rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(result.columns)]
    lines = [_line(result.columns, widths), "-+-".join("-" * w for w in widths)]
    lines += [_line(r, widths) for r in cells]
    lines.append(f"({len(cells)} row{'' if len(cells) == 1 else 's'}{', more not shown' if result.truncated else ''})")
    return "\n".join(lines)


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()
