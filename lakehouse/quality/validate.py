"""Batch validation of a table partition (``lakehouse dq validate``, ``jobs/data_quality.py``, the daily DAG),
and the summary of ``dq.results`` (``lakehouse dq report``).

The same suites as the pipeline's per-batch checks; the rows of one partition are read once, persisted,
checked, and the results appended to ``dq.results`` and rendered as GX Data Docs under the state folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import audit
from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io import delta
from lakehouse.quality import gate, suites
from lakehouse.quality.gx_facade import Validator
from lakehouse.tables import SPECS, uri


def checked_rows(spark: SparkSession, cfg: Config, region: RegionConfig, suite: suites.Suite) -> DataFrame:
    """The rows a suite is written for: the table itself, or for bronze ingestion health its records parsed by
    the contract (``reason`` set when a message is quarantined), as the silver stream sees them."""
    from delta.tables import DeltaTable

    location = uri(region, suite.table)
    if not DeltaTable.isDeltaTable(spark, location):
        raise LakehouseError(
            f"{suite.table} does not exist in {region.name} ({location})",
            fix="run the pipeline of the region first (`lakehouse pipeline run --once`), or check the profile",
        )
    rows = spark.read.format("delta").load(location)
    if suite.table != "bronze.telemetry":
        return rows
    from lakehouse.ingest import silver
    from lakehouse.ingest.contract import load_catalogue, load_dialects

    dialects = load_dialects(catalogue=load_catalogue())
    return silver.parse_bronze(rows, dialects, cfg.pipeline.future_tolerance_s, cfg.pipeline.max_event_age_s)


@dataclass(frozen=True)
class PartitionOutcome:
    """One table partition's check run."""

    table: str
    day: date | None
    rows: int
    outcome: gate.Outcome


def validate_partition(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    table: str,
    day: date | None,
    validator: Validator,
    run_id: str | None = None,
) -> PartitionOutcome:
    """Check one partition of ``table`` (all of it when ``day`` is None) and append the results to dq.results."""
    suite = suites.load_suite(cfg.quality.suites_dir, table)
    rows = checked_rows(spark, cfg, region, suite)
    if day is not None:
        column = suite.partition_column or SPECS[table].partition_by[0]
        # bronze is parsed first: filter on its ingest date the same way (the column survives the parse)
        rows = rows.filter(F.col(column) == F.lit(day))
        scope = f"partition {column}={day.isoformat()}"
    else:
        scope = "whole table"
    rows = rows.persist()
    try:
        n = rows.count()
        outcome = gate.check(validator, suite, rows)
    finally:
        rows.unpersist()
    run = run_id or f"validate:{region.name}:{uuid.uuid4().hex[:12]}"
    outcome.rows(spark, run, region.name, scope).write.format("delta").mode("append").save(uri(region, "dq.results"))
    outcome.record_metrics(region.name)
    return PartitionOutcome(table, day, n, outcome)


def validate_tables(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    tables: list[str],
    day: date | None,
    progress: Callable[[str], None] = print,
    run_id: str | None = None,
) -> tuple[list[PartitionOutcome], Path]:
    """Check ``tables`` (each its partition ``day``), render the Data Docs; returns the outcomes and the index.

    The results share ``run_id`` in dq.results (default ``validate:<region>:<random id>``). Blocking failures do
    not stop the other tables: every table is checked and documented first."""
    docs_dir = cfg.quality.data_docs_dir(cfg.state_dir)
    delta.ensure_table(spark, uri(region, "dq.results"), SPECS["dq.results"])
    validator = Validator(docs_dir)
    run_id = run_id or f"validate:{region.name}:{uuid.uuid4().hex[:12]}"
    outcomes = []
    for table in tables:
        progress(f"checking {table}" + (f" partition {day}" if day else " (whole table)") + " ...")
        result = validate_partition(spark, cfg, region, table, day, validator, run_id)
        failed = result.outcome.failed()
        progress(
            f"  {table}: {result.rows} rows, {len(result.outcome.results)} expectations, "
            + (
                ", ".join(f"{r.check.name} FAILED ({r.check.severity.value}: {r.observed})" for r in failed)
                or "all passed"
            )
        )
        outcomes.append(result)
    index = validator.build_docs()
    assert index is not None
    stopped = blocked(outcomes)
    audit.record(region, audit.entry("dq.gate", ", ".join(tables), region.name, "blocked" if stopped else "passed", {
        "run_id": run_id, "day": day, "blocked": stopped, "failed": [f"{o.table}: {r.check.name}" for o in outcomes
                                                                    for r in o.outcome.failed()],
    }))  # fmt: skip
    return outcomes, index


def blocked(outcomes: list[PartitionOutcome]) -> list[str]:
    """``table: check`` of every failed blocking expectation."""
    return [f"{o.table}: {r.check.name}" for o in outcomes for r in o.outcome.failed(suites.Severity.BLOCK)]


def report(spark: SparkSession, region: RegionConfig, days: int) -> DataFrame:
    """Per table and expectation over the last ``days`` days of dq.results: runs, failures, rows failed, last
    failure, severity (the summary `lakehouse dq report` prints)."""
    delta.ensure_table(spark, uri(region, "dq.results"), SPECS["dq.results"])  # empty before any check ran
    results = spark.read.format("delta").load(uri(region, "dq.results"))
    since = F.date_sub(F.current_date(), days - 1)
    return (
        results.filter(F.col("checked_date") >= since)
        .groupBy("table_name", "expectation", "severity")
        .agg(
            F.count(F.lit(1)).alias("runs"),
            F.count(F.when(~F.col("success"), 1)).alias("failures"),
            F.sum(F.coalesce(F.col("rows_failed"), F.lit(0))).alias("rows_failed"),
            F.max(F.when(~F.col("success"), F.col("checked_time"))).alias("last_failure"),
        )
        .orderBy(F.col("failures").desc(), "table_name", "expectation")
    )
