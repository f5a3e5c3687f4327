"""Patient-level cross-validation of the sepsis model on PhysioNet files, through the same feature, training and
evaluation code as the nightly retraining (``lakehouse ml cv``).

Folds are by patient (``features.fold_of``: a stable hash, all hours of a patient in one fold). Each fold's model
is fitted on the other folds' feature rows, its alarm threshold is the utility-optimal one on those training
patients, and it is judged on every labelled hour of the held-out patients (hours before a first measurement
included, all features missing), which is how the challenge's normalized utility is defined. The summary (mean
and standard deviation over folds) is logged to MLflow as one run tagged ``kind=cross_validation``. A fold
without a septic patient (or without a sepsis-free hour) has no AUROC: cross-validation refuses before training.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.ml import features as fx
from lakehouse.ml import memory, train

Progress = Callable[[str], None]
METRICS = ("auroc", "auprc", "utility", "brier", "ece")


def cross_validate(
    spark: SparkSession,
    cfg: Config,
    archive: Path,
    folds: int = 5,
    patients: int | None = None,
    progress: Progress = print,
    log_to_mlflow: bool = True,
) -> dict[str, Any]:
    """Cross-validated AUROC, AUPRC, utility and calibration of the configured model on ``archive``."""
    from lakehouse.devices import physionet

    if folds < 2:
        raise LakehouseError(f"--folds must be at least 2, got {folds}", fix="e.g. --folds 5")
    physionet.require_archive(archive)
    t0 = time.monotonic()
    records = list(physionet.iter_patients(archive, patients))
    if len(records) < folds:
        raise LakehouseError(f"{len(records)} patients in {archive}: fewer than {folds} folds", fix="check the path")
    progress(f"cv: {len(records)} patients of {archive.name}, {folds} folds by patient; building features")
    rows = fx.labelled_rows(spark, records).withColumn("fold", fx.fold_of(F.col("patient_ref"), folds)).cache()
    hours = rows.count()
    for k in range(folds):  # before any training: a fold without a class has no AUROC to average
        train.require_evaluable(
            rows.where(F.col("fold") == k),
            f"patients of fold {k + 1} of {folds} (a hash of the patient id picks them)",
            fix="use fewer folds (--folds) or more patients (--patients; the full archive)",
        )
    prepared_s = time.monotonic() - t0
    per_fold: list[dict[str, Any]] = []
    for k in range(folds):
        started = time.monotonic()
        fit_rows = rows.where((F.col("fold") != k) & F.col("hours_observed").isNotNull())
        held = rows.where(F.col("fold") == k)
        model = train.model_pipeline(cfg.ml.max_iter, cfg.ml.max_depth).fit(fit_rows)
        threshold = train.best_threshold(train._by_patient(train.score(model, fit_rows)))
        ev, _ = train.evaluate(train.score(model, held), threshold)
        per_fold.append({"fold": k, **ev.as_dict(), "seconds": round(time.monotonic() - started, 1)})
        progress(
            f"cv fold {k + 1}/{folds}: {ev.patients} patients, {ev.rows} hours: AUROC {ev.auroc:.3f}, "
            f"AUPRC {ev.auprc:.3f}, utility {ev.utility:.3f} at {threshold:.3f} ({per_fold[-1]['seconds']} s)"
        )
    rows.unpersist()
    summary = {
        m: {"mean": round(statistics.fmean(f[m] for f in per_fold), 4), "sd": round(statistics.stdev(f[m] for f in per_fold), 4)}
        for m in METRICS
    }  # fmt: skip
    result: dict[str, Any] = {
        "archive": str(archive), "patients": len(records), "hours": hours, "folds": folds,
        "septic_patients": sum(1 for r in records if r.septic),
        "model": {"kind": "spark.ml.GBTClassifier", "max_iter": cfg.ml.max_iter, "max_depth": cfg.ml.max_depth,
                  "features": len(fx.FEATURE_COLUMNS)},
        "summary": summary, "per_fold": per_fold, "seconds": round(time.monotonic() - t0, 1),
        "feature_seconds": round(prepared_s, 1), **memory.peak_mib(spark),
    }  # fmt: skip
    if log_to_mlflow:
        mlflow = train._mlflow(cfg)
        with mlflow.start_run(run_name=f"cv-{folds}fold-{len(records)}p", tags={"kind": "cross_validation"}) as run:
            mlflow.log_params({"archive": archive.name, "patients": len(records), "folds": folds,
                               "max_iter": cfg.ml.max_iter, "max_depth": cfg.ml.max_depth, "split": "by patient"})  # fmt: skip
            mlflow.log_metrics({f"cv_{m}_{s}": v for m, d in summary.items() for s, v in d.items()})
            mlflow.log_dict(result, "cross_validation.json")
        result["mlflow_run_id"] = run.info.run_id
    progress(
        f"cv: AUROC {summary['auroc']['mean']:.3f} ± {summary['auroc']['sd']:.3f}, utility "
        f"{summary['utility']['mean']:.3f} ± {summary['utility']['sd']:.3f} over {folds} folds ({result['seconds']} s)"
    )
    return result
