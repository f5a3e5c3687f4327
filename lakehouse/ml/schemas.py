"""Schemas of the model-serving tables (gold.risk_scores, gold.model_drift), apart from the code that writes
them so the table registry (lakehouse.tables) can import them without the ML stack."""

from __future__ import annotations

from pyspark.sql import types as T

# gold.risk_scores: one row per (patient_ref, hour_start): the champion's sepsis risk of that patient-hour.
RISK_SCORES_SCHEMA = T.StructType(
    [
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("hour_start", T.TimestampType(), False),
        T.StructField("hour_date", T.DateType(), False),
        T.StructField("risk_score", T.DoubleType(), False),
        T.StructField("threshold", T.DoubleType(), False),
        T.StructField("above_threshold", T.BooleanType(), False),
        T.StructField("news2_total", T.IntegerType(), True),
        T.StructField("model_name", T.StringType(), False),
        T.StructField("model_version", T.IntegerType(), False),
        T.StructField("alert_id", T.StringType(), True),
        T.StructField("alert_since", T.TimestampType(), True),
        T.StructField("scored_time", T.TimestampType(), False),
    ]
)
RISK_SCORES_COMMENTS: dict[str, str] = {
    "patient_ref": "Patient pseudonym (as in silver.vitals). Key part 1 of (patient_ref, hour_start).",
    "hour_start": "The scored hour (its gold.features_hourly row), UTC. Key part 2.",
    "hour_date": "UTC date of hour_start (partition column).",
    "risk_score": "The model's probability of sepsis within the label horizon (0-1).",
    "threshold": "Risk at or above which a sepsis_risk alert is raised (ml.alert_threshold or the model's own).",
    "above_threshold": "risk_score >= threshold.",
    "news2_total": "NEWS2 total of the hour's carried-forward vitals (from the features), for context.",
    "model_name": "Registered MLflow model that scored the row (sepsis_risk).",
    "model_version": "Its version: the champion when the row was scored.",
    "alert_id": "The open sepsis_risk alert (gold.alerts) this hour belongs to; null below the threshold or when "
    "scored in batch.",
    "alert_since": "Hour the alert episode opened, UTC.",
    "scored_time": "When the row was scored, UTC.",
}

# gold.model_drift: one row per (computed_time, model_version, feature): population stability index of a live
# window against the model's training data.
MODEL_DRIFT_SCHEMA = T.StructType(
    [
        T.StructField("computed_time", T.TimestampType(), False),
        T.StructField("computed_date", T.DateType(), False),
        T.StructField("model_name", T.StringType(), False),
        T.StructField("model_version", T.IntegerType(), False),
        T.StructField("feature", T.StringType(), False),
        T.StructField("psi", T.DoubleType(), False),
        T.StructField("level", T.StringType(), False),
        T.StructField("bins", T.IntegerType(), False),
        T.StructField("reference_rows", T.LongType(), False),
        T.StructField("live_rows", T.LongType(), False),
        T.StructField("window_start", T.TimestampType(), False),
        T.StructField("window_end", T.TimestampType(), False),
        T.StructField("reference", T.StringType(), False),
    ]
)
MODEL_DRIFT_COMMENTS: dict[str, str] = {
    "computed_time": "When the drift check ran, UTC. Key part 1 of (computed_time, model_version, feature).",
    "computed_date": "UTC date of computed_time (partition column).",
    "model_name": "Registered MLflow model whose training data is the reference (sepsis_risk).",
    "model_version": "Its version (the champion at the time of the check). Key part 2.",
    "feature": "A gold.features_hourly column, or 'risk_score' for the model's output. Key part 3.",
    "psi": "Population stability index, live window vs reference: sum over bins of (live - ref) * ln(live / ref).",
    "level": "ok (psi < 0.1), moderate (< 0.25) or major (>= 0.25): the usual PSI reading.",
    "bins": "Bins compared: deciles of the reference (fewer when values repeat) plus one for missing values.",
    "reference_rows": "Rows of the reference (the training split of the model's input, at its Delta version).",
    "live_rows": "Rows of the live window.",
    "window_start": "Start of the live window (hour_start >=), UTC.",
    "window_end": "End of the live window (hour_start <), UTC.",
    "reference": "The reference data: <table uri>@v<Delta version> of the model's training run.",
}
