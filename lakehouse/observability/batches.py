"""Metrics of one silver micro-batch, from DataFrames the batch has already materialised.

Each function runs one small aggregate (a handful of rows collected) over persisted data.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.observability import metrics


def record_silver_batch(region: str, counts: Mapping[str, int], quarantine: DataFrame, vitals: DataFrame) -> None:
    """Message outcomes, quarantine by (reason, level) and accepted measurements per ward of one batch.

    The aggregates run first and the counters move together afterwards, so a scrape never sees a batch's
    message outcomes without its quarantine reasons (a Spark job between the two would be a window of
    hundreds of milliseconds)."""
    by_reason: dict[tuple[str, str], int] = {}
    by_ward: dict[str, int] = {}
    if counts.get("messages_quarantined", 0) or counts.get("measurements_quarantined", 0):
        rows = quarantine.groupBy("reason", "level").count().collect()
        by_reason = {(str(r["reason"]), str(r["level"])): int(r["count"]) for r in rows}
    if counts.get("measurements_accepted", 0):
        rows = vitals.groupBy(F.coalesce(F.col("ward"), F.lit("unassigned")).alias("ward")).count().collect()
        by_ward = {str(r["ward"]): int(r["count"]) for r in rows}
    metrics.record_quarantine(region, by_reason)
    metrics.record_wards(region, by_ward)
    metrics.record_silver_counts(region, counts)
