"""Gold tables: their schemas and the pure ``DataFrame -> DataFrame`` transforms that fill them.

``gold.news2`` and ``gold.alerts`` are written by the real-time query (``news2_job``, per-patient state in
``lakehouse.clinical.early_warning``); the windowed vital aggregates by ``gold_job``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.clinical.early_warning import OBSERVED_VITALS
from lakehouse.clinical.news2 import NEWS2_INPUT_SCHEMA, NEWS2_OUTPUT_SCHEMA

# gold.news2: one row per final patient observation; key (patient_ref, observation_time = event time); the
# latest value of each vital carried forward up to news2_carry_forward_s; parameters_present says which counted.
NEWS2_SCHEMA = T.StructType(
    [
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("observation_time", T.TimestampType(), False),
        T.StructField("observation_date", T.DateType(), False),
        T.StructField("ward", T.StringType(), True),
        *(T.StructField(v, T.DoubleType(), True) for v in OBSERVED_VITALS),
        *(f for f in NEWS2_INPUT_SCHEMA if f.name in ("on_oxygen", "consciousness", "spo2_scale")),
        *NEWS2_OUTPUT_SCHEMA,
        T.StructField("last_event_time", T.TimestampType(), False),
        T.StructField("computed_time", T.TimestampType(), False),
    ]
)

# gold.alerts: one row per alert episode; key alert_id; at most one open alert per patient (and so per level).
ALERTS_SCHEMA = T.StructType(
    [
        T.StructField("alert_id", T.StringType(), False),
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("ward", T.StringType(), True),
        T.StructField("level", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("news2_total", T.IntegerType(), True),
        T.StructField("triggering_parameters", T.ArrayType(T.StringType()), True),
        T.StructField("opened_observation_time", T.TimestampType(), False),
        T.StructField("opened_event_time", T.TimestampType(), False),
        T.StructField("opened_time", T.TimestampType(), False),
        T.StructField("latest_observation_time", T.TimestampType(), False),
        T.StructField("latest_total", T.IntegerType(), True),
        T.StructField("closed_observation_time", T.TimestampType(), True),
        T.StructField("closed_time", T.TimestampType(), True),
        T.StructField("opened_date", T.DateType(), False),
    ]
)

# gold.vitals_minute / gold.vitals_hourly: one row per patient, vital and event-time window; key
# (patient_ref, vital, window_start); values in the vital's canonical UCUM unit.
WINDOW_SCHEMA = T.StructType(
    [
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("vital", T.StringType(), False),
        T.StructField("unit", T.StringType(), False),
        T.StructField("window_start", T.TimestampType(), False),
        T.StructField("window_end", T.TimestampType(), False),
        T.StructField("window_date", T.DateType(), False),
        T.StructField("ward", T.StringType(), True),
        T.StructField("n", T.LongType(), False),
        T.StructField("min", T.DoubleType(), True),
        T.StructField("max", T.DoubleType(), True),
        T.StructField("mean", T.DoubleType(), True),
        T.StructField("stddev", T.DoubleType(), True),
        T.StructField("last_event_time", T.TimestampType(), True),
        T.StructField("updated_time", T.TimestampType(), False),
    ]
)


def windowed_vitals(vitals: DataFrame, duration: str, watermark_s: int) -> DataFrame:
    """Per patient, vital and event-time window: count, min, max, mean, stddev (late rows beyond the
    watermark are dropped here, counted by Spark as rows dropped by watermark, and stay in silver)."""
    return (
        vitals.withWatermark("event_time", f"{watermark_s} seconds")
        .groupBy(F.window("event_time", duration), "patient_ref", "vital", "unit")
        .agg(
            F.max_by("ward", "event_time").alias("ward"),
            F.count(F.lit(1)).alias("n"),
            F.min("value").alias("min"),
            F.max("value").alias("max"),
            F.avg("value").alias("mean"),
            F.stddev("value").alias("stddev"),
            F.max("event_time").alias("last_event_time"),
        )
        .select(
            "patient_ref",
            "vital",
            "unit",
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            F.to_date("window.start").alias("window_date"),
            "ward",
            "n",
            "min",
            "max",
            "mean",
            "stddev",
            "last_event_time",
            F.current_timestamp().alias("updated_time"),
        )
    )
