"""Table and checkpoint locations, keyed by table name and region: ``<warehouse>/<layer>/<table>``."""

from __future__ import annotations

import re
from collections.abc import Collection

from lakehouse.config import RegionConfig
from lakehouse.errors import LakehouseError

TABLE_NAME = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")  # whole name: use fullmatch


def _check(name: str, what: str) -> str:
    if not TABLE_NAME.fullmatch(name):
        raise LakehouseError(f"invalid {what} {name!r}", fix="use lower-case <layer>.<name>, e.g. bronze.telemetry")
    return name


def check_table_names(names: list[str] | None, known: Collection[str]) -> None:
    """Refuse table names a user gave (CLI ``--table``) that are malformed (path traversal, SQL, control
    characters: never joined into a path or a statement) or not among ``known``, before any work starts."""
    for name in names or []:
        _check(name, "table name")
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise LakehouseError(f"unknown table(s) {unknown}", fix=f"choose from {', '.join(sorted(known))}")


def table_uri(region: RegionConfig, table: str) -> str:
    """Delta location of ``layer.name`` in ``region``, e.g. hdfs://…/lakehouse/bronze/telemetry."""
    layer, name = _check(table, "table name").split(".")
    return f"{region.warehouse_uri}/{layer}/{name}"


def checkpoint_uri(region: RegionConfig, query: str) -> str:
    """Streaming checkpoint of query ``layer.name`` in ``region`` (one per query, on the region's HDFS)."""
    layer, name = _check(query, "query name").split(".")
    return f"{region.warehouse_uri}/_checkpoints/{layer}/{name}"
