"""`lakehouse bench training`: how training time and peak memory grow with the data (10%, 50%, 100% of a
PhysioNet archive by default), beside a same-run baseline on the same rows.

For each fraction, the first N patients by id (so every subset contains the smaller ones) go through the
nightly job's feature code and the configured GBT. The split is by patient (``features.split_of``) as in
training. Per fraction the report gives: feature build time, GBT fit time, the time to choose the alarm
threshold, the baseline (a logistic regression on the same assembled features: one cheap model of the same
rows, which separates data handling from the cost of boosting), validation AUROC and utility (does more data
help), and the peak resident memory of the Spark driver JVM and of Python during that fraction.

The JVM is warmed up first on a small subset (not timed). Nothing is written to tables or to MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.ml import features as fx
from lakehouse.ml import memory, train

Progress = Callable[[str], None]
WARMUP_PATIENTS = 200


def baseline_pipeline(max_iter: int) -> Pipeline:
    """The model pipeline's own missing-value fill and assembler, then a logistic regression (the baseline)."""
    stages = list(train.model_pipeline(1, 1).getStages()[:-1])
    return Pipeline(stages=[*stages, LogisticRegression(featuresCol="features_vector", labelCol="sepsis_label",
                                                        maxIter=max_iter)])  # fmt: skip


def _rows(spark: SparkSession, records: Sequence[object], validation_pct: int) -> DataFrame:
    return fx.labelled_rows(spark, records).withColumn("split", fx.split_of(F.col("patient_ref"), validation_pct))


def _measure(spark: SparkSession, cfg: Config, records: Sequence[object]) -> dict[str, Any]:
    memory.reset_peaks(spark)
    t0 = time.monotonic()
    rows = _rows(spark, records, cfg.ml.validation_pct).cache()
    hours = rows.count()
    features_s = time.monotonic() - t0
    fit_rows = rows.where((F.col("split") == "train") & F.col("hours_observed").isNotNull())
    valid = rows.where(F.col("split") == "validation")
    n_fit = fit_rows.count()

    t = time.monotonic()
    model = train.model_pipeline(cfg.ml.max_iter, cfg.ml.max_depth).fit(fit_rows)
    fit_s = time.monotonic() - t
    t = time.monotonic()
    threshold = train.best_threshold(train._by_patient(train.score(model, fit_rows)))
    threshold_s = time.monotonic() - t
    t = time.monotonic()
    baseline_pipeline(cfg.ml.max_iter).fit(fit_rows)
    baseline_s = time.monotonic() - t
    ev, _ = train.evaluate(train.score(model, valid), threshold)
    rows.unpersist()
    return {
        "patients": len(records), "patient_hours": hours, "training_rows": n_fit,
        "features_s": round(features_s, 1), "gbt_fit_s": round(fit_s, 1), "threshold_s": round(threshold_s, 1),
        "training_s": round(features_s + fit_s + threshold_s, 1), "baseline_logreg_fit_s": round(baseline_s, 1),
        "gbt_vs_baseline": round(fit_s / baseline_s, 2) if baseline_s > 0 else None,
        "validation": {"patients": ev.patients, "auroc": round(ev.auroc, 4), "auprc": round(ev.auprc, 4),
                       "utility": round(ev.utility, 4)},
        **memory.peak_mib(spark),
    }  # fmt: skip


def run(
    spark: SparkSession,
    cfg: Config,
    archive: Path,
    fractions: Sequence[float] = (0.1, 0.5, 1.0),
    progress: Progress = print,
) -> dict[str, Any]:
    """Time and peak memory of feature building and training at each fraction of ``archive``'s patients."""
    from lakehouse.devices import physionet

    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise LakehouseError(f"fractions must be in (0, 1], got {list(fractions)}", fix="e.g. --fractions 0.1,0.5,1")
    physionet.require_archive(archive)
    t0 = time.monotonic()
    progress(f"bench training: reading {archive} ...")
    records = list(physionet.iter_patients(archive))
    read_s = time.monotonic() - t0
    if len(records) < 20:
        raise LakehouseError(f"{len(records)} patients in {archive}: too few to benchmark", fix="check the path")
    progress(f"bench training: {len(records)} patients read in {read_s:.0f} s; warming up on {WARMUP_PATIENTS}")
    _measure(spark, cfg, records[: min(WARMUP_PATIENTS, len(records))])
    steps: list[dict[str, Any]] = []
    for fraction in sorted(set(fractions)):
        subset = records[: max(20, round(fraction * len(records)))]
        progress(f"bench training: {fraction:.0%} = {len(subset)} patients ...")
        step = {"fraction": fraction, **_measure(spark, cfg, subset)}
        steps.append(step)
        progress(
            f"  {step['patient_hours']} patient-hours: features {step['features_s']} s, GBT fit {step['gbt_fit_s']} s"
            f" (baseline {step['baseline_logreg_fit_s']} s), JVM peak {step.get('jvm_peak_rss_mib', '?')} MiB,"
            f" validation AUROC {step['validation']['auroc']:.3f}, utility {step['validation']['utility']:.3f}"
        )
    first = steps[0]
    for step in steps:  # growth relative to the smallest fraction: time ratio beside the data ratio
        step["data_ratio"] = round(step["patient_hours"] / first["patient_hours"], 2)
        step["training_time_ratio"] = (
            round(step["training_s"] / first["training_s"], 2) if first["training_s"] else None
        )
    return {
        "benchmark": "training", "archive": str(archive), "patients": len(records), "read_s": round(read_s, 1),
        "model": {"kind": "spark.ml.GBTClassifier", "max_iter": cfg.ml.max_iter, "max_depth": cfg.ml.max_depth,
                  "features": len(fx.FEATURE_COLUMNS)},
        "baseline": f"spark.ml.LogisticRegression (maxIter {cfg.ml.max_iter}) on the same rows",
        "spark": {"master": cfg.spark.master, "driver_memory": cfg.ml.driver_memory,
                  "shuffle_partitions": cfg.ml.shuffle_partitions},
        "steps": steps, "seconds": round(time.monotonic() - t0, 1),
    }  # fmt: skip
