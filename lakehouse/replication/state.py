"""``ops.replication_state``: per replicated table, the last version the target holds and the lag behind
the source; written by every replication pass into the target region (readable when the source is gone). Beside
it, in the target's ``_dr`` folder, the continuous replicator records when it first failed to reach the source after
its last good pass (:class:`Outage`): a disaster failover's estimate of when the primary died.

Written with the ``deltalake`` package (the replication job runs without a JVM).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from pyspark.sql import types as T

from lakehouse.config import RegionConfig
from lakehouse.io import deadline, tables
from lakehouse.io.hdfs import Hdfs

TABLE = "ops.replication_state"

# ops.replication_state: one row per (table, source, target); the state after the latest replication pass.
REPLICATION_STATE_SCHEMA = T.StructType(
    [
        T.StructField("table", T.StringType(), False),
        T.StructField("source", T.StringType(), False),
        T.StructField("target", T.StringType(), False),
        T.StructField("replicated_version", T.LongType(), False),
        T.StructField("source_version", T.LongType(), False),
        T.StructField("lag_versions", T.LongType(), False),
        T.StructField("lag_seconds", T.DoubleType(), False),
        T.StructField("files_copied", T.LongType(), False),
        T.StructField("bytes_copied", T.LongType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("detail", T.StringType(), True),
        T.StructField("pass_time", T.TimestampType(), False),
    ]
)

COLUMNS = {
    "table": "Replicated table (layer.name). Key part 1 of (table, source, target).",
    "source": "Region replicated from (the primary). Key part 2.",
    "target": "Region holding the replica (where this row lives). Key part 3.",
    "replicated_version": "Latest Delta version the replica holds (-1: none yet); equal in content to the source's.",
    "source_version": "Latest Delta version of the source when the pass listed its log.",
    "lag_versions": "source_version - replicated_version at the end of the pass.",
    "lag_seconds": "Age of the oldest source commit the replica lacks at the end of the pass (0: caught up).",
    "files_copied": "Data, change-data and deletion-vector files the pass copied.",
    "bytes_copied": "Bytes the pass copied (data and log).",
    "status": "replicated, up_to_date, absent (no source table yet), refused (residency) or failed.",
    "detail": "Why, for refused and failed.",
    "pass_time": "When the pass started, UTC (it read each table after this).",
}

_ARROW: dict[T.DataType, pa.DataType] = {
    T.StringType(): pa.string(),
    T.LongType(): pa.int64(),
    T.DoubleType(): pa.float64(),
}


def arrow_schema() -> pa.Schema:
    """The table's schema for the ``deltalake`` writer (timestamps in microseconds, UTC, as Spark writes)."""
    return pa.schema(
        [
            pa.field(
                f.name,
                pa.timestamp("us", tz="UTC") if isinstance(f.dataType, T.TimestampType) else _ARROW[f.dataType],
                nullable=f.nullable,
            )
            for f in REPLICATION_STATE_SCHEMA.fields
        ]
    )


@dataclass(frozen=True)
class StateRow:
    """One table's replication state after a pass."""

    table: str
    source: str
    target: str
    replicated_version: int
    source_version: int
    lag_versions: int
    lag_seconds: float
    files_copied: int
    bytes_copied: int
    status: str
    detail: str | None
    pass_time: datetime


def write(target: RegionConfig, rows: Sequence[StateRow]) -> None:
    """Replace the state rows of the pass's (source, target) pairs and tables in the target's table."""
    from deltalake import DeltaTable, write_deltalake

    if not rows:
        return
    uri = tables.table_uri(target, TABLE)
    data = pa.Table.from_pylist([r.__dict__ for r in rows], schema=arrow_schema())
    names = ", ".join("'" + r.table.replace("'", "''") + "'" for r in rows)
    pairs = {(r.source, r.target) for r in rows}
    if len(pairs) != 1:
        raise ValueError("one pass writes the state of one (source, target) pair")
    source, dest = next(iter(pairs))
    predicate = f"source = '{source}' AND target = '{dest}' AND `table` IN ({names})"

    def replace() -> None:
        if DeltaTable.is_deltatable(uri):
            write_deltalake(uri, data, mode="overwrite", predicate=predicate)
        else:
            write_deltalake(uri, data, mode="overwrite", description="Replication state per (table, source, target).")

    deadline.within(deadline.STORAGE_DEADLINE_S, f"write of ops.replication_state in {target.name}", replace)


def read(region: RegionConfig) -> list[dict[str, object]]:
    """Every row of the region's ``ops.replication_state`` (empty when no pass wrote it yet)."""
    from deltalake import DeltaTable

    uri = tables.table_uri(region, TABLE)

    def fetch() -> list[dict[str, object]]:
        return DeltaTable(uri).to_pyarrow_table().to_pylist() if DeltaTable.is_deltatable(uri) else []

    rows = deadline.within(deadline.STORAGE_DEADLINE_S, f"read of ops.replication_state in {region.name}", fetch)
    return sorted(rows, key=lambda r: (str(r["source"]), str(r["target"]), str(r["table"])))


OUTAGE_FILE = "_dr/replication.outage.json"  # in the target's lakehouse root, beside the replication lock


@dataclass(frozen=True)
class Outage:
    """When a continuous replicator first failed to replicate from ``source`` after its last good pass: the source
    was alive until that pass read it and (if the failure was its loss) dead at ``since``."""

    source: str
    since: datetime  # when the first failed pass after the last good one failed (UTC)
    error: str

    def as_json(self) -> bytes:
        """The file's content."""
        return json.dumps({**self.__dict__, "since": self.since.isoformat()}).encode()


def write_outage(target: Hdfs, outage: Outage) -> None:
    """Record ``outage`` in the target (atomically, replacing an older one)."""
    target.makedirs(posixpath.dirname(posixpath.join(target.root, OUTAGE_FILE)))
    target.publish(posixpath.join(target.root, OUTAGE_FILE), outage.as_json())


def read_outage(target: Hdfs, source: str) -> Outage | None:
    """The outage of ``source`` recorded in the target, if any (a failover compares it with the state's pass
    times: one older than the last good pass is over)."""
    path = posixpath.join(target.root, OUTAGE_FILE)
    if target.status(path) is None:
        return None
    data = json.loads(target.read(path))
    if data.get("source") != source:
        return None
    return Outage(source, datetime.fromisoformat(data["since"]), str(data["error"]))
