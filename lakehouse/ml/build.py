"""The feature job: gold.features_hourly for an interval from silver.vitals, or a backfill (features and labels)
from PhysioNet ``.psv`` files through the same feature code. Idempotent: each run replaces exactly its range."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import tables
from lakehouse.config import RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io import delta
from lakehouse.ml import features as fx
from lakehouse.security import pseudonyms

Progress = Callable[[str], None]
LOOKBACK_H = 72  # silver mode reads this much history before the interval (carried-forward values, windows)


@dataclass(frozen=True)
class FeatureRun:
    """What one feature run wrote: the range, row counts and the Delta versions to pin a training run to."""

    source: str
    start: str
    end: str
    patients: int
    feature_rows: int
    features_uri: str
    features_version: int
    label_rows: int = 0
    labels_uri: str | None = None
    labels_version: int | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def from_silver(
    spark: SparkSession,
    region: RegionConfig,
    start: datetime,
    end: datetime,
    progress: Progress = print,
    ensure_tables: bool = True,
    label_key: bytes | None = None,
) -> FeatureRun:
    """Features of the hours in [start, end) from silver.vitals (reading LOOKBACK_H hours before start);
    ``ensure_tables`` False: the caller has created the tables already (the live scorer, every batch).

    ``label_key`` (the patient-pseudonym key, :func:`lakehouse.security.pseudonyms.patient_key`): also the labels
    of those hours from the replayed stream (bronze.telemetry, what a PhysioNet replay sent;
    `features.labels_from_bronze`), their raw patient references pseudonymized as silver does. Written only when
    the range has some, so a range without a replay never erases labels a backfill wrote."""
    if end <= start:
        raise LakehouseError(f"empty interval: end {end} is not after start {start}", fix="give --start < --end")
    if ensure_tables:
        tables.ensure_all(spark, region)
    vitals = spark.read.format("delta").load(tables.uri(region, "silver.vitals"))
    lo = start - timedelta(hours=LOOKBACK_H)
    window = vitals.where(
        (F.col("event_date") >= F.lit(lo.date())) & (F.col("event_date") <= F.lit(end.date()))
        & (F.col("event_time") >= F.lit(_ts(lo)).cast("timestamp")) & (F.col("event_time") < F.lit(_ts(end)).cast("timestamp"))
    )  # fmt: skip
    feats = fx.hourly_features(fx.measurements_from_silver(window)).where(fx.hour_range_sql(start, end))
    feats = fx.with_computed_time(feats).cache()
    rows, patients = feats.count(), feats.select("patient_ref").distinct().count()
    progress(f"features ({region.name}): {rows} patient-hours of {patients} patients in [{_ts(start)}, {_ts(end)})")
    uri = tables.uri(region, "gold.features_hourly")
    version = delta.replace_range(spark, uri, feats, fx.hour_range_sql(start, end))
    feats.unpersist()
    run = FeatureRun("silver.vitals", _ts(start), _ts(end), patients, rows, uri, version)
    return run if label_key is None else _with_replay_labels(spark, region, run, start, end, label_key, progress)


def _with_replay_labels(
    spark: SparkSession,
    region: RegionConfig,
    run: FeatureRun,
    start: datetime,
    end: datetime,
    key: bytes,
    progress: Progress,
) -> FeatureRun:
    from dataclasses import replace

    bronze = spark.read.format("delta").load(tables.uri(region, "bronze.telemetry"))
    # a record is ingested at or after its event (future-dated events are quarantined, not labelled)
    found = fx.labels_from_bronze(bronze.where(F.col("ingest_date") >= F.lit(start.date()))).where(
        fx.hour_range_sql(start, end)
    )
    found = pseudonyms.pseudonymize(found, key).cache()
    count = found.count()
    if count == 0:
        found.unpersist()
        progress(f"labels ({region.name}): no replayed PhysioNet messages in [{_ts(start)}, {_ts(end)})")
        return run
    uri = tables.uri(region, "gold.sepsis_labels")
    version = delta.replace_range(spark, uri, found, fx.hour_range_sql(start, end))
    found.unpersist()
    progress(f"labels ({region.name}): {count} patient-hours from the replayed stream (bronze.telemetry)")
    return replace(run, label_rows=count, labels_uri=uri, labels_version=version)


def psv_range(records: list[Any]) -> tuple[datetime, datetime]:
    """The hours a backfill of these PhysioNet records covers: [PSV_ORIGIN, PSV_ORIGIN + longest stay + 1 h)."""
    last = max(r.max_iculos for r in records)
    return fx.PSV_ORIGIN, fx.PSV_ORIGIN + timedelta(hours=last + 1)


def psv_archive_range(path: Path, patients: int | None = None) -> tuple[datetime, datetime]:
    """:func:`psv_range` of a PhysioNet archive or folder (what ``from_psv`` of it writes)."""
    from lakehouse.devices import physionet

    physionet.require_archive(path)
    records = list(physionet.iter_patients(path, patients))
    if not records:
        raise LakehouseError(f"no patient files (pNNNNNN.psv) in {path}", fix="check the path")
    return psv_range(records)


def from_psv(
    spark: SparkSession,
    region: RegionConfig,
    path: Path,
    patients: int | None = None,
    progress: Progress = print,
    *,
    patient_key: bytes,
) -> FeatureRun:
    """Backfill: features and labels of PhysioNet files (a .tar.gz or a folder of .psv), hours from PSV_ORIGIN;
    the record ids pseudonymized under ``patient_key`` as silver does (the rows join the live tables' patients)."""
    from lakehouse.devices import physionet

    physionet.require_archive(path)
    records = list(physionet.iter_patients(path, patients))
    if not records:
        raise LakehouseError(f"no patient files (pNNNNNN.psv) in {path}", fix="check the path")
    tables.ensure_all(spark, region)
    start, end = psv_range(records)
    feats = fx.hourly_features(fx.measurements_from_records(spark, records))
    feats = fx.with_computed_time(pseudonyms.pseudonymize(feats, patient_key)).cache()
    labels = pseudonyms.pseudonymize(fx.labels_from_records(spark, records), patient_key).cache()
    rows, label_rows = feats.count(), labels.count()
    progress(
        f"features ({region.name}): {rows} patient-hours, {label_rows} labels of {len(records)} patients from {path.name}"
    )
    f_uri, l_uri = tables.uri(region, "gold.features_hourly"), tables.uri(region, "gold.sepsis_labels")
    ids = tables.uri(region, pseudonyms.IDENTITIES_TABLE)
    pseudonyms.record_identities(spark, ids, [r.patient_id for r in records], patient_key)
    f_version = delta.replace_range(spark, f_uri, feats, fx.hour_range_sql(start, end))
    l_version = delta.replace_range(spark, l_uri, labels, fx.hour_range_sql(start, end))
    feats.unpersist()
    labels.unpersist()
    return FeatureRun(
        f"psv:{path.name}", _ts(start), _ts(end), len(records), rows, f_uri, f_version, label_rows, l_uri, l_version
    )
