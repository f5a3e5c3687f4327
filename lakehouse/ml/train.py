"""Training on Spark (MLlib GBTClassifier) with MLflow tracking, the registry (`sepsis_risk`, aliases champion and
challenger) and the promotion gate.

Data: gold.features_hourly joined with gold.sepsis_labels on (patient_ref, hour_start), pinned to their Delta
versions; the split is by patient (``features.split_of``). Missing feature values become -1 (a value no
feature takes) inside the model's own pipeline, so serving needs no separate imputation.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import SQLTransformer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import audit, tables
from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io import delta
from lakehouse.ml import features as fx

Progress = Callable[[str], None]
MISSING = -1.0
SEED = 7
CHAMPION, CHALLENGER = "champion", "challenger"


# --------------------------------------------------------------------------- PhysioNet utility


def patient_utility(labels: Sequence[int], predictions: Sequence[int]) -> tuple[float, float, float]:
    """(observed, best, inaction) utility of one patient, as the 2019 challenge's evaluate_sepsis_score.py defines
    it (dt_early -12 h, dt_optimal -6 h, dt_late +3 h; TP up to 1, FN down to -2, FP -0.05)."""
    dt_early, dt_optimal, dt_late, max_u_tp, min_u_fn, u_fp = -12, -6, 3.0, 1.0, -2.0, -0.05
    n = len(labels)
    septic = any(labels)
    t_sepsis = (list(labels).index(1) - dt_optimal) if septic else math.inf
    m1 = max_u_tp / (dt_optimal - dt_early)
    b1 = -m1 * dt_early
    m2 = -max_u_tp / (dt_late - dt_optimal)
    b2 = -m2 * dt_late
    m3 = min_u_fn / (dt_late - dt_optimal)
    b3 = -m3 * dt_optimal

    def total(pred: Sequence[int]) -> float:
        u = 0.0
        for t in range(n):
            if t > t_sepsis + dt_late:
                continue
            if septic and pred[t]:
                u += max(m1 * (t - t_sepsis) + b1, u_fp) if t <= t_sepsis + dt_optimal else m2 * (t - t_sepsis) + b2
            elif not septic and pred[t]:
                u += u_fp
            elif septic and not pred[t] and t > t_sepsis + dt_optimal:
                u += m3 * (t - t_sepsis) + b3
        return u

    best = [0] * n
    if septic:
        lo, hi = max(0, int(t_sepsis + dt_early)), min(int(t_sepsis + dt_late + 1), n)
        best[lo:hi] = [1] * (hi - lo)
    return total(predictions), total(best), total([0] * n)


def normalized_utility(patients: Iterable[tuple[Sequence[int], Sequence[float]]], threshold: float) -> float:
    """The challenge's normalized utility over patients (labels, scores in hour order) at ``threshold``."""
    observed = best = inaction = 0.0
    for labels, scores in patients:
        o, b, i = patient_utility(labels, [int(s >= threshold) for s in scores])
        observed, best, inaction = observed + o, best + b, inaction + i
    return (observed - inaction) / (best - inaction) if best != inaction else 0.0


def _by_patient(scored: DataFrame) -> list[tuple[list[int], list[float]]]:
    rows = (
        scored.groupBy("patient_ref")
        .agg(F.sort_array(F.collect_list(F.struct("hour_start", "sepsis_label", "score"))).alias("h"))
        .collect()
    )
    return [([int(x["sepsis_label"]) for x in r["h"]], [float(x["score"]) for x in r["h"]]) for r in rows]


def best_threshold(patients: list[tuple[list[int], list[float]]]) -> float:
    """The score threshold maximising normalized utility (a grid of 0.01..0.60)."""
    grid = [i / 100 for i in range(1, 61)]
    return max(grid, key=lambda th: normalized_utility(patients, th))


# --------------------------------------------------------------------------- data, model, metrics


@dataclass(frozen=True)
class TrainingData:
    """Labelled feature rows with their split, and the exact inputs (Delta table URIs and versions)."""

    frame: DataFrame
    features_uri: str
    features_version: int
    labels_uri: str
    labels_version: int


def training_data(spark: SparkSession, region: RegionConfig, validation_pct: int) -> TrainingData:
    """gold.features_hourly joined with gold.sepsis_labels, pinned to their current Delta versions."""
    f_uri, l_uri = tables.uri(region, "gold.features_hourly"), tables.uri(region, "gold.sepsis_labels")
    f_ver, l_ver = delta.table_version(spark, f_uri), delta.table_version(spark, l_uri)
    feats = spark.read.format("delta").option("versionAsOf", f_ver).load(f_uri)
    labels = (
        spark.read.format("delta")
        .option("versionAsOf", l_ver)
        .load(l_uri)
        .select("patient_ref", "hour_start", "sepsis_label")
    )
    frame = feats.join(labels, ["patient_ref", "hour_start"]).withColumn(
        "split", fx.split_of(F.col("patient_ref"), validation_pct)
    )
    return TrainingData(frame, f_uri, f_ver, l_uri, l_ver)


VALIDATION = "validation patients (a keyed hash of the pseudonym picks them)"


def require_evaluable(
    rows: DataFrame,
    what: str = VALIDATION,
    fix: str = "train on more patients (e.g. the full archive), or raise ml.validation_pct",
) -> None:
    """Refuse to evaluate on labelled rows that lack a class: with no septic patient (or no sepsis-free hour) AUROC
    and AUPRC are undefined, yet Spark's evaluator reports 0.0, which the gate would compare as a measurement and
    `ml cv` / `ml evaluate` would print as one. ``what`` names the patients in the message (plural).

    The validation patients are chosen by a hash of the keyed pseudonym, so a small archive can leave them without a
    septic patient under one deployment's key and not under another's (150 patients with 15 septic: 0.8^15 = 3.5 %).
    """
    agg = rows.agg(
        F.countDistinct("patient_ref").alias("patients"),
        F.countDistinct(F.when(F.col("sepsis_label") == 1, F.col("patient_ref"))).alias("septic"),
        F.count(F.when(F.col("sepsis_label") == 0, True)).alias("negatives"),
    ).first()
    assert agg is not None
    if not agg["septic"] or not agg["negatives"]:
        lacking = "no septic patient" if not agg["septic"] else "no sepsis-free patient-hour"
        raise LakehouseError(
            f"the {agg['patients']} {what} include {lacking}: AUROC and AUPRC would be undefined", fix=fix
        )


def model_pipeline(max_iter: int, max_depth: int) -> Pipeline:
    """Missing -> -1, assemble FEATURE_COLUMNS, gradient-boosted trees on ``sepsis_label``."""
    fill = ", ".join(f"coalesce(CAST(`{c}` AS DOUBLE), {MISSING}) AS `_f_{c}`" for c in fx.FEATURE_COLUMNS)
    return Pipeline(
        stages=[
            SQLTransformer(statement=f"SELECT *, {fill} FROM __THIS__"),
            VectorAssembler(inputCols=[f"_f_{c}" for c in fx.FEATURE_COLUMNS], outputCol="features_vector"),
            GBTClassifier(
                featuresCol="features_vector", labelCol="sepsis_label", maxIter=max_iter, maxDepth=max_depth,
                stepSize=0.1, subsamplingRate=0.8, seed=SEED,
            ),
        ]
    )  # fmt: skip


def score(model: PipelineModel, rows: DataFrame) -> DataFrame:
    """``rows`` plus ``score``: the model's probability of sepsis within the label horizon."""
    out = model.transform(rows).withColumn("score", vector_to_array(F.col("probability"))[1])
    return out.drop(
        "features_vector", "rawPrediction", "probability", "prediction", *[f"_f_{c}" for c in fx.FEATURE_COLUMNS]
    )


@dataclass(frozen=True)
class Evaluation:
    """Metrics of scored, labelled rows (threshold: the utility-optimal one chosen on training data)."""

    rows: int
    patients: int
    positives: int
    auroc: float
    auprc: float
    utility: float
    threshold: float
    brier: float
    ece: float  # expected calibration error over 10 equal-width bins

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(scored: DataFrame, threshold: float) -> tuple[Evaluation, list[tuple[float, float, int]]]:
    """Metrics of ``scored`` (columns sepsis_label, score, patient_ref, hour_start) and the calibration bins
    (mean score, observed rate, rows)."""
    scored = scored.select("patient_ref", "hour_start", F.col("sepsis_label").cast("double"), "score").cache()
    ev = BinaryClassificationEvaluator(labelCol="sepsis_label", rawPredictionCol="score")
    auroc = ev.setMetricName("areaUnderROC").evaluate(scored)
    auprc = ev.setMetricName("areaUnderPR").evaluate(scored)
    agg = scored.agg(
        F.count("*").alias("n"), F.countDistinct("patient_ref").alias("p"), F.sum("sepsis_label").alias("pos"),
        F.avg((F.col("score") - F.col("sepsis_label")) ** 2).alias("brier"),
    ).first()  # fmt: skip
    assert agg is not None
    bins = (
        scored.withColumn("bin", F.least(F.floor(F.col("score") * 10), F.lit(9)))
        .groupBy("bin")
        .agg(F.avg("score").alias("s"), F.avg("sepsis_label").alias("o"), F.count("*").alias("n"))
        .orderBy("bin")
        .collect()
    )
    calib = [(float(b["s"]), float(b["o"]), int(b["n"])) for b in bins]
    ece = sum(n * abs(s - o) for s, o, n in calib) / max(1, int(agg["n"]))
    utility = normalized_utility(_by_patient(scored), threshold)
    scored.unpersist()
    return (
        Evaluation(int(agg["n"]), int(agg["p"]), int(agg["pos"] or 0), auroc, auprc, utility, threshold,
                   float(agg["brier"]), ece),
        calib,
    )  # fmt: skip


# --------------------------------------------------------------------------- plots


def _plots(
    scored: DataFrame, calib: list[tuple[float, float, int]], importances: list[tuple[str, float]], out: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    pdf: Any = scored.select("sepsis_label", "score").toPandas()
    fpr, tpr, _ = roc_curve(pdf["sepsis_label"], pdf["score"])
    prec, rec, _ = precision_recall_curve(pdf["sepsis_label"], pdf["score"])
    for name, (x, y, xl, yl) in {
        "roc_curve.png": (fpr, tpr, "false positive rate", "true positive rate"),
        "pr_curve.png": (rec, prec, "recall", "precision"),
        "calibration.png": ([c[0] for c in calib], [c[1] for c in calib], "mean predicted risk", "observed rate"),
    }.items():
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(x, y, marker="." if name == "calibration.png" else None)
        if name != "pr_curve.png":
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
    top = importances[:25][::-1]
    fig, ax = plt.subplots(figsize=(6, 7))
    ax.barh([n for n, _ in top], [v for _, v in top])
    ax.set_xlabel("GBT feature importance")
    fig.tight_layout()
    fig.savefig(out / "feature_importance.png")
    plt.close(fig)


# --------------------------------------------------------------------------- train, register, gate


@dataclass(frozen=True)
class TrainResult:
    """The MLflow run of a training and where its model is (a URI, passed on to the next task)."""

    run_id: str
    model_uri: str
    validation: Evaluation
    features_uri: str
    features_version: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "validation": self.validation.as_dict()}


def _mlflow(cfg: Config) -> Any:
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # job logs, not a terminal
    import mlflow

    from lakehouse.security.credentials import export_mlflow_client_env

    export_mlflow_client_env(cfg)  # this profile's user, even if another profile was loaded since

    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    mlflow.set_registry_uri(cfg.mlflow.tracking_uri)
    mlflow.set_experiment(cfg.ml.experiment)
    return mlflow


def train(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    progress: Progress = print,
    tags: dict[str, str] | None = None,
) -> TrainResult:
    """Fit the model on the training patients, evaluate on the validation patients, log everything to MLflow."""
    data = training_data(spark, region, cfg.ml.validation_pct)
    frame = data.frame.cache()
    train_rows = frame.where("split = 'train'")
    valid_rows = frame.where("split = 'validation'")
    n_train, n_valid = train_rows.count(), valid_rows.count()
    if n_train == 0 or n_valid == 0 or train_rows.where("sepsis_label = 1").isEmpty():
        raise LakehouseError(
            f"not enough labelled data to train ({n_train} training and {n_valid} validation patient-hours)",
            fix="build features with labels first: python jobs/build_features.py --psv <PhysioNet archive>",
        )
    require_evaluable(valid_rows)
    mlflow = _mlflow(cfg)
    # idempotent per data interval: a finished run of the same inputs, trees and depth is reused
    if tags and "interval" in tags:
        done = mlflow.search_runs(
            filter_string=f"tags.interval = '{tags['interval']}' AND params.features_version = '{data.features_version}'"
            f" AND params.features_uri = '{data.features_uri}' AND params.max_iter = '{cfg.ml.max_iter}'"
            f" AND params.max_depth = '{cfg.ml.max_depth}' AND attributes.status = 'FINISHED'",
            output_format="list", max_results=1,
        )  # fmt: skip
        if done:
            run_id, m = done[0].info.run_id, done[0].data.metrics
            progress(f"reusing finished run {run_id} of interval {tags['interval']} (same feature version)")
            frame.unpersist()
            fields = {k: m[k] for k in ("auroc", "auprc", "utility", "threshold", "brier", "ece")}
            ev = Evaluation(int(m["rows"]), int(m["patients"]), int(m["positives"]), **fields)
            return TrainResult(run_id, f"runs:/{run_id}/model", ev, data.features_uri, data.features_version)
    progress(f"training GBT on {n_train} patient-hours, validating on {n_valid} ({len(fx.FEATURE_COLUMNS)} features)")
    from mlflow.models import infer_signature

    with mlflow.start_run(tags=tags or {}) as run:
        mlflow.log_params({
            "model": "spark.ml.GBTClassifier", "max_iter": cfg.ml.max_iter, "max_depth": cfg.ml.max_depth,
            "features": len(fx.FEATURE_COLUMNS), "validation_pct": cfg.ml.validation_pct, "split": "by patient (xxhash64)",
            "features_uri": data.features_uri, "features_version": data.features_version,
            "labels_uri": data.labels_uri, "labels_version": data.labels_version, "region": region.name,
            "train_rows": n_train, "validation_rows": n_valid,
        })  # fmt: skip
        try:  # the catalog entry, so MLflow records a Delta source with its version
            dataset = mlflow.data.from_spark(
                frame.drop("split"), table_name="gold.features_hourly", version=str(data.features_version)
            )
        except Exception:  # noqa: BLE001 - no catalog entry: the path (its version is in the params)
            dataset = mlflow.data.from_spark(frame.drop("split"), path=data.features_uri)
        mlflow.log_input(dataset, context="training")
        model = model_pipeline(cfg.ml.max_iter, cfg.ml.max_depth).fit(train_rows)
        threshold = best_threshold(_by_patient(score(model, train_rows)))
        scored_valid = score(model, valid_rows).cache()
        ev, calib = evaluate(scored_valid, threshold)
        progress(f"validation: AUROC {ev.auroc:.3f}, AUPRC {ev.auprc:.3f}, utility {ev.utility:.3f} at {threshold:.2f}")
        mlflow.log_metrics({k: float(v) for k, v in ev.as_dict().items()})
        gbt: Any = model.stages[-1]
        importances = sorted(
            zip(fx.FEATURE_COLUMNS, gbt.featureImportances.toArray().tolist(), strict=True), key=lambda kv: -kv[1]
        )
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            _plots(scored_valid, calib, importances, out)
            (out / "feature_importance.json").write_text(json.dumps(dict(importances), indent=1))
            (out / "calibration.json").write_text(json.dumps(calib))
            mlflow.log_artifacts(str(out), artifact_path="evaluation")
        # doubles: integer features may be missing (null) at serving time, which int64 cannot hold
        example = valid_rows.select(*(F.col(c).cast("double") for c in fx.FEATURE_COLUMNS)).limit(5).toPandas()
        signature = infer_signature(example, scored_valid.select("score").limit(5).toPandas())
        mlflow.spark.log_model(model, "model", signature=signature, input_example=example,
                               pip_requirements=model_requirements())  # fmt: skip
        scored_valid.unpersist()
    frame.unpersist()
    return TrainResult(run.info.run_id, f"runs:/{run.info.run_id}/model", ev, data.features_uri, data.features_version)


def model_requirements() -> list[str]:
    """The pip requirements logged with the model: what the pipeline's stages (pure Spark ML) and MLflow's Spark
    flavor import, pinned to this environment. Given explicitly, MLflow skips inferring them, which loads the
    model in a second Python process with a Spark JVM of its own (about a minute of every training here)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "pyspark", "pandas", "numpy", "pyarrow")]


def finished_run(cfg: Config, interval: str) -> str:
    """The id of the latest finished training run tagged with data interval ``interval``."""
    runs = _mlflow(cfg).search_runs(
        filter_string=f"tags.interval = '{interval}' AND attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], output_format="list", max_results=1,
    )  # fmt: skip
    if not runs:
        raise LakehouseError(f"no finished training run of interval {interval}", fix="run the train step first")
    return str(runs[0].info.run_id)


def register(cfg: Config, model_uri: str, run_id: str) -> int:
    """Register the run's model as a new version of ``ml.model_name`` and point the challenger alias at it."""
    mlflow = _mlflow(cfg)
    client = mlflow.MlflowClient()
    existing = client.search_model_versions(f"name = '{cfg.ml.model_name}' AND run_id = '{run_id}'")
    version = existing[0] if existing else mlflow.register_model(model_uri, cfg.ml.model_name, tags={"run_id": run_id})
    client.set_registered_model_alias(cfg.ml.model_name, CHALLENGER, version.version)
    return int(version.version)


@dataclass(frozen=True)
class GateDecision:
    """The promotion gate's verdict on one challenger, recorded as model-version tags."""

    challenger: int
    champion: int | None
    metric: str
    challenger_value: float
    champion_value: float | None
    tolerance: float
    promoted: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate(spark: SparkSession, cfg: Config, region: RegionConfig, progress: Progress = print) -> GateDecision:
    """Compare challenger and champion on the same validation patients; promote unless the challenger is worse
    by more than ``ml.gate_tolerance``. Every decision is tagged on the challenger's version."""
    import mlflow.spark as mlspark

    mlflow = _mlflow(cfg)
    client = mlflow.MlflowClient()
    name, metric = cfg.ml.model_name, cfg.ml.gate_metric
    challenger = client.get_model_version_by_alias(name, CHALLENGER)
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 - MlflowException when the alias is not set: no champion yet
        champion = None
    valid = training_data(spark, region, cfg.ml.validation_pct).frame.where("split = 'validation'").cache()
    require_evaluable(valid)

    def measure(version: Any) -> float:
        run = client.get_run(version.run_id)
        threshold = float(run.data.metrics.get("threshold", 0.5))
        model = mlspark.load_model(f"models:/{name}/{version.version}")
        ev, _ = evaluate(score(model, valid), threshold)
        return float(getattr(ev, metric))

    ch_value = measure(challenger)
    if champion is None or champion.version == challenger.version:
        decision = GateDecision(int(challenger.version), None, metric, ch_value, None, cfg.ml.gate_tolerance, True,
                                "no champion yet")  # fmt: skip
    else:
        cp_value = measure(champion)
        ok = ch_value >= cp_value - cfg.ml.gate_tolerance
        why = f"challenger {metric} {ch_value:.4f} vs champion {cp_value:.4f} (tolerance {cfg.ml.gate_tolerance:g})"
        decision = GateDecision(int(challenger.version), int(champion.version), metric, ch_value, cp_value,
                                cfg.ml.gate_tolerance, ok, why)  # fmt: skip
    valid.unpersist()
    for key, value in decision.as_dict().items():
        client.set_model_version_tag(name, str(challenger.version), f"gate.{key}", str(value))
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, str(challenger.version))
    outcome = "promoted" if decision.promoted else "kept_champion"
    audit.record(region, audit.entry("model.promotion_gate", f"{name}/{challenger.version}", region.name, outcome,
                                     decision.as_dict()))  # fmt: skip
    progress(f"gate: {'promoted' if decision.promoted else 'kept the champion'} ({decision.reason})")
    return decision


def version_history(cfg: Config) -> list[dict[str, Any]]:
    """Every registered version of ``ml.model_name``, oldest first: when it was registered, its aliases, its
    training run's validation metrics and the gate's verdict (what the model notebook charts over time)."""
    from datetime import UTC, datetime

    client = _mlflow(cfg).MlflowClient()
    out = []
    for v in client.search_model_versions(f"name = '{cfg.ml.model_name}'"):
        metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
        out.append({
            "version": int(v.version), "registered": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC),
            "aliases": ",".join(sorted(v.aliases or [])),
            **{m: metrics.get(m) for m in ("auroc", "auprc", "utility", "threshold", "ece")},
            "validation_rows": metrics.get("rows"), "gate_promoted": v.tags.get("gate.promoted"),
            "gate_reason": v.tags.get("gate.reason"),
        })  # fmt: skip
    return sorted(out, key=lambda row: row["version"])
