"""Checks of gold.features_hourly before training (a minimal stand-in until the great-expectations facade of
lakehouse/quality/ lands): each returns the number of offending rows."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import tables
from lakehouse.config import RegionConfig

# carried-forward vitals must lie in these physical ranges (canonical units)
RANGES = {"hr": (0, 350), "spo2": (0, 100), "temp": (20, 46), "sbp": (0, 400), "dbp": (0, 300), "map": (0, 350),
          "resp": (0, 150), "fio2": (0, 100)}  # fmt: skip


def check_features(spark: SparkSession, region: RegionConfig, min_rows: int) -> dict[str, dict[str, Any]]:
    """Outcome per check: ``ok`` and the count of offending rows (or the row count, for the size check)."""
    feats = spark.read.format("delta").load(tables.uri(region, "gold.features_hourly"))
    labels = spark.read.format("delta").load(tables.uri(region, "gold.sepsis_labels"))
    labelled = feats.join(labels, ["patient_ref", "hour_start"], "left")
    out_of_range = F.lit(False)
    for col, (lo, hi) in RANGES.items():
        out_of_range = out_of_range | ~F.coalesce(F.col(col).between(lo, hi), F.lit(True))
    scores = [c for c in feats.columns if c.startswith("news2_") and c != "news2_total"]
    bad_score = F.lit(False)
    for col in scores:
        bad_score = bad_score | ~F.coalesce(F.col(col).between(0, 3), F.lit(True))
    row = labelled.agg(
        F.count("*").alias("rows"),
        F.countDistinct("patient_ref", "hour_start").alias("keys"),
        F.sum(F.col("sepsis_label").isNull().cast("int")).alias("unlabelled"),
        F.sum((~F.col("sepsis_label").isin(0, 1)).cast("int")).alias("bad_label"),
        F.sum(out_of_range.cast("int")).alias("out_of_range"),
        F.sum(bad_score.cast("int")).alias("bad_score"),
    ).first()
    assert row is not None
    n, unlabelled = int(row["rows"]), int(row["unlabelled"] or 0)
    return {
        "enough_labelled_rows": {"ok": n - unlabelled >= min_rows, "value": n - unlabelled},
        "unique_key": {"ok": int(row["keys"]) == n, "value": n - int(row["keys"])},
        "unlabelled_rows": {"ok": True, "value": unlabelled},  # live hours have no label yet: reported only
        "label_values": {"ok": int(row["bad_label"] or 0) == 0, "value": int(row["bad_label"] or 0)},
        "vital_ranges": {"ok": int(row["out_of_range"] or 0) == 0, "value": int(row["out_of_range"] or 0)},
        "news2_scores": {"ok": int(row["bad_score"] or 0) == 0, "value": int(row["bad_score"] or 0)},
    }
