"""Label checks before training. The features themselves are checked by their great-expectations suite
(conf/quality/gold.features_hourly.yaml: key, physical ranges, NEWS2 sub-scores, indicator domains); these are
what the suite cannot see: the join with gold.sepsis_labels. Each returns ``ok`` and a count."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import tables
from lakehouse.config import RegionConfig


def check_features(spark: SparkSession, region: RegionConfig, min_rows: int) -> dict[str, dict[str, Any]]:
    """Outcome per check: ``ok`` and the count of offending rows (or of labelled rows, for the size check)."""
    feats = spark.read.format("delta").load(tables.uri(region, "gold.features_hourly"))
    labels = spark.read.format("delta").load(tables.uri(region, "gold.sepsis_labels"))
    labelled = feats.join(labels, ["patient_ref", "hour_start"], "left")
    row = labelled.agg(
        F.count("*").alias("rows"),
        F.sum(F.col("sepsis_label").isNull().cast("int")).alias("unlabelled"),
        F.sum((~F.col("sepsis_label").isin(0, 1)).cast("int")).alias("bad_label"),
    ).first()
    assert row is not None
    n, unlabelled = int(row["rows"]), int(row["unlabelled"] or 0)
    return {
        "enough_labelled_rows": {"ok": n - unlabelled >= min_rows, "value": n - unlabelled},
        "unlabelled_rows": {"ok": True, "value": unlabelled},  # live hours have no label yet: reported only
        "label_values": {"ok": int(row["bad_label"] or 0) == 0, "value": int(row["bad_label"] or 0)},
    }
