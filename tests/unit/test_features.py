"""gold.features_hourly: hand-checked values on a tiny patient, the grain, point-in-time correctness (future data
changed, shuffled, dropped and added leaves every earlier row identical), labels and patient-level splits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Config
from lakehouse.devices import physionet
from lakehouse.ml import features as fx
from tests.conftest import copy_sample_patients

T0 = datetime(2026, 3, 1, 8, 0)


def _rows(df: DataFrame) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in df.collect())


@pytest.fixture(scope="module")
def records() -> list[physionet.PatientRecord]:
    return list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE, 12))


def test_hand_checked_values_of_one_patient(spark: SparkSession) -> None:
    at = lambda h, m=0: T0 + timedelta(hours=h, minutes=m)
    m = spark.createDataFrame(
        [
            ("p1", at(0, 10), "heart_rate", 80.0),
            ("p1", at(0, 50), "heart_rate", 90.0),  # the hour's value is its latest measurement
            ("p1", at(1, 5), "heart_rate", 100.0),
            ("p1", at(3, 0), "heart_rate", 120.0),
            ("p1", at(3, 30), "spo2", float("nan")),  # not finite: not measured
            ("p1", at(6, 0), "respiratory_rate", 26.0),
        ],
        fx.MEASUREMENTS_SCHEMA,
    )
    rows = {r["hours_observed"]: r for r in fx.hourly_features(m).collect()}
    assert sorted(rows) == list(range(7)), "one row per hour from the first to the last, gaps filled"
    assert [rows[h]["hr"] for h in range(7)] == [90.0, 100.0, 100.0, 120.0, 120.0, 120.0, 120.0]
    assert [rows[h]["hr_measured"] for h in range(7)] == [1, 1, 0, 1, 0, 0, 0]
    assert [rows[h]["hr_hours_since"] for h in range(7)] == [0, 0, 1, 0, 1, 2, 3]
    assert rows[3]["hr_mean_6h"] == pytest.approx((90 + 100 + 120) / 3)
    assert rows[6]["hr_mean_6h"] == pytest.approx((100 + 120) / 2), "hour 0 left the 6 h window"
    assert rows[6]["hr_count_24h"] == 3 and rows[6]["hr_max_24h"] == 120.0 and rows[6]["hr_min_24h"] == 90.0
    assert rows[5]["hr_delta_6h"] is None and rows[6]["hr_delta_6h"] == pytest.approx(120.0 - 90.0)
    assert rows[0]["hr_std_6h"] is None, "one value: no sample standard deviation"
    assert rows[6]["spo2"] is None and rows[6]["spo2_hours_since"] is None and rows[6]["spo2_measured"] == 0
    assert rows[5]["resp"] is None and rows[6]["resp"] == 26.0
    assert rows[6]["news2_respiratory_rate"] == 3 and rows[5]["news2_respiratory_rate"] is None
    assert [rows[h]["news2_heart_rate"] for h in (0, 1, 3)] == [0, 1, 2]  # 51-90: 0, 91-110: 1, 111-130: 2
    assert rows[6]["news2_total"] == 3 + 2  # resp 3 + heart rate 2 (air and Alert score 0)


def test_grain_and_labels_of_the_physionet_sample(spark: SparkSession, records: list[Any]) -> None:
    feats = fx.hourly_features(fx.measurements_from_records(spark, records)).cache()
    assert feats.count() == feats.select("patient_ref", "hour_start").distinct().count()
    assert set(feats.columns) == {f.name for f in fx.FEATURES_SCHEMA.fields} - {"computed_time"}
    labels = fx.labels_from_records(spark, records)
    assert labels.count() == sum(len(r.rows) for r in records)
    joined = feats.join(labels, ["patient_ref", "hour_start"], "left")
    assert joined.where(F.col("sepsis_label").isNull()).count() == 0, "every feature hour has its label"
    septic = {r.patient_id for r in records if r.septic}
    assert {
        r["patient_ref"] for r in joined.where("sepsis_label = 1").select("patient_ref").distinct().collect()
    } == septic


def test_rows_up_to_hour_t_ignore_any_change_of_later_data(spark: SparkSession, records: list[Any]) -> None:
    m = fx.measurements_from_records(spark, records)
    cut = fx.PSV_ORIGIN.replace(tzinfo=None) + timedelta(hours=12)  # rows up to 12:00 must not move
    past = m.where(F.col("event_time") < F.lit(cut + timedelta(hours=1)))
    future = [tuple(r) for r in m.where(F.col("event_time") >= F.lit(cut + timedelta(hours=1))).collect()]
    assert len(future) > 1000
    rng = random.Random(5)
    values = [v for *_, v in future]
    rng.shuffle(values)  # shuffle the future values across patients, vitals and hours
    changed = [(p, t, vital, v * rng.uniform(0.5, 1.5)) for (p, t, vital, _), v in zip(future, values, strict=True)]
    changed = [row for row in changed if rng.random() > 0.2]  # drop a fifth
    changed += [(p, t + timedelta(minutes=7), "heart_rate", 199.0) for p, t, *_ in changed[:300]]  # and add some
    altered = past.unionByName(spark.createDataFrame(changed, fx.MEASUREMENTS_SCHEMA))
    original, recomputed = _rows(fx.hourly_features(m)), _rows(fx.hourly_features(altered))
    upto = [r for r in original if r[1] <= cut]
    assert len(upto) > 100
    assert upto == [r for r in recomputed if r[1] <= cut]
    # the change does reach later rows (the test would notice a leak)
    assert [r for r in original if r[1] > cut] != [r for r in recomputed if r[1] > cut]


def test_splits_are_by_patient(spark: SparkSession, records: list[Any]) -> None:
    labels = fx.labels_from_records(spark, records).withColumn("split", fx.split_of(F.col("patient_ref")))
    per_patient = labels.groupBy("patient_ref").agg(F.countDistinct("split").alias("n"))
    assert per_patient.where("n > 1").count() == 0
    folds = (
        labels.withColumn("fold", fx.fold_of(F.col("patient_ref"), 5))
        .groupBy("patient_ref")
        .agg(F.countDistinct("fold").alias("n"), F.min("fold").alias("fold"))
    )
    assert folds.where("n > 1").count() == 0
    assert {r["fold"] for r in folds.collect()} <= set(range(5))


def test_training_refuses_validation_patients_without_a_septic_one(spark: SparkSession) -> None:
    """Spark scores one-class rows 0.0 (a number the gate would compare); training stops with a reason instead."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    from lakehouse.errors import LakehouseError
    from lakehouse.ml import train

    rows = spark.createDataFrame(
        [("a", 0, 0.2), ("a", 1, 0.9), ("b", 0, 0.1), ("c", 0, 0.4)],
        "patient_ref string, sepsis_label int, score double",
    ).withColumn("sepsis_label", F.col("sepsis_label").cast("double"))
    train.require_evaluable(rows)  # a septic patient and sepsis-free hours
    no_septic = rows.where("patient_ref != 'a'")
    for metric in ("areaUnderROC", "areaUnderPR"):
        ev = BinaryClassificationEvaluator(labelCol="sepsis_label", rawPredictionCol="score", metricName=metric)
        assert ev.evaluate(rows) == 1.0 and ev.evaluate(no_septic) == 0.0, metric
    with pytest.raises(LakehouseError, match="the 2 validation patients .* include no septic patient: AUROC"):
        train.require_evaluable(no_septic)
    with pytest.raises(LakehouseError, match="the 1 validation patients .* include no sepsis-free patient-hour"):
        train.require_evaluable(rows.where("sepsis_label = 1"))


def test_cross_validation_refuses_a_fold_without_a_septic_patient_before_training(
    spark: SparkSession, cfg: Config, tmp_path: Path
) -> None:
    """`ml cv` on sepsis-free patients only: each fold's AUROC would be Spark's 0.0; it stops with the fold and a fix
    before fitting any model (the same check guards `ml evaluate`, training and the gate)."""
    from lakehouse.errors import LakehouseError
    from lakehouse.ml import cv

    sepsis_free = [r.patient_id for r in physionet.iter_patients(physionet.SAMPLE_ARCHIVE, 30) if not r.septic][:6]
    assert len(copy_sample_patients(tmp_path, sepsis_free)) == 6
    said: list[str] = []
    with pytest.raises(LakehouseError, match=r"the \d+ patients of fold 1 of 2 .* include no septic patient") as err:
        cv.cross_validate(spark, cfg, tmp_path, folds=2, progress=said.append, log_to_mlflow=False)
    assert err.value.fix is not None and "--folds" in err.value.fix
    assert not [line for line in said if line.startswith("cv fold")], "refused before any fold was trained"


def test_labels_from_the_replayed_stream_match_the_files(
    spark: SparkSession, records: list[physionet.PatientRecord]
) -> None:
    """What a PhysioNet replay sent (bronze.telemetry) gives the files' labels for every hour it sent a message
    for; a duplicate delivery, device telemetry and garbage add nothing."""
    import json

    from lakehouse.ingest.bronze import BRONZE_SCHEMA

    origin = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)
    sent = [m for _, m in physionet.replay_messages(records[:4], origin)]
    raw = [json.dumps(m).encode() for m in sent]
    raw += [raw[0], b"{not json", json.dumps({"patient_ref": "w1", "event_time": "2026-02-01T00:10:00Z"}).encode()]
    now = datetime(2026, 2, 5)
    bronze = spark.createDataFrame(
        [(None, v, "telemetry.vitals", 0, i, now, now, now.date()) for i, v in enumerate(raw)], BRONZE_SCHEMA
    )
    got = {(r["patient_ref"], r["iculos"]): r["sepsis_label"] for r in fx.labels_from_bronze(bronze).collect()}
    want = {
        (rec.patient_id, h.iculos): h.sepsis_label for rec in records[:4] for h in rec.rows if h.has_device_vitals()
    }
    assert got == want and len(got) == len(sent)
    # the same hours (origin + ICULOS) and labels as the backfill from the files
    from_files = fx.labels_from_records(spark, records[:4], origin)
    key = ("patient_ref", "hour_start", "sepsis_label")
    assert set(_rows(fx.labels_from_bronze(bronze).select(*key))) <= set(_rows(from_files.select(*key)))
