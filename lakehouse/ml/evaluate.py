"""External validation: score a folder of PhysioNet-format ``.psv`` files with a registered model through the
same feature code as training and serving, and compute AUROC, AUPRC and the challenge's normalized utility.

Every labelled hour counts (the utility is defined over all of a patient's hours): hours before a patient's
first measurement have no feature row and are scored with every feature missing, as the model's pipeline
does for a missing value anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.ml import features as fx
from lakehouse.ml import train

Progress = Callable[[str], None]


def model_threshold(cfg: Config, model_uri: str) -> tuple[float, str]:
    """The utility-optimal threshold logged by the training run behind ``model_uri`` (models:/name@alias,
    models:/name/version or runs:/id/...), and a description of the model."""
    client = train._mlflow(cfg).MlflowClient()
    try:
        if model_uri.startswith("models:/"):
            ref = model_uri[len("models:/") :].strip("/")
            if "@" in ref:
                name, alias = ref.split("@", 1)
                version = client.get_model_version_by_alias(name, alias)
            else:
                name, number = ref.split("/", 1)
                version = client.get_model_version(name, number)
            run_id, what = version.run_id, f"{version.name} v{version.version}"
        elif model_uri.startswith("runs:/"):
            run_id = model_uri[len("runs:/") :].split("/", 1)[0]
            what = f"run {run_id}"
        else:
            raise LakehouseError(
                f"unsupported model URI {model_uri!r}", fix="use models:/NAME@ALIAS, models:/NAME/N or runs:/ID/model"
            )
        threshold = client.get_run(run_id).data.metrics.get("threshold")
    except LakehouseError:
        raise
    except Exception as exc:  # noqa: BLE001 - MlflowException: unknown model, alias or run
        raise LakehouseError(f"model {model_uri} not found in MLflow ({exc.__class__.__name__}: {str(exc)[:200]})",
                             fix="check the URI; `lakehouse dags trigger nightly_retraining` registers one") from None  # fmt: skip
    if threshold is None:
        raise LakehouseError(f"the training run of {model_uri} logged no threshold", fix="pass --threshold")
    return float(threshold), what


def evaluate_psv(
    spark: SparkSession,
    cfg: Config,
    psv_dir: Path,
    model_uri: str,
    threshold: float | None = None,
    patients: int | None = None,
    progress: Progress = print,
) -> dict[str, Any]:
    """Metrics of ``model_uri`` on the patients of ``psv_dir`` (a folder of .psv files or a .tar.gz)."""
    import mlflow.spark as mlspark

    from lakehouse.devices import physionet

    physionet.require_archive(psv_dir)
    records = list(physionet.iter_patients(psv_dir, patients))
    if not records:
        raise LakehouseError(f"no patient files (pNNNNNN.psv) in {psv_dir}", fix="check the path")
    logged, what = model_threshold(cfg, model_uri)
    threshold = logged if threshold is None else threshold
    progress(f"evaluate: {len(records)} patients of {psv_dir} with {what} (threshold {threshold:.3f})")
    train._mlflow(cfg)
    model = mlspark.load_model(model_uri)
    rows = fx.labelled_rows(spark, records)
    scored = train.score(model, rows).select("patient_ref", "hour_start", "sepsis_label", "score")
    train.require_evaluable(scored, f"patients of {psv_dir}", fix="evaluate septic and sepsis-free patients together")
    ev, _ = train.evaluate(scored, threshold)
    septic = sum(1 for r in records if r.septic)
    return {"psv_dir": str(psv_dir), "model_uri": model_uri, "model": what, **ev.as_dict(), "septic_patients": septic,
            "hours_without_features": rows.where(F.col("hours_observed").isNull()).count()}  # fmt: skip
