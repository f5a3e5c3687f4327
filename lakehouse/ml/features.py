"""Point-in-time features per patient-hour for the sepsis model, and the PhysioNet labels joined to them.

Input: measurements in long form (``patient_ref, event_time, vital, value``, canonical units as in
silver.vitals), from silver or from PhysioNet ``.psv`` files through the same code. Output grain: one row per
patient and hour (``hour_start``), from the patient's first measured hour to the last, gaps filled.

Point-in-time correct by construction: the row of hour *t* summarises measurements with event time before
*t* + 1 h only. Every window is a trailing frame over the dense hourly grid (``rowsBetween(-n, 0)``), the
carried-forward values look back only, and the grid starts at the first measured hour (which later data
cannot move). Tests change and shuffle future data and check rows up to *t* stay identical.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.clinical.news2 import with_news2

# Vitals (silver.vitals names, canonical units) the model sees, with their short feature-column prefix.
VITALS: dict[str, str] = {
    "heart_rate": "hr",
    "spo2": "spo2",
    "temperature": "temp",
    "systolic_bp": "sbp",
    "diastolic_bp": "dbp",
    "mean_arterial_pressure": "map",
    "respiratory_rate": "resp",
    "fio2": "fio2",
}
WINDOWS_H = (6, 24)  # trailing windows of the rolling statistics, hours (the current hour included)
TREND_H = 6  # trend: carried-forward value now minus the one TREND_H hours earlier
NEWS2_COMPONENTS = ("respiratory_rate", "spo2", "air_or_oxygen", "systolic_bp", "heart_rate", "temperature")

MEASUREMENTS_SCHEMA = T.StructType(
    [
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("event_time", T.TimestampType(), False),
        T.StructField("vital", T.StringType(), False),
        T.StructField("value", T.DoubleType(), True),
    ]
)
LABELS_SCHEMA = T.StructType(
    [
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("hour_start", T.TimestampType(), False),
        T.StructField("iculos", T.IntegerType(), False),
        T.StructField("sepsis_label", T.IntegerType(), False),
    ]
)


def _feature_fields() -> list[tuple[str, T.DataType, str]]:
    out: list[tuple[str, T.DataType, str]] = []
    for vital, p in VITALS.items():
        name = vital.replace("_", " ")
        out += [
            (f"{p}", T.DoubleType(), f"Latest {name} at or before the end of the hour (carried forward); null if never measured."),
            (f"{p}_measured", T.IntegerType(), f"1 when {name} was measured in this hour, else 0 (missingness indicator)."),
            (f"{p}_hours_since", T.IntegerType(), f"Hours since the last hour {name} was measured (0: this hour); null if never."),
            (f"{p}_count_24h", T.IntegerType(), f"Hours with a {name} measurement in the trailing 24 h (current hour included)."),
            (f"{p}_delta_{TREND_H}h", T.DoubleType(), f"Trend: carried-forward {name} now minus {TREND_H} h earlier; null if either is unknown."),
        ]  # fmt: skip
        for w in WINDOWS_H:
            for stat in ("mean", "min", "max", "std"):
                out.append(
                    (f"{p}_{stat}_{w}h", T.DoubleType(),
                     f"{stat} of the hourly {name} values measured in the trailing {w} h; null if none (std: fewer than 2).")
                )  # fmt: skip
    for comp in NEWS2_COMPONENTS:
        out.append((f"news2_{comp}", T.IntegerType(), f"NEWS2 sub-score of {comp.replace('_', ' ')} (0-3) from the carried-forward values; null if unknown."))  # fmt: skip
    out.append(("news2_total", T.IntegerType(), "NEWS2 total of the sub-scores above (consciousness assumed Alert); null if nothing measured."))  # fmt: skip
    out.append(("hours_observed", T.IntegerType(), "Hours since the patient's first measured hour (0 at the first)."))
    return out


FEATURE_FIELDS = _feature_fields()
FEATURE_COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in FEATURE_FIELDS)

# gold.features_hourly: one row per (patient_ref, hour_start), point-in-time features (see the module docstring).
FEATURES_SCHEMA = T.StructType(
    [
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("hour_start", T.TimestampType(), False),
        T.StructField("hour_date", T.DateType(), False),
        *(T.StructField(name, dtype, True) for name, dtype, _ in FEATURE_FIELDS),
        T.StructField("computed_time", T.TimestampType(), False),
    ]
)
FEATURES_COMMENTS: dict[str, str] = {
    "patient_ref": "Patient pseudonym (as in silver.vitals). Key part 1 of (patient_ref, hour_start).",
    "hour_start": "Start of the hour, UTC; the row uses measurements with event_time < hour_start + 1 h. Key part 2.",
    "hour_date": "UTC date of hour_start (partition column).",
    **{name: comment for name, _, comment in FEATURE_FIELDS},
    "computed_time": "When the feature job wrote this row, UTC.",
}


def measurements_from_silver(vitals: DataFrame) -> DataFrame:
    """silver.vitals -> the long measurement frame (only the model's vitals)."""
    return vitals.where(F.col("vital").isin(*VITALS)).select(
        "patient_ref", "event_time", "vital", F.col("value").cast("double").alias("value")
    )


def hourly_features(measurements: DataFrame) -> DataFrame:
    """Measurements (``patient_ref, event_time, vital, value``) -> one row per patient-hour with the features of
    FEATURES_SCHEMA (without computed_time). Non-finite values count as not measured."""
    m = measurements.where(F.col("value").isNotNull() & ~F.isnan("value") & F.col("vital").isin(*VITALS))
    m = m.withColumn("hour_start", F.date_trunc("hour", "event_time"))
    # the hour's value of a vital: its latest measurement in the hour (ties: the larger value, deterministic)
    hourly = (
        m.groupBy("patient_ref", "hour_start")
        .pivot("vital", list(VITALS))
        .agg(F.max_by("value", F.struct("event_time", "value")))
    )
    spans = m.groupBy("patient_ref").agg(F.min("hour_start").alias("first"), F.max("hour_start").alias("last"))
    grid = spans.select(
        "patient_ref", "first",
        F.explode(F.sequence("first", "last", F.expr("INTERVAL 1 HOUR"))).alias("hour_start"),
    )  # fmt: skip
    dense = grid.join(hourly, ["patient_ref", "hour_start"], "left").withColumn(
        "hours_observed", ((F.unix_timestamp("hour_start") - F.unix_timestamp("first")) / 3600).cast("int")
    )
    by_patient = Window.partitionBy("patient_ref").orderBy("hour_start")
    upto_now = by_patient.rowsBetween(Window.unboundedPreceding, 0)
    cols: dict[str, Column] = {}
    for vital, p in VITALS.items():
        obs = F.col(vital)
        ffill = F.last(obs, ignorenulls=True).over(upto_now)
        last_seen = F.last(F.when(obs.isNotNull(), F.col("hours_observed")), ignorenulls=True).over(upto_now)
        cols[p] = ffill
        cols[f"{p}_measured"] = obs.isNotNull().cast("int")
        cols[f"{p}_hours_since"] = F.col("hours_observed") - last_seen
        cols[f"{p}_count_24h"] = F.count(obs).over(by_patient.rowsBetween(-23, 0)).cast("int")
        for w in WINDOWS_H:
            frame = by_patient.rowsBetween(-(w - 1), 0)
            cols[f"{p}_mean_{w}h"] = F.avg(obs).over(frame)
            cols[f"{p}_min_{w}h"] = F.min(obs).over(frame)
            cols[f"{p}_max_{w}h"] = F.max(obs).over(frame)
            cols[f"{p}_std_{w}h"] = F.stddev_samp(obs).over(frame)
    withcols = dense.withColumns(cols)
    # trend from the carried-forward values (a second pass: lag over the filled column)
    withcols = withcols.withColumns(
        {f"{p}_delta_{TREND_H}h": F.col(p) - F.lag(p, TREND_H).over(by_patient) for p in VITALS.values()}
    )
    news2_in = withcols.withColumns(
        {
            **{vital: F.col(p) for vital, p in VITALS.items()},  # NEWS2 scores the carried-forward values
            "on_oxygen": F.lit(None).cast("boolean"),
            "consciousness": F.lit(None).cast("string"),  # not in the data: assumed Alert (0)
            "spo2_scale": F.lit(None).cast("int"),
        }
    )
    scored = with_news2(news2_in).withColumns({f"news2_{c}": F.col(f"score_{c}") for c in NEWS2_COMPONENTS})
    return scored.select(
        "patient_ref",
        "hour_start",
        F.to_date("hour_start").alias("hour_date"),
        *(F.col(name).cast(dtype).alias(name) for name, dtype, _ in FEATURE_FIELDS),
    )


def with_computed_time(features: DataFrame, now: datetime | None = None) -> DataFrame:
    """The feature rows as gold.features_hourly stores them (``computed_time`` appended)."""
    moment = now or datetime.now(UTC)
    return features.withColumn("computed_time", F.lit(moment.replace(tzinfo=None)).cast("timestamp"))


# --------------------------------------------------------------------------- PhysioNet (.psv) source

PSV_ORIGIN = datetime(2020, 1, 1, tzinfo=UTC)  # event time of ICULOS 0 when features are built from files


def measurements_from_records(
    spark: SparkSession, records: Iterable[object], origin: datetime = PSV_ORIGIN
) -> DataFrame:
    """PhysioNet patient records -> the long measurement frame, exactly as the replay would land them in
    silver (event time = origin + ICULOS hours, FiO2 converted from a fraction to %).

    Built as Arrow columns (not Python rows): the whole of training set A is about 4 million measurements.
    """
    from lakehouse.devices.physionet import CONTRACT_VITALS, PatientRecord

    wanted = [(column, vital) for column, (vital, _unit) in CONTRACT_VITALS.items() if vital in VITALS]
    patient: list[Any] = []
    hours: list[int] = []
    vital_of: list[str] = []
    values: list[float] = []
    for rec in records:
        assert isinstance(rec, PatientRecord)
        for hour in rec.rows:
            for column, vital in wanted:
                value = hour.vitals.get(column)
                if value is not None:
                    patient.append(rec.patient_id)
                    hours.append(hour.iculos)
                    vital_of.append(vital)
                    values.append(value * 100.0 if column == "FiO2" else float(value))
    return spark.createDataFrame(
        _arrow(MEASUREMENTS_SCHEMA, [patient, _event_times(hours, origin), vital_of, values]), MEASUREMENTS_SCHEMA
    )


def labels_from_records(spark: SparkSession, records: Iterable[object], origin: datetime = PSV_ORIGIN) -> DataFrame:
    """PhysioNet patient records -> one label row per patient-hour (``SepsisLabel`` at hour origin + ICULOS)."""
    from lakehouse.devices.physionet import PatientRecord

    patient: list[str] = []
    hours: list[int] = []
    labels: list[int] = []
    for rec in records:
        assert isinstance(rec, PatientRecord)
        for h in rec.rows:
            patient.append(rec.patient_id)
            hours.append(h.iculos)
            labels.append(int(h.sepsis_label))
    return spark.createDataFrame(
        _arrow(LABELS_SCHEMA, [patient, _event_times(hours, origin), hours, labels]), LABELS_SCHEMA
    )


# the fields of a replayed PhysioNet message (vitals.v1, lakehouse.devices.physionet.to_message) labels need
_REPLAY_LABEL_FIELDS = T.StructType(
    [
        T.StructField("patient_ref", T.StringType()),
        T.StructField("event_time", T.StringType()),
        T.StructField("source", T.StructType([
            T.StructField("dataset", T.StringType()), T.StructField("iculos", T.IntegerType()),
            T.StructField("sepsis_label", T.IntegerType()),
        ])),
    ]
)  # fmt: skip


def labels_from_bronze(bronze: DataFrame) -> DataFrame:
    """bronze.telemetry rows -> gold.sepsis_labels rows: the SepsisLabel a PhysioNet replay carries in each
    message (``source.sepsis_label``) at the hour of its event time, one row per patient-hour (a duplicate
    delivery counts once; if copies disagree, 1 wins). Device telemetry and unparseable records give none."""
    from lakehouse.devices.physionet import DATASET

    msg = F.from_json(F.col("value").cast("string"), _REPLAY_LABEL_FIELDS, {"mode": "PERMISSIVE"})
    rows = bronze.select(msg.alias("m")).select(
        F.col("m.patient_ref").alias("patient_ref"),
        F.date_trunc("hour", F.col("m.event_time").cast("timestamp")).alias("hour_start"),
        F.col("m.source.iculos").alias("iculos"),
        F.col("m.source.sepsis_label").alias("sepsis_label"),
        F.col("m.source.dataset").alias("dataset"),
    )
    labelled = rows.where(
        (F.col("dataset") == DATASET) & F.col("patient_ref").isNotNull() & F.col("hour_start").isNotNull()
        & F.col("iculos").isNotNull() & F.col("sepsis_label").isin(0, 1)
    )  # fmt: skip
    return labelled.groupBy("patient_ref", "hour_start").agg(
        F.max("iculos").cast("int").alias("iculos"), F.max("sepsis_label").cast("int").alias("sepsis_label")
    )


def labelled_rows(spark: SparkSession, records: Iterable[object], origin: datetime = PSV_ORIGIN) -> DataFrame:
    """Every labelled hour of PhysioNet records with its features (all null for hours before the patient's first
    measurement: the challenge's utility counts those hours too). Grain: patient-hour; key (patient_ref, hour_start)."""
    records = list(records)
    feats = hourly_features(measurements_from_records(spark, records, origin))
    labels = labels_from_records(spark, records, origin).select("patient_ref", "hour_start", "sepsis_label")
    return labels.join(feats, ["patient_ref", "hour_start"], "left")


def _event_times(iculos: list[int], origin: datetime) -> list[datetime]:
    """origin + ICULOS hours, as UTC datetimes (one object per distinct hour, shared)."""
    base = origin.astimezone(UTC)
    cache: dict[int, datetime] = {}
    return [cache.setdefault(h, base + timedelta(hours=h)) for h in iculos]


def _arrow(schema: T.StructType, columns: list[list[Any]]) -> Any:
    """Columns -> a pyarrow Table with the Spark ``schema``'s names and types (UTC timestamps)."""
    import pyarrow as pa

    kinds = {T.StringType: pa.string(), T.IntegerType: pa.int32(), T.DoubleType: pa.float64(),
             T.TimestampType: pa.timestamp("us", tz="UTC")}  # fmt: skip
    return pa.table(
        {f.name: pa.array(col, type=kinds[type(f.dataType)]) for f, col in zip(schema.fields, columns, strict=True)}
    )


def hour_range_sql(start: datetime, end: datetime) -> str:
    """``hour_start`` in [start, end) as SQL text (what Delta's ``replaceWhere`` takes), UTC."""
    fmt = "%Y-%m-%d %H:%M:%S"
    return f"hour_start >= '{start.astimezone(UTC):{fmt}}' AND hour_start < '{end.astimezone(UTC):{fmt}}'"


def hour_range(start: datetime, end: datetime) -> Column:
    """``hour_start`` in [start, end) as a Column (timestamps compared as UTC wall time, the session zone)."""
    lo, hi = (moment.astimezone(UTC).replace(tzinfo=None) for moment in (start, end))
    return (F.col("hour_start") >= F.lit(lo)) & (F.col("hour_start") < F.lit(hi))


def split_of(patient_ref: Column, validation_pct: int = 20, seed: int = 7) -> Column:
    """``train`` or ``validation`` by a stable hash of the patient (never by row: all hours of a patient land
    in the same split)."""
    bucket = F.pmod(F.xxhash64(F.lit(seed), patient_ref), F.lit(100))
    return F.when(bucket < F.lit(validation_pct), F.lit("validation")).otherwise(F.lit("train"))


def fold_of(patient_ref: Column, folds: int, seed: int = 7) -> Column:
    """Cross-validation fold 0..folds-1 of a patient (stable hash; a patient's hours share one fold)."""
    return F.pmod(F.xxhash64(F.lit(seed + 1), patient_ref), F.lit(folds)).cast("int")
