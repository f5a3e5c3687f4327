"""Gold builders: the real-time NEWS2 state function on a batch frame, alert event compaction, windows."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.ingest import alerts_job, gold, news2_job

T0 = dt.datetime(2026, 11, 26, 9, 0, 0)
RULES = news2_job.StateRules(hold_ms=0, carry_forward_s=3600)
VITALS_COLS = "patient_ref string, ward string, vital string, value double, unit string, event_time timestamp"


def vitals(spark: SparkSession, rows: list[tuple[str, str, float, int]]) -> DataFrame:
    """(patient, vital, value, seconds after T0) -> silver.vitals-like rows."""
    units = {"heart_rate": "/min", "respiratory_rate": "/min", "spo2": "%", "temperature": "Cel",
             "systolic_bp": "mm[Hg]", "fio2": "%"}  # fmt: skip
    return spark.createDataFrame(
        [(p, "ICU-1", v, float(x), units[v], T0 + dt.timedelta(seconds=s)) for p, v, x, s in rows], VITALS_COLS
    )


def run_early_warning(
    spark: SparkSession, measurements: DataFrame, folder: Path, rules: news2_job.StateRules = RULES
) -> DataFrame:
    """The state function as a stream (it only runs in streaming queries): file source -> memory sink."""
    measurements.write.parquet(str(folder / "in"))
    stream = spark.readStream.schema(measurements.schema).parquet(str(folder / "in"))
    name = f"early_warning_{folder.name}".replace("-", "_")
    query = (
        news2_job.early_warning(stream, rules)
        .writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", str(folder / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    return spark.table(name)


def test_early_warning_scores_observations_and_raises_alerts(spark: SparkSession, tmp_path: Path) -> None:
    df = vitals(
        spark,
        [
            # p_high: RR 26 (3) + SpO2 90 (3) + HR 135 (3) => 9, high
            ("p_high", "respiratory_rate", 26, 1), ("p_high", "spo2", 90, 1), ("p_high", "heart_rate", 135, 1),
            # p_med: RR 22 (2) + HR 115 (2) + temp 38.5 (1) => 5, medium
            ("p_med", "respiratory_rate", 22, 1), ("p_med", "heart_rate", 115, 1), ("p_med", "temperature", 38.5, 1),
            # p_single: SBP 85 (3) alone => 3 with a single 3
            ("p_single", "systolic_bp", 85, 1),
            # p_ok: normal, measured twice: two observations, the first completed by carry-forward
            ("p_ok", "heart_rate", 70, 1), ("p_ok", "spo2", 98, 1), ("p_ok", "heart_rate", 72, 30),
            # p_o2: FiO2 40% => on oxygen (2) + SpO2 97 on scale 1 (0) + RR 21 (2) => 4, low, no alert
            ("p_o2", "fio2", 40, 1), ("p_o2", "spo2", 97, 1), ("p_o2", "respiratory_rate", 21, 1),
        ],
    )  # fmt: skip
    out = run_early_warning(spark, df.select("patient_ref", "event_time", "vital", "value", "ward"), tmp_path)
    news2 = out.filter("kind = 'observation'").select(*[f.name for f in gold.NEWS2_SCHEMA])
    totals = {(r["patient_ref"], r["observation_time"]): r["news2_total"] for r in news2.collect()}
    at = T0 + dt.timedelta(seconds=1)
    assert totals == {("p_high", at): 9, ("p_med", at): 5, ("p_single", at): 3, ("p_ok", at): 0,
                      ("p_ok", T0 + dt.timedelta(seconds=30)): 0, ("p_o2", at): 4}  # fmt: skip
    later = news2.filter("patient_ref = 'p_ok' AND heart_rate = 72").first()
    assert later is not None and later["spo2"] == 98.0 and later["ward"] == "ICU-1"
    alerts = out.filter("kind = 'alert'").select(*[f.name for f in gold.ALERTS_SCHEMA])
    got = {(r["patient_ref"], r["level"], r["status"]) for r in alerts.collect()}
    assert got == {("p_high", "high", "open"), ("p_med", "medium", "open"), ("p_single", "single_parameter", "open")}
    single = alerts.filter("patient_ref = 'p_single'").first()
    assert single is not None and single["triggering_parameters"] == ["systolic_bp"]


def test_alert_ids_are_keyed_so_they_do_not_reveal_the_patient(spark: SparkSession, tmp_path: Path) -> None:
    """With the patient key, an alert's id is an HMAC of the plain id (a hash of the raw patient reference, level and
    time, which gold.alerts shows beside the id): no guess of patient numbers re-identifies the row."""
    from lakehouse.clinical.early_warning import alert_id
    from lakehouse.security import pseudonyms

    key = b"k" * 32
    df = vitals(spark, [("p_single", "systolic_bp", 85, 1)])
    rules = news2_job.StateRules(hold_ms=0, carry_forward_s=3600, id_key=key)
    out = run_early_warning(spark, df.select("patient_ref", "event_time", "vital", "value", "ward"), tmp_path, rules)
    events = {r["status"]: r["alert_id"] for r in out.filter("kind = 'alert'").collect()}
    at_us = int((T0 + dt.timedelta(seconds=1)).replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    plain = alert_id("p_single", "single_parameter", at_us)
    assert events == {"open": pseudonyms.keyed_id(plain, key)} and plain != events["open"]


def test_alert_events_keep_the_close_of_each_alert(spark: SparkSession) -> None:
    events = spark.createDataFrame(
        [
            ("a1", "open", 0, 1),
            ("a1", "closed", 0, 5),
            ("a1", "open", 0, 9),
            ("a2", "open", 1, 2),
            ("a2", "open", 1, 3),
        ],
        "alert_id string, status string, partition int, offset long",
    )
    for f in gold.ALERTS_SCHEMA:
        if f.name not in events.columns:
            events = events.withColumn(f.name, F.lit(None).cast(f.dataType))
    latest = {r["alert_id"]: r["status"] for r in alerts_job.latest_event_per_alert(events).collect()}
    assert latest == {"a1": "closed", "a2": "open"}


def test_windowed_vitals_on_a_batch_frame(spark: SparkSession) -> None:
    df = vitals(spark, [("p1", "heart_rate", 80, 1), ("p1", "heart_rate", 100, 59), ("p1", "heart_rate", 60, 61)])
    out = gold.windowed_vitals(df, "1 minute", watermark_s=600).orderBy("window_start")
    rows = [(r["window_start"], r["n"], r["min"], r["max"], r["mean"]) for r in out.collect()]
    assert rows == [(T0, 2, 80.0, 100.0, 90.0), (T0 + dt.timedelta(minutes=1), 1, 60.0, 60.0, 60.0)]
    assert [f.name for f in out.schema] == [f.name for f in gold.WINDOW_SCHEMA]
    assert out.filter(F.col("updated_time").isNull()).count() == 0


def test_published_alert_json_parses_back_into_gold_alerts_rows(spark: SparkSession) -> None:
    from lakehouse.clinical.early_warning import Measurement, PatientState

    start = int(T0.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    _, events = PatientState().step("p9", [Measurement(start, "systolic_bp", 85.0, "W2")], start + 250_000, 3600)
    value = news2_job.alert_message(events[0], T0 + dt.timedelta(seconds=1))
    records = spark.createDataFrame([(bytearray(value), 0, 7)], "value binary, partition int, offset long")
    row = alerts_job.parse_alert_events(records).first()
    assert row is not None
    assert (row["patient_ref"], row["ward"], row["level"], row["status"]) == ("p9", "W2", "single_parameter", "open")
    assert row["opened_event_time"] == T0 and row["opened_time"] == T0 + dt.timedelta(microseconds=250_000)
    assert row["opened_date"] == T0.date() and row["triggering_parameters"] == ["systolic_bp"]
    assert row["closed_time"] is None and row["alert_id"] == events[0]["alert_id"]


def test_a_batch_is_tallied_by_kind_and_its_alert_events_by_level_and_status(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [("observation", None, None)] * 3
        + [("alert", "open", "high"), ("alert", "open", "high"), ("alert", "closed", "medium"),
           ("alert", "open", "single_parameter")],
        "kind string, status string, level string",
    ).toArrow()  # fmt: skip
    kinds, episodes = news2_job._tally(rows)
    assert kinds == {"observation": 3, "alert": 4}
    assert episodes == {("high", "opened"): 2, ("medium", "closed"): 1, ("single_parameter", "opened"): 1}


def test_side_by_side_runs_both_and_raises_the_threads_error_after_both_finished() -> None:
    done: list[str] = []

    def slow() -> None:
        time.sleep(0.3)
        done.append("thread")

    news2_job.side_by_side(slow, lambda: done.append("here"))
    assert sorted(done) == ["here", "thread"]

    def broken() -> None:
        time.sleep(0.2)
        raise RuntimeError("commit refused")

    with pytest.raises(RuntimeError, match="commit refused"):
        news2_job.side_by_side(broken, lambda: done.append("here again"))
    assert done[-1] == "here again"  # the other commit still ran to its end


def test_patients_sharing_a_state_bucket_get_the_same_rows_as_patients_alone(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The state is kept per bucket of patients: with every patient in one bucket (buckets=1), each still gets
    exactly the observations and alerts it gets in a bucket of its own (many buckets)."""
    rows = [(f"p{i}", "heart_rate", 60 + 10 * i, 1) for i in range(9)]  # HR 60..140 (p8: 140 scores 3)
    rows += [(f"p{i}", "systolic_bp", 85 if i % 2 else 120, 20 + i) for i in range(9)]  # odd: SBP 85 scores 3
    df = vitals(spark, rows).select("patient_ref", "event_time", "vital", "value", "ward")

    def outcome(buckets: int) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]]]:
        rules = news2_job.StateRules(hold_ms=0, carry_forward_s=3600, buckets=buckets)
        out = run_early_warning(spark, df, tmp_path / f"b{buckets}", rules)
        obs = {(r["patient_ref"], r["observation_time"], r["news2_total"], r["heart_rate"], r["systolic_bp"])
               for r in out.filter("kind = 'observation'").collect()}  # fmt: skip
        alerts = {(r["patient_ref"], r["level"], r["status"], r["alert_id"])
                  for r in out.filter("kind = 'alert'").collect()}  # fmt: skip
        return obs, alerts

    one, many = outcome(1), outcome(64)
    assert one == many
    observations, alerts = one
    assert len(observations) == 18  # two per patient: the second carries the first's heart rate forward
    assert ("p8", T0 + dt.timedelta(seconds=28), 3, 140.0, 120.0) in observations  # HR 140 (3) + SBP 120 (0)
    assert ("p7", T0 + dt.timedelta(seconds=27), 5, 130.0, 85.0) in observations  # HR 130 (2) + SBP 85 (3)
    assert {(p, level, status) for p, level, status, _ in alerts} == {
        ("p8", "single_parameter", "open"),  # from its first observation; its second keeps the level
        *((p, "single_parameter", "open") for p in ("p1", "p3", "p5")),
        ("p7", "medium", "open"),
    }


def test_a_state_bucket_holds_each_patients_pending_observation_for_its_own_hold_time() -> None:
    """With a hold time, a patient's pending observation becomes final hold_ms after the last micro-batch that
    brought that patient data, however busy the other patients of its bucket are."""
    from lakehouse.clinical.early_warning import Measurement

    rules = news2_job.StateRules(hold_ms=1000, carry_forward_s=3600)
    start = int(T0.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    bucket = news2_job.Bucket({}, {})
    final, _ = bucket.advance({"a": [Measurement(start, "heart_rate", 70.0)]}, 10_000, rules)
    assert final == [] and bucket.next_timeout_ms(10_000, 1000) == 1000
    final, _ = bucket.advance({"b": [Measurement(start, "heart_rate", 80.0)]}, 10_600, rules)
    assert final == [] and bucket.next_timeout_ms(10_600, 1000) == 400  # a falls due at 11,000
    final, _ = bucket.advance({}, 11_000, rules)  # the bucket's timeout: only a is due
    assert [(r["patient_ref"], r["heart_rate"]) for r in final] == [("a", 70.0)]
    assert bucket.pending == {"b": 10_600} and bucket.next_timeout_ms(11_000, 1000) == 600
    final, _ = bucket.advance({"b": [Measurement(start + 5_000_000, "heart_rate", 90.0)]}, 11_500, rules)
    assert [(r["patient_ref"], r["heart_rate"]) for r in final] == [("b", 80.0)]  # a newer one made b's final
    assert bucket.pending == {"b": 11_500}
    final, _ = bucket.advance({}, 12_500, rules)
    assert [(r["patient_ref"], r["heart_rate"]) for r in final] == [("b", 90.0)]
    assert bucket.pending == {} and bucket.next_timeout_ms(12_500, 1000) is None
    # a's state survived in the bucket: its latest vital and final time
    assert '"f":' + str(start) in bucket.patients["a"]


def test_a_patient_without_data_for_the_ttl_leaves_the_state_and_its_open_alert_closes() -> None:
    """pipeline.news2_state_ttl_s: the bucket sweeps its patients when it is called; one idle for the TTL goes
    (its open alert closes, without a closing observation), one with newer data stays, and one that comes back
    after leaving starts afresh."""
    from lakehouse.clinical.early_warning import Measurement

    rules = news2_job.StateRules(hold_ms=0, carry_forward_s=3600, ttl_ms=60_000)
    start = int(T0.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    bucket = news2_job.Bucket({}, {})
    _, opened = bucket.advance({"sick": [Measurement(start, "heart_rate", 135.0)]}, 10_000, rules)
    assert [(e["patient_ref"], e["status"]) for e in opened] == [("sick", "open")]
    bucket.advance({"well": [Measurement(start, "heart_rate", 70.0)]}, 30_000, rules)
    final, events = bucket.advance({"well": [Measurement(start + 1_000_000, "heart_rate", 72.0)]}, 69_999, rules)
    assert set(bucket.patients) == {"sick", "well"} and events == []  # sick idle for 59.999 s: kept
    final, events = bucket.advance({"well": [Measurement(start + 2_000_000, "heart_rate", 74.0)]}, 70_000, rules)
    assert set(bucket.patients) == set(bucket.seen) == {"well"}  # sick idle for 60 s: gone
    assert [(e["patient_ref"], e["alert_id"], e["status"], e["closed_observation_time"]) for e in events] == [
        ("sick", opened[0]["alert_id"], "closed", None)
    ]
    assert events[0]["closed_time"] == dt.datetime(1970, 1, 1, 0, 1, 10)  # the sweep's processing time
    assert [r["patient_ref"] for r in final] == ["well"]  # well's observation, nothing more of sick
    later = start + 3_600_000_000  # sick again, an hour on: a new patient state, a new alert
    final, events = bucket.advance({"sick": [Measurement(later, "heart_rate", 135.0)]}, 80_000, rules)
    assert [(r["patient_ref"], r["heart_rate"]) for r in final] == [("sick", 135.0)]
    assert [(e["status"], e["alert_id"] != opened[0]["alert_id"]) for e in events] == [("open", True)]
    assert news2_job.StateRules(hold_ms=0, carry_forward_s=3600).ttl_ms == 0  # 0: nobody leaves
    bucket.advance({}, 10**12, news2_job.StateRules(hold_ms=0, carry_forward_s=3600))
    assert set(bucket.patients) == {"well", "sick"}


def test_the_state_functions_frame_is_the_same_built_in_one_piece_or_in_small_ones() -> None:
    """Many rows take pandas' timestamp conversion, a few numpy's: both give the same frame (None -> NaT)."""
    import pandas as pd

    rows = [
        {"kind": "observation", "patient_ref": f"p{i}", "observation_time": T0 + dt.timedelta(seconds=i),
         "computed_time": None if i % 7 == 0 else T0 + dt.timedelta(microseconds=i), "news2_total": i % 9,
         "triggering_parameters": ["spo2"] if i % 2 else None}
        for i in range(news2_job._MANY_TIMESTAMPS + 5)
    ]  # fmt: skip
    whole = news2_job._frame(rows)
    pieces = pd.concat([news2_job._frame(rows[i : i + 10]) for i in range(0, len(rows), 10)], ignore_index=True)
    pd.testing.assert_frame_equal(whole, pieces)
    assert str(whole["observation_time"].dtype) == "datetime64[ns]" and whole["computed_time"].isna().sum() == 38
    assert whole.loc[3, "triggering_parameters"] == ["spo2"] and whole.loc[3, "computed_time"] == pd.Timestamp(
        T0 + dt.timedelta(microseconds=3)
    )


def test_with_a_hold_time_a_buckets_timeout_makes_pending_observations_final(
    spark: SparkSession, tmp_path: Path
) -> None:
    """news2_hold_ms > 0 in a running query: the alert goes out in the first micro-batch, the observations stay
    pending, and a no-data micro-batch (the bucket's processing-time timeout) makes them final a hold later."""
    df = vitals(spark, [("p1", "heart_rate", 135, 1), ("p2", "heart_rate", 70, 1)])
    df.select("patient_ref", "event_time", "vital", "value", "ward").write.parquet(str(tmp_path / "in"))
    stream = spark.readStream.schema(df.select("patient_ref", "event_time", "vital", "value", "ward").schema)
    rules = news2_job.StateRules(hold_ms=1500, carry_forward_s=3600, buckets=1)  # both patients in one bucket
    query = (
        news2_job.early_warning(stream.parquet(str(tmp_path / "in")), rules)
        .withColumn("batch_time", F.current_timestamp())
        .writeStream.format("memory")
        .queryName("early_warning_hold")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(processingTime="250 milliseconds")
        .start()
    )
    try:
        deadline = time.monotonic() + 180  # generous: the unit lane shares two cores with the integration lane
        while spark.table("early_warning_hold").filter("kind = 'observation'").count() < 2:
            assert time.monotonic() < deadline, "the held observations never became final"
            time.sleep(0.5)
    finally:
        query.stop()
    out = spark.table("early_warning_hold")
    alert = out.filter("kind = 'alert'").collect()
    assert [(r["patient_ref"], r["level"], r["status"]) for r in alert] == [("p1", "single_parameter", "open")]
    observations = out.filter("kind = 'observation'").collect()
    assert sorted((r["patient_ref"], r["heart_rate"]) for r in observations) == [("p1", 135.0), ("p2", 70.0)]
    held = min(r["computed_time"] for r in observations) - alert[0]["opened_time"]
    assert held >= dt.timedelta(milliseconds=1500)  # final one hold after the batch that brought the data


def test_a_batch_brought_to_the_driver_gives_its_observations_exactly_as_a_local_relation(spark: SparkSession) -> None:
    observation = {"kind": "observation", "patient_ref": "p1", "observation_time": T0, "observation_date": T0.date(),
                   "ward": None, "heart_rate": 131.0, "news2_total": 7, "last_event_time": T0,
                   "computed_time": T0 + dt.timedelta(microseconds=123_456)}  # fmt: skip
    alert = {"kind": "alert", "patient_ref": "p1", "alert_id": "a1", "level": "high", "status": "open",
             "triggering_parameters": ["heart_rate"], "opened_time": T0}  # fmt: skip
    batch = spark.createDataFrame(
        [{n: r.get(n) for n in news2_job.OUTPUT_SCHEMA.fieldNames()} for r in (observation, alert)],
        news2_job.OUTPUT_SCHEMA,
    )
    names = [f.name for f in gold.NEWS2_SCHEMA]
    local = news2_job.observations_of(spark, batch.toArrow())
    assert local.collect() == batch.filter("kind = 'observation'").select(*names).collect()
    assert local.schema.fieldNames() == names
    # checks and the append's plan fold over it on the driver: no Spark job for a filter or a projection
    derived = local.filter("news2_total >= 5").select("patient_ref", (F.col("news2_total") + 1).alias("t"))
    assert derived._jdf.queryExecution().optimizedPlan().toString().startswith("LocalRelation")
