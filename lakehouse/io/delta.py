"""Delta I/O: create tables from specs, idempotent insert-only MERGE, upsert MERGE, catalog registration."""

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


def append_once(rows: DataFrame, uri: str, writer: str, version: int) -> None:
    """Append ``rows`` unless this ``writer`` already committed ``version`` to the table (Delta's idempotent
    writes: a micro-batch retried after a crash is skipped, not written twice)."""
    (rows.write.format("delta").mode("append").option("txnAppId", writer).option("txnVersion", str(version)).save(uri))
