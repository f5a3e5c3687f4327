"""Table and checkpoint locations, keyed by table name and region: ``<warehouse>/<layer>/<table>``."""

from __future__ import annotations

import re

from lakehouse.config import RegionConfig
from lakehouse.errors import LakehouseError

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def _check(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise LakehouseError(f"invalid {what} {name!r}", fix="use lower-case <layer>.<name>, e.g. bronze.telemetry")
    return name


def table_uri(region: RegionConfig, table: str) -> str:
    """Delta location of ``layer.name`` in ``region``, e.g. hdfs://…/lakehouse/bronze/telemetry."""
    layer, name = _check(table, "table name").split(".")
    return f"{region.warehouse_uri}/{layer}/{name}"


def checkpoint_uri(region: RegionConfig, query: str) -> str:
    """Streaming checkpoint of query ``layer.name`` in ``region`` (one per query, on the region's HDFS)."""
    layer, name = _check(query, "query name").split(".")
    return f"{region.warehouse_uri}/_checkpoints/{layer}/{name}"
