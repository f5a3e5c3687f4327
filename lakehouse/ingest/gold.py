"""Silver -> gold transforms: per-patient observations with NEWS2, alert levels, windowed vital aggregates.

Pure ``DataFrame -> DataFrame`` functions; the jobs that MERGE their output live in ``silver_job`` (NEWS2
and alerts, in the same micro-batch that accepts the measurements, for latency) and ``gold_job``
(windowed aggregates).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.clinical.news2 import NEWS2_INPUT_SCHEMA, NEWS2_OUTPUT_SCHEMA, with_news2

OBSERVED_VITALS = (
    "respiratory_rate",
    "spo2",
    "fio2",
    "systolic_bp",
    "diastolic_bp",
    "mean_arterial_pressure",
    "heart_rate",
    "temperature",
)

# gold.news2: one row per patient observation (patient_ref, observation_time = event minute); NEWS2 of the
# latest value of each vital measured in that minute; parameters_present says which were measured.
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

ALERT_LEVELS = ("single_parameter", "medium", "high")

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


def _latest(vital: str) -> Column:
    at = F.when(F.col("vital") == F.lit(vital), F.col("event_time"))
    return F.max_by(F.when(F.col("vital") == F.lit(vital), F.col("value")), at).alias(vital)


def to_observations(vitals: DataFrame) -> DataFrame:
    """``silver.vitals`` rows -> one row per patient and event minute with the latest value of each vital."""
    return (
        vitals.withColumn("observation_time", F.date_trunc("minute", "event_time"))
        .groupBy("patient_ref", "observation_time")
        .agg(
            F.max_by("ward", "event_time").alias("ward"),
            *(_latest(v) for v in OBSERVED_VITALS),
            F.max("event_time").alias("last_event_time"),
        )
    )


def combine_observations(new: DataFrame, existing: DataFrame) -> DataFrame:
    """Merge a batch's observations with the stored rows of the same keys: new values win, gaps are kept."""
    keys = ["patient_ref", "observation_time"]
    old = existing.select(
        *keys,
        F.col("ward").alias("old_ward"),
        *(F.col(v).alias(f"old_{v}") for v in OBSERVED_VITALS),
        F.col("last_event_time").alias("old_last_event_time"),
    )
    return new.join(old, keys, "left").select(
        *keys,
        F.coalesce("ward", "old_ward").alias("ward"),
        *(F.coalesce(v, f"old_{v}").alias(v) for v in OBSERVED_VITALS),
        F.greatest("last_event_time", "old_last_event_time").alias("last_event_time"),
    )


def to_news2(observations: DataFrame) -> DataFrame:
    """Observations -> ``gold.news2`` rows. Air/oxygen comes from FiO2 when measured; consciousness
    is not device-measured, so it is assumed Alert and flagged (``consciousness_assumed``)."""
    scored = with_news2(
        observations.withColumn("on_oxygen", F.lit(None).cast("boolean"))
        .withColumn("consciousness", F.lit(None).cast("string"))
        .withColumn("spo2_scale", F.lit(None).cast("int"))
    )
    return scored.withColumn("observation_date", F.to_date("observation_time")).select(
        *[F.col(f.name).cast(f.dataType) if f.name != "computed_time" else F.current_timestamp().alias(f.name)
          for f in NEWS2_SCHEMA]
    )  # fmt: skip


def with_alert_level(news2: DataFrame) -> DataFrame:
    """Adds ``alert_level``: high (NEWS2 >= 7, emergency), medium (>= 5), single_parameter (a 3), else null."""
    total = F.col("news2_total")
    return news2.withColumn(
        "alert_level",
        F.when(total >= 7, F.lit("high"))
        .when(total >= 5, F.lit("medium"))
        .when(F.col("any_parameter_3"), F.lit("single_parameter")),
    )


def latest_per_patient(news2: DataFrame) -> DataFrame:
    """The most recent observation of each patient."""
    w = Window.partitionBy("patient_ref").orderBy(F.col("observation_time").desc())
    return news2.withColumn("_rn", F.row_number().over(w)).filter("_rn = 1").drop("_rn")


def triggering_parameters(news2: DataFrame) -> Column:
    """Names of the parameters that scored 3 (for the alert payload)."""
    names = [f.name.removeprefix("score_") for f in NEWS2_OUTPUT_SCHEMA if f.name.startswith("score_")]
    return F.filter(F.array(*[F.when(F.col(f"score_{n}") == 3, F.lit(n)) for n in names]), lambda x: x.isNotNull())


def new_alerts(latest: DataFrame, open_alerts: DataFrame) -> DataFrame:
    """Alerts to open: patients whose latest observation has a level with no open alert of that level."""
    candidates = with_alert_level(latest).filter(F.col("alert_level").isNotNull())
    opened = candidates.join(
        open_alerts.select("patient_ref", F.col("level").alias("alert_level")),
        ["patient_ref", "alert_level"],
        "left_anti",
    )
    return opened.select(
        F.sha2(F.concat_ws("|", "patient_ref", "alert_level", F.col("observation_time").cast("string")), 256).alias(
            "alert_id"
        ),
        "patient_ref",
        "ward",
        F.col("alert_level").alias("level"),
        F.lit("open").alias("status"),
        "news2_total",
        triggering_parameters(latest).alias("triggering_parameters"),
        F.col("observation_time").alias("opened_observation_time"),
        F.col("last_event_time").alias("opened_event_time"),
        F.current_timestamp().alias("opened_time"),
        F.col("observation_time").alias("latest_observation_time"),
        F.col("news2_total").alias("latest_total"),
        F.lit(None).cast("timestamp").alias("closed_observation_time"),
        F.lit(None).cast("timestamp").alias("closed_time"),
        F.to_date("observation_time").alias("opened_date"),
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
