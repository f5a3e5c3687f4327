"""The ``dq.results`` table: its schema and the rows of one check run (no great-expectations import here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

# dq.results: one row per expectation per check run; key (run_id, table_name, expectation); a log, so a
# retried micro-batch adds the rows of its new run (same run_id, later checked_time).
DQ_RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
        T.StructField("table_name", T.StringType(), False),
        T.StructField("scope", T.StringType(), False),
        T.StructField("expectation", T.StringType(), False),
        T.StructField("expectation_type", T.StringType(), False),
        T.StructField("severity", T.StringType(), False),
        T.StructField("success", T.BooleanType(), False),
        T.StructField("action", T.StringType(), False),
        T.StructField("observed_value", T.StringType(), True),
        T.StructField("rows_checked", T.LongType(), True),
        T.StructField("rows_failed", T.LongType(), True),
        T.StructField("checked_time", T.TimestampType(), False),
        T.StructField("checked_date", T.DateType(), False),
    ]
)

# what a failed check did to the data, by severity
ACTIONS = {"warn": "recorded", "quarantine": "quarantined", "block": "blocked"}


class ResultLike(Protocol):
    """What a result row needs of a check result (``gx_facade.CheckResult``)."""

    @property
    def success(self) -> bool: ...
    @property
    def observed(self) -> str | None: ...
    @property
    def rows_checked(self) -> int | None: ...
    @property
    def rows_failed(self) -> int | None: ...


def results_frame(
    spark: SparkSession,
    results: Sequence[tuple[str, str, str, ResultLike]],
    run_id: str,
    region: str,
    table: str,
    scope: str,
    now: datetime | None = None,
) -> DataFrame:
    """``dq.results`` rows of one check run; ``results`` holds (name, expectation type, severity, result)."""
    at = (now or datetime.now(UTC)).replace(tzinfo=None)
    rows = [
        (
            run_id, region, table, scope, name, f"expect_{kind}", severity, r.success,
            "none" if r.success else ACTIONS[severity], r.observed, r.rows_checked, r.rows_failed, at, at.date(),
        )
        for name, kind, severity, r in results
    ]  # fmt: skip
    return spark.createDataFrame(rows, DQ_RESULTS_SCHEMA)
