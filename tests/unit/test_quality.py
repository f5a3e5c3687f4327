"""Expectation suites and the great-expectations facade on small hand-built DataFrames."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import CONF_DIR, Config
from lakehouse.errors import ConfigError
from lakehouse.ingest.gold import ALERTS_SCHEMA
from lakehouse.ingest.silver import SILVER_VITALS_SCHEMA
from lakehouse.io import delta
from lakehouse.io.delta import BatchAppender
from lakehouse.quality import gate, suites
from lakehouse.quality.gx_facade import LOCAL_COLLECT_MAX_ROWS, Validator, driver_frame
from lakehouse.quality.results import DQ_RESULTS_SCHEMA
from lakehouse.quality.suites import Severity
from lakehouse.tables import SPECS

SUITES = CONF_DIR / "quality"
T0 = datetime(2026, 11, 25, 8, 0, 0)
LOINC = {"heart_rate": ("8867-4", "/min"), "systolic_bp": ("8480-6", "mm[Hg]"), "diastolic_bp": ("8462-4", "mm[Hg]")}


def vital(message: str, index: int, name: str, value: float, **over: Any) -> dict[str, Any]:
    loinc, unit = LOINC[name]
    row: dict[str, Any] = {
        "message_id": message, "measurement_index": index, "device_id": "d1", "device_type": "bedside_monitor",
        "patient_ref": "p1", "ward": "icu", "event_time": T0, "event_date": T0.date(), "seq": 1, "vital": name,
        "loinc": loinc, "value": value, "unit": unit, "source_code": name, "source_value": value,
        "source_unit": unit, "dialect": "d", "kafka_topic": "t", "kafka_partition": 0, "kafka_offset": index,
        "ingest_time": T0 + timedelta(seconds=1),
    }  # fmt: skip
    row.update(over)
    return row


def frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    names = [f.name for f in SILVER_VITALS_SCHEMA]
    return spark.createDataFrame([tuple(r[n] for n in names) for r in rows], SILVER_VITALS_SCHEMA)


@pytest.fixture(scope="module")
def validator(spark: SparkSession) -> Iterator[Validator]:
    yield Validator()  # after the session: GX's Spark datasource would otherwise start one without the jars


def by_name(outcome: gate.Outcome) -> dict[str, Any]:
    return {r.check.name: r for r in outcome.results}


def test_every_suite_in_the_repo_loads_and_becomes_gx_expectations(spark: SparkSession) -> None:
    loaded = suites.load_all(SUITES)
    assert {"silver.vitals", "bronze.telemetry", "gold.news2", "gold.alerts"} <= set(loaded)
    validator = Validator()
    for suite in loaded.values():
        for frame_name, checks in suite.by_frame().items():
            validator._definition(suite, frame_name, checks)  # builds every GX expectation, arguments checked
        assert {c.severity for c in suite.checks} <= set(Severity)


def test_clean_vitals_pass_every_silver_check(spark: SparkSession, validator: Validator) -> None:
    rows = frame(spark, [vital("m1", 0, "heart_rate", 72.0), vital("m1", 1, "systolic_bp", 120.0),
                         vital("m1", 2, "diastolic_bp", 80.0)])  # fmt: skip
    outcome = gate.check(validator, suites.load_suite(SUITES, "silver.vitals"), rows)
    assert outcome.success, [r for r in outcome.results if not r.success]
    results = by_name(outcome)
    assert results["heart_rate_range"].rows_checked == 1 and results["heart_rate_range"].rows_failed == 0
    assert results["measurement_key_unique"].rows_checked == 3
    assert outcome.quarantine_reason() is None
    outcome.raise_if_blocked("test")  # nothing blocks


def test_each_failure_is_found_with_its_counts(spark: SparkSession, validator: Validator) -> None:
    rows = frame(spark, [
        vital("m1", 0, "heart_rate", 280.0),                                    # outside 20-250
        vital("m1", 1, "systolic_bp", 70.0), vital("m1", 2, "diastolic_bp", 90.0),  # DBP above SBP
        vital("m2", 0, "heart_rate", 60.0, unit="bpm"),                         # unit not canonical
        vital("m2", 0, "heart_rate", 61.0, event_time=T0 + timedelta(hours=1)),  # duplicate key, event ahead
    ])  # fmt: skip
    outcome = gate.check(validator, suites.load_suite(SUITES, "silver.vitals"), rows)
    results = by_name(outcome)
    assert (results["heart_rate_range"].rows_checked, results["heart_rate_range"].rows_failed) == (3, 1)
    assert results["unit_canonical_rate"].rows_failed == 1
    assert results["measurement_key_unique"].rows_failed == 2
    assert not results["diastolic_below_systolic"].success and results["diastolic_below_systolic"].rows_failed == 1
    assert not results["event_time_not_in_future"].success
    assert float(str(results["event_time_not_in_future"].observed)) > 3000
    assert {r.check.name for r in outcome.failed()} == {
        "heart_rate_range", "unit_canonical_rate", "measurement_key_unique", "diastolic_below_systolic",
        "event_time_not_in_future",
    }  # fmt: skip
    with pytest.raises(gate.DataQualityBlocked, match="measurement_key_unique"):
        outcome.raise_if_blocked("test")


def test_quarantine_picks_exactly_the_rows_gx_counted(spark: SparkSession, validator: Validator) -> None:
    suite = suites.load_suite(SUITES, "silver.vitals").with_severities({"heart_rate_range": Severity.QUARANTINE})
    rows = frame(spark, [vital("m1", 0, "heart_rate", 280.0), vital("m2", 0, "heart_rate", 10.0),
                         vital("m3", 0, "heart_rate", 90.0), vital("m3", 1, "systolic_bp", 280.0),
                         vital("m4", 0, "heart_rate", 60.0, unit="bpm")])  # fmt: skip
    outcome = gate.check(validator, suite, rows)
    reason = outcome.quarantine_reason()
    assert reason is not None
    tagged = gate.with_quarantine_reason(rows.withColumn("reason", F.lit(None).cast("string")).withColumn(
        "detail", F.lit(None).cast("string")), reason)  # fmt: skip
    got = {(r["message_id"], r["measurement_index"]): r["reason"] for r in tagged.collect()}
    assert got == {("m1", 0): "heart_rate_range", ("m2", 0): "heart_rate_range", ("m3", 0): None,
                   ("m3", 1): None, ("m4", 0): "unit_canonical_rate"}  # fmt: skip
    assert by_name(outcome)["heart_rate_range"].rows_failed == 2


def test_a_batch_of_alert_closes_passes_the_alerts_suite_and_two_open_alerts_of_one_level_block(
    spark: SparkSession, validator: Validator
) -> None:
    t0 = datetime(2026, 12, 5, 8)

    def alert(alert_id: str, status: str, level: str = "high") -> dict[str, Any]:
        row: dict[str, Any] = {f.name: None for f in ALERTS_SCHEMA}
        return row | {"alert_id": alert_id, "patient_ref": "p1", "level": level, "status": status, "news2_total": 7,
                      "triggering_parameters": ["heart_rate"], "opened_observation_time": t0, "opened_event_time": t0,
                      "opened_time": t0, "latest_observation_time": t0, "latest_total": 7, "opened_date": t0.date()}  # fmt: skip

    suite = suites.load_suite(SUITES, "gold.alerts")

    def open_check(*rows: dict[str, Any]) -> Any:
        outcome = gate.check(validator, suite, spark.createDataFrame(list(rows), ALERTS_SCHEMA))
        return by_name(outcome)["one_open_alert_per_patient_and_level"]

    # a MERGE batch of closes only (every alert of the last 30 s ended): no open alert, not a failure (it stopped
    # the gold.alerts query, and with it the pipeline's background tier)
    assert open_check(alert("a1", "closed"), alert("a2", "closed", "medium")).success
    assert open_check(alert("a1", "closed"), alert("a3", "open")).success
    assert open_check(alert("a3", "open"), alert("a4", "open", "medium")).success  # one per level
    failed = open_check(alert("a3", "open"), alert("a4", "open"))
    assert not failed.success and failed.observed == "2"


def test_results_rows_have_the_dq_results_layout(spark: SparkSession, validator: Validator) -> None:
    rows = frame(spark, [vital("m1", 0, "heart_rate", 280.0)])
    outcome = gate.check(validator, suites.load_suite(SUITES, "silver.vitals"), rows)
    out = outcome.rows(spark, "run-1", "asia", "stream batch 1")
    assert out.schema == DQ_RESULTS_SCHEMA
    got = {r["expectation"]: r for r in out.collect()}
    assert len(got) == len(outcome.suite.checks)
    hr = got["heart_rate_range"]
    assert (hr["severity"], hr["success"], hr["action"], hr["rows_failed"]) == ("warn", False, "recorded", 1)
    assert got["message_id_not_null"]["action"] == "none"


def test_a_retried_streaming_batch_records_its_results_once_unless_it_was_blocked(
    spark: SparkSession, validator: Validator, cfg: Config, tmp_path: Path
) -> None:
    results = str(tmp_path / "dq_results")
    delta.ensure_table(spark, results, SPECS["dq.results"])
    suite = suites.load_suite(SUITES, "silver.vitals")
    passed = gate.check(validator, suite, frame(spark, [vital("m1", 0, "heart_rate", 280.0)]))  # warn only
    duplicate = [vital("m2", 0, "heart_rate", 60.0), vital("m2", 0, "heart_rate", 61.0)]
    blocked = gate.check(validator, suite, frame(spark, duplicate))  # measurement_key_unique blocks
    asia = cfg.region("asia")  # its audit log (the blocking decisions) in tmp_path, not on the stack's HDFS
    home = replace(asia, hdfs=replace(asia.hdfs, namenode_uri=f"file://{tmp_path}"), lakehouse_root="lake")

    def run(writer: str) -> gate.Checks:  # one run of a query: its checks with a fresh appender
        return gate.Checks(validator, {"silver.vitals": suite}, results, "asia", home, BatchAppender(spark, writer))

    def publish(checks: gate.Checks, outcome: gate.Outcome, batch: int) -> None:
        gate.publish(spark, [outcome], checks, f"silver:asia:{batch}", f"stream batch {batch}", batch)

    first = run("silver-1")
    publish(first, passed, 7)
    publish(first, passed, 8)
    # the process dies after batch 8's results landed, before its checkpoint did: batch 8 runs again
    again = run("silver-1")
    publish(again, passed, 8)
    publish(again, passed, 9)
    with pytest.raises(gate.DataQualityBlocked):
        publish(again, blocked, 10)
    with pytest.raises(gate.DataQualityBlocked):  # restarted as it was: blocked again, and recorded again
        publish(run("silver-1"), blocked, 10)
    publish(run("silver-1"), passed, 10)  # restarted after the fix: the retry that passed is recorded too
    per_run = spark.read.format("delta").load(results).groupBy("run_id").count().collect()
    checks = len(suite.checks)
    assert {r["run_id"]: r["count"] for r in per_run} == {
        "silver:asia:7": checks, "silver:asia:8": checks, "silver:asia:9": checks, "silver:asia:10": 3 * checks
    }  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "expect": "column_values_to_not_be_null", "args": {"column": "a"}, "severity": "loud"}, "severity"),
        ({"name": "X y", "expect": "column_values_to_not_be_null", "args": {"column": "a"}, "severity": "warn"}, "snake"),
        ({"name": "x", "expect": "column_max_to_be_between", "args": {"column": "a"}, "severity": "quarantine"}, "row-level"),
        ({"name": "x", "expect": "column_values_to_not_be_null", "args": {"column": "a"}, "frame": "f", "severity": "warn"},
         "unknown frame"),
    ],
)  # fmt: skip
def test_a_bad_suite_is_a_clear_config_error(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        suites.parse_suite({"table": "t", "expectations": [entry]}, "t.yaml")


def test_an_unknown_expectation_type_is_a_clear_config_error(spark: SparkSession) -> None:
    suite = suites.parse_suite(
        {"table": "t", "expectations": [{"name": "x", "expect": "column_to_be_nice", "args": {}, "severity": "warn"}]},
        "t.yaml",
    )
    with pytest.raises(ConfigError, match="no expect_column_to_be_nice"):
        Validator()._definition(suite, None, suite.checks)


def _news2_rows(spark: SparkSession) -> DataFrame:
    """gold.news2 rows breaking three of its checks: a total out of range that is not its components' sum, a
    repeated (patient, time) key, an unknown risk band; the rest clean."""
    from lakehouse.ingest.gold import NEWS2_SCHEMA

    def row(patient: str, second: int, total: int | None, risk: str | None, rr: int = 1) -> dict[str, Any]:
        base: dict[str, Any] = {f.name: None for f in NEWS2_SCHEMA}
        at = T0 + timedelta(seconds=second)
        base.update(patient_ref=patient, observation_time=at, observation_date=at.date(), last_event_time=at,
                    computed_time=at, news2_total=total, news2_risk=risk, score_respiratory_rate=rr)  # fmt: skip
        return base

    rows = [row("p1", 0, 1, "low"), row("p2", 0, 25, "high"), row("p3", 0, 1, "low"), row("p3", 0, 1, "low"),
            row("p4", 0, 1, "unheard-of"), row("p5", 0, None, None), row("p6", 1, 3, "low", rr=3)]  # fmt: skip
    loose = T.StructType([T.StructField(f.name, f.dataType, True) for f in NEWS2_SCHEMA])  # unset columns: null
    return spark.createDataFrame([tuple(r[f.name] for f in NEWS2_SCHEMA) for r in rows], loose)


def test_a_frame_of_rows_already_on_the_driver_is_collected_without_a_spark_job(spark: SparkSession) -> None:
    """The real-time batch's check frames are over a local relation: read there, with no job (toPandas runs one);
    a frame Spark must compute, or a local one of many rows, still goes through Arrow. All give toPandas's values."""
    on_driver = spark.createDataFrame(_news2_rows(spark).toArrow())  # as the real-time batch: from Arrow
    local = on_driver.where("news2_total IS NOT NULL").select("patient_ref", (F.col("news2_total") + 1).alias("t"))
    computed = spark.range(3).select((F.col("id") * 2).alias("doubled"))
    many = spark.createDataFrame(spark.range(LOCAL_COLLECT_MAX_ROWS + 1).toArrow())  # local, but Arrow is faster
    tracker = spark.sparkContext.statusTracker()
    for name, data, jobs in (("local", local, False), ("computed", computed, True), ("many", many, True)):
        group = f"driver-frame-{name}"
        spark.sparkContext.setJobGroup(group, group)
        try:
            got = driver_frame(data)
        finally:
            spark.sparkContext.setJobGroup("", "")
        assert bool(tracker.getJobIdsForGroup(group)) is jobs, name
        expected = data.toPandas()
        assert got.columns.tolist() == expected.columns.tolist()
        assert got.to_dict("records") == expected.to_dict("records")


@pytest.mark.parametrize("table", ["gold.news2", "silver.vitals"])
def test_a_small_batch_checked_on_the_driver_gets_the_results_spark_gets(
    spark: SparkSession, validator: Validator, table: str
) -> None:
    """GX's pandas engine on the collected frames (what a real-time micro-batch uses) and its Spark engine agree on
    every check: success, observed value, rows checked and failed."""
    if table == "gold.news2":
        rows = spark.createDataFrame(_news2_rows(spark).toArrow())  # a local relation, as the real-time batch
    else:
        rows = frame(spark, [
            vital("m1", 0, "heart_rate", 280.0), vital("m1", 1, "systolic_bp", 70.0),
            vital("m1", 2, "diastolic_bp", 90.0), vital("m2", 0, "heart_rate", 60.0, unit="bpm"),
            vital("m2", 0, "heart_rate", 61.0, event_time=T0 + timedelta(hours=1)),
        ])  # fmt: skip
    suite = suites.load_suite(SUITES, table)
    on_spark = gate.check(validator, suite, rows)
    on_driver = gate.check(validator, suite, rows, row_count=rows.count())

    def plain(outcome: gate.Outcome) -> list[tuple[Any, ...]]:
        return [(r.check.name, r.success, r.observed, r.rows_checked, r.rows_failed) for r in outcome.results]

    assert plain(on_driver) == plain(on_spark)
    assert not on_spark.success  # the rows break checks: the comparison covers failures, not only passes
    if table == "gold.news2":
        failed = {r.check.name: r.rows_failed for r in on_spark.failed()}
        assert failed == {"news2_total_range": 1, "news2_components_sum_to_total": 1, "news2_key_unique": 2,
                          "news2_risk_known": 1}  # fmt: skip
