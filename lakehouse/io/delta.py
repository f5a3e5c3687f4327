"""Delta I/O: create tables from specs, idempotent batch appends, MERGEs, catalog registration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T


@dataclass(frozen=True)
class TableSpec:
    """A table of the lakehouse: name (``layer.name``), schema, partition columns and its one-line meaning."""

    name: str
    schema: T.StructType
    partition_by: tuple[str, ...]
    comment: str
    properties: tuple[tuple[str, str], ...] = ()


def ensure_table(spark: SparkSession, uri: str, spec: TableSpec) -> None:
    """Create the Delta table at ``uri`` from ``spec`` unless one exists (idempotent)."""
    builder = (
        DeltaTable.createIfNotExists(spark)
        .location(uri)
        .addColumns(spec.schema)
        .partitionedBy(*spec.partition_by)
        .comment(spec.comment)
    )
    for key, value in spec.properties:
        builder = builder.property(key, value)
    builder.execute()


def register(spark: SparkSession, spec: TableSpec, uri: str) -> None:
    """Make ``spec.name`` resolvable in SQL (``SELECT * FROM gold.news2``), pointing at ``uri``."""
    database = spec.name.split(".")[0]
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {spec.name} USING DELTA LOCATION '{uri}'")


def _on(keys: Sequence[str]) -> str:
    return " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)


def merge_insert(spark: SparkSession, uri: str, rows: DataFrame, keys: Sequence[str]) -> int:
    """Insert the rows whose ``keys`` are not in the table yet; returns how many were inserted.

    Re-running the same rows inserts nothing, which makes a retried micro-batch idempotent.
    """
    metrics = (
        DeltaTable.forPath(spark, uri)
        .alias("t")
        .merge(rows.alias("s"), _on(keys))
        .whenNotMatchedInsertAll()
        .execute()
        .first()
    )
    return int(metrics["num_inserted_rows"]) if metrics else 0


def merge_upsert(spark: SparkSession, uri: str, rows: DataFrame, keys: Sequence[str]) -> None:
    """Replace the rows whose ``keys`` match and insert the others (``rows`` must be unique by keys)."""
    (
        DeltaTable.forPath(spark, uri)
        .alias("t")
        .merge(rows.alias("s"), _on(keys))
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


class BatchAppender:
    """Idempotent appends of one streaming query's micro-batches (foreachBatch) to Delta tables.

    Every commit carries ``userMetadata = "<writer>:<batch id>"`` (writer: the id stored in the query's
    checkpoint). Spark never runs a batch twice within one run of a query, so only the first batch a run
    sees can be a retry of a batch that was committed before a crash: for that batch alone the table's
    recent history is read and a table that already has the marker is skipped. This replaces Delta's
    ``txnAppId``/``txnVersion`` options, whose check rebuilds the table state on every commit (about
    2.5 s per append here, measured, against 0.5 s for the append itself).
    """

    HISTORY_DEPTH = 200  # commits looked back on a run's first batch (other writers: maintenance only)

    def __init__(self, spark: SparkSession, writer: str) -> None:
        self.spark = spark
        self.writer = writer
        self.first_batch: int | None = None

    def marker(self, batch_id: int) -> str:
        return f"{self.writer}:{batch_id}"

    def committed(self, uri: str, batch_id: int) -> bool:
        """Whether this writer already committed ``batch_id`` to the table at ``uri``."""
        marker = self.marker(batch_id)
        history = DeltaTable.forPath(self.spark, uri).history(self.HISTORY_DEPTH).select("userMetadata")
        return any(r[0] == marker for r in history.collect())

    def append(self, rows: DataFrame, uri: str, batch_id: int) -> bool:
        """Append ``rows`` as batch ``batch_id``; False when that batch is already in the table."""
        if self.first_batch is None:
            self.first_batch = batch_id
        if batch_id == self.first_batch and self.committed(uri, batch_id):
            return False
        rows.write.format("delta").mode("append").option("userMetadata", self.marker(batch_id)).save(uri)
        return True
