"""Gold builders: observations per patient-minute, NEWS2 rows, alert levels and episodes, windows."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.ingest import gold

T0 = dt.datetime(2026, 11, 26, 9, 0, 0)
VITALS_COLS = "patient_ref string, ward string, vital string, value double, unit string, event_time timestamp"


def vitals(spark: SparkSession, rows: list[tuple[str, str, float, int]]) -> DataFrame:
    """(patient, vital, value, seconds after T0) -> silver.vitals-like rows."""
    units = {"heart_rate": "/min", "respiratory_rate": "/min", "spo2": "%", "temperature": "Cel",
             "systolic_bp": "mm[Hg]", "fio2": "%"}  # fmt: skip
    return spark.createDataFrame(
        [(p, "ICU-1", v, float(x), units[v], T0 + dt.timedelta(seconds=s)) for p, v, x, s in rows], VITALS_COLS
    )


def test_observation_takes_the_latest_value_of_each_vital_in_the_minute(spark: SparkSession) -> None:
    df = vitals(spark, [("p1", "heart_rate", 80, 5), ("p1", "heart_rate", 95, 50), ("p1", "spo2", 97, 20),
                        ("p1", "heart_rate", 60, 70), ("p2", "temperature", 38.4, 10)])  # fmt: skip
    obs = gold.to_observations(df).select("patient_ref", "observation_time", "heart_rate", "spo2", "temperature")
    assertDataFrameEqual(
        obs,
        spark.createDataFrame(
            [
                ("p1", T0, 95.0, 97.0, None),
                ("p1", T0 + dt.timedelta(minutes=1), 60.0, None, None),
                ("p2", T0, None, None, 38.4),
            ],
            "patient_ref string, observation_time timestamp, heart_rate double, spo2 double, temperature double",
        ),
    )


def test_combine_keeps_stored_values_the_new_batch_lacks(spark: SparkSession) -> None:
    new = gold.to_observations(vitals(spark, [("p1", "heart_rate", 120, 30)]))
    stored = gold.to_observations(vitals(spark, [("p1", "spo2", 90, 10), ("p1", "heart_rate", 70, 10)]))
    row = gold.combine_observations(new, stored).first()
    assert row is not None and (row["heart_rate"], row["spo2"]) == (120.0, 90.0)
    assert row["last_event_time"] == T0 + dt.timedelta(seconds=30)


def test_news2_rows_levels_and_new_alerts(spark: SparkSession) -> None:
    df = vitals(
        spark,
        [
            # p_high: RR 26 (3) + SpO2 90 (3) + HR 135 (3) => 9, high
            ("p_high", "respiratory_rate", 26, 1), ("p_high", "spo2", 90, 1), ("p_high", "heart_rate", 135, 1),
            # p_med: RR 22 (2) + HR 115 (2) + temp 38.5 (1) => 5, medium
            ("p_med", "respiratory_rate", 22, 1), ("p_med", "heart_rate", 115, 1), ("p_med", "temperature", 38.5, 1),
            # p_single: SBP 85 (3) alone => 3 with a single 3
            ("p_single", "systolic_bp", 85, 1),
            # p_ok: normal
            ("p_ok", "heart_rate", 70, 1), ("p_ok", "spo2", 98, 1),
            # p_o2: FiO2 40% => on oxygen (2) + SpO2 97 on scale 1 (0) + RR 21 (2) => 4, low, no alert
            ("p_o2", "fio2", 40, 1), ("p_o2", "spo2", 97, 1), ("p_o2", "respiratory_rate", 21, 1),
        ],
    )  # fmt: skip
    news2 = gold.to_news2(gold.to_observations(df))
    assert [f.name for f in news2.schema] == [f.name for f in gold.NEWS2_SCHEMA]
    levels = {r["patient_ref"]: (r["news2_total"], r["alert_level"]) for r in gold.with_alert_level(news2).collect()}
    assert levels == {
        "p_high": (9, "high"), "p_med": (5, "medium"), "p_single": (3, "single_parameter"),
        "p_ok": (0, None), "p_o2": (4, None),
    }  # fmt: skip
    open_alerts = spark.createDataFrame([("p_med", "medium"), ("p_high", "medium")], "patient_ref string, level string")
    opened = gold.new_alerts(gold.latest_per_patient(news2), open_alerts)
    got = {(r["patient_ref"], r["level"]) for r in opened.collect()}
    assert got == {("p_high", "high"), ("p_single", "single_parameter")}  # p_med already has its open alert
    single = opened.filter("patient_ref = 'p_single'").first()
    assert single is not None and single["triggering_parameters"] == ["systolic_bp"] and single["status"] == "open"
    ids = opened.select("alert_id").collect()
    assert len({r[0] for r in ids}) == len(ids) and all(len(r[0]) == 64 for r in ids)


def test_latest_per_patient(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [("p1", T0, 1), ("p1", T0 + dt.timedelta(minutes=3), 2), ("p2", T0, 3)],
        "patient_ref string, observation_time timestamp, n int",
    )
    assert sorted(r["n"] for r in gold.latest_per_patient(df).collect()) == [2, 3]


def test_windowed_vitals_on_a_batch_frame(spark: SparkSession) -> None:
    df = vitals(spark, [("p1", "heart_rate", 80, 1), ("p1", "heart_rate", 100, 59), ("p1", "heart_rate", 60, 61)])
    out = gold.windowed_vitals(df, "1 minute", watermark_s=600).orderBy("window_start")
    rows = [(r["window_start"], r["n"], r["min"], r["max"], r["mean"]) for r in out.collect()]
    assert rows == [(T0, 2, 80.0, 100.0, 90.0), (T0 + dt.timedelta(minutes=1), 1, 60.0, 60.0, 60.0)]
    assert [f.name for f in out.schema] == [f.name for f in gold.WINDOW_SCHEMA]
    assert out.filter(F.col("updated_time").isNull()).count() == 0
