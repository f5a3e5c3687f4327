"""Silver transforms on hand-built bronze frames: dialects, every rejection reason, units, deduplication."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from lakehouse.ingest import contract, silver

NOW = dt.datetime(2026, 11, 26, 9, 0, 0)
CATALOGUE = contract.load_catalogue()
DIALECTS = contract.load_dialects(catalogue=CATALOGUE)
BRONZE = T.StructType(
    [
        T.StructField("key", T.StringType()),
        T.StructField("value", T.BinaryType()),
        T.StructField("topic", T.StringType()),
        T.StructField("partition", T.IntegerType()),
        T.StructField("offset", T.LongType()),
        T.StructField("kafka_timestamp", T.TimestampType()),
        T.StructField("ingest_time", T.TimestampType()),
    ]
)


def canonical(**over: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "contract": "vitals.v1", "message_id": "m1", "device_id": "dev-1", "device_type": "replay",
        "patient_ref": "p1", "event_time": "2026-11-26T08:59:00Z", "seq": 1,
        "measurements": [{"vital": "heart_rate", "value": 80, "unit": "/min"}],
    }  # fmt: skip
    msg.update(over)
    return msg


def bronze(spark: SparkSession, payloads: list[bytes | dict[str, Any]]) -> DataFrame:
    rows = [
        (None, p if isinstance(p, bytes) else json.dumps(p).encode(), "t", 0, i, NOW, NOW)
        for i, p in enumerate(payloads)
    ]
    return spark.createDataFrame(rows, BRONZE)


def parse(spark: SparkSession, payloads: list[bytes | dict[str, Any]]) -> DataFrame:
    return silver.parse_bronze(bronze(spark, payloads), DIALECTS, future_tolerance_s=300, max_age_s=86400)


def test_three_dialects_normalize_to_the_contract(spark: SparkSession) -> None:
    monitor = {"msgId": "x1", "deviceSerial": "mon-1", "patientId": "p2", "timestamp": "2026-11-26T08:59:30Z",
               "seqNo": 5, "mdc": {"code": "MDC_TEMP_BODY", "value": 98.6, "unit": "MDC_DIM_FAHR"}}  # fmt: skip
    band = {"uid": "w1", "band": "band-1", "wearer": "p3", "ts": int(dt.datetime(2026, 11, 26, 8, 59, tzinfo=dt.UTC).timestamp() * 1000),
            "n": 3, "fw": "2.4", "pulse": 72, "spo2": 0.97, "temp_f": 98.2}  # fmt: skip
    msgs = parse(spark, [canonical(), monitor, band])
    assertDataFrameEqual(
        msgs.select("dialect", "message_id", "device_id", "device_type", "patient_ref", "event_time", "seq", "reason"),
        spark.createDataFrame(
            [
                ("vitals.v1", "m1", "dev-1", "replay", "p1", dt.datetime(2026, 11, 26, 8, 59), 1, None),
                (
                    "ieee11073-monitor.v1",
                    "x1",
                    "mon-1",
                    "bedside_monitor",
                    "p2",
                    dt.datetime(2026, 11, 26, 8, 59, 30),
                    5,
                    None,
                ),
                ("acme-wearable.v2", "w1", "band-1", "wearable", "p3", dt.datetime(2026, 11, 26, 8, 59), 3, None),
            ],
            "dialect string, message_id string, device_id string, device_type string, patient_ref string,"
            " event_time timestamp, seq long, reason string",
        ),
    )
    out = silver.explode_measurements(msgs, CATALOGUE).select("message_id", "vital", "loinc", "value", "unit", "reason")
    assertDataFrameEqual(
        out,
        spark.createDataFrame(
            [
                ("m1", "heart_rate", "8867-4", 80.0, "/min", None),
                ("x1", "temperature", "8310-5", 37.0, "Cel", None),
                ("w1", "heart_rate", "8867-4", 72.0, "/min", None),
                ("w1", "spo2", "59408-5", 97.0, "%", None),
                ("w1", "temperature", "8310-5", 36.778, "Cel", None),
            ],
            "message_id string, vital string, loinc string, value double, unit string, reason string",
        ),
    )


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [
        (b"{not json", "malformed_json", None),
        (b"[1, 2, 3]", "malformed_json", None),
        (b"", "empty_payload", None),
        (b"\xff\xfe{}", "invalid_utf8", None),
        (b"\xff" * (contract.MAX_MESSAGE_BYTES + 1), "oversized_payload", str(contract.MAX_MESSAGE_BYTES + 1)),
        ({"hello": "world"}, "unknown_dialect", '{"hello": "world"}'),
        (canonical(device_id=None), "missing_field", "device_id"),
        (canonical(message_id=""), "missing_field", "message_id"),
        (canonical(event_time=None), "missing_field", "event_time"),
        (canonical(seq=None), "missing_field", "seq"),
        (canonical(patient_ref=None), "missing_field", "patient_ref"),
        (canonical(device_id="dev 1; DROP TABLE x"), "invalid_device_id", "dev 1; DROP TABLE x"),
        (canonical(event_time="yesterday"), "invalid_event_time", "yesterday"),
        (canonical(seq="seven"), "invalid_seq", "seven"),
        (canonical(seq=-1), "invalid_seq", "-1"),
        (canonical(event_time="2026-11-26T09:06:00Z"), "future_event_time", "2026-11-26T09:06:00Z"),
        (canonical(event_time="2026-11-24T09:00:00Z"), "stale_event_time", "2026-11-24T09:00:00Z"),
        (canonical(measurements=[]), "no_measurements", None),
        (canonical(measurements="not a list"), "no_measurements", None),
    ],
)
def test_message_rejections(
    spark: SparkSession, payload: bytes | dict[str, Any], reason: str, detail: str | None
) -> None:
    row = parse(spark, [payload]).select("reason", "detail").first()
    assert row is not None and (row["reason"], row["detail"]) == (reason, detail)


def test_a_contract_message_over_the_size_limit_is_quarantined_unparsed_and_one_at_the_limit_is_not(
    spark: SparkSession,
) -> None:
    """The limit is on bytes as received: a padded message just over it is rejected with its size; the same
    message padded to exactly the limit is parsed and accepted."""
    base = len(json.dumps(canonical(note="")).encode())
    at_limit = canonical(note="x" * (contract.MAX_MESSAGE_BYTES - base))
    over = canonical(note="x" * (contract.MAX_MESSAGE_BYTES - base + 1))
    rows = parse(spark, [at_limit, over]).orderBy("kafka_offset").select("reason", "detail", "message_id").collect()
    assert [(r["reason"], r["detail"], r["message_id"]) for r in rows] == [
        (None, None, "m1"),
        ("oversized_payload", str(contract.MAX_MESSAGE_BYTES + 1), None),
    ]


def test_event_time_within_tolerance_is_accepted(spark: SparkSession) -> None:
    rows = parse(spark, [canonical(event_time="2026-11-26T09:04:59Z"), canonical(event_time="2026-11-25T09:00:01Z")])
    assert [r["reason"] for r in rows.collect()] == [None, None]


@pytest.mark.parametrize(
    ("measurement", "reason", "value"),
    [
        ({"vital": "heart_rate", "value": 80, "unit": "bpm"}, None, 80.0),
        ({"vital": "spo2", "value": 0.955, "unit": "1"}, None, 95.5),
        ({"vital": "fio2", "value": 0.4, "unit": "1"}, None, 40.0),
        ({"vital": "temperature", "value": 310.15, "unit": "K"}, None, 37.0),
        ({"vital": "systolic_bp", "value": 16, "unit": "kPa"}, None, 120.01),
        ({"vital": "heart_rate", "value": 300, "unit": "/min"}, None, 300.0),
        ({"vital": "glucose", "value": 5, "unit": "mmol/L"}, "unknown_vital", None),
        ({"vital": "heart_rate", "unit": "/min"}, "missing_value", None),
        ({"vital": "heart_rate", "value": "fast", "unit": "/min"}, "non_numeric_value", None),
        ({"vital": "heart_rate", "value": 80, "unit": "furlongs"}, "unknown_unit", None),
        ({"vital": "heart_rate", "value": 80, "unit": "Cel"}, "incompatible_unit", None),
        ({"vital": "heart_rate", "value": 301, "unit": "/min"}, "implausible_value", 301.0),
        ({"vital": "spo2", "value": -1, "unit": "%"}, "implausible_value", -1.0),
        ({"vital": "heart_rate", "value": "NaN", "unit": "/min"}, "implausible_value", None),
    ],
)
def test_measurement_units_and_rejections(
    spark: SparkSession, measurement: dict[str, Any], reason: str | None, value: float | None
) -> None:
    msgs = parse(spark, [canonical(measurements=[measurement])])
    row = silver.explode_measurements(msgs, CATALOGUE).select("value", "reason").first()
    assert row is not None and row["reason"] == reason
    if value is not None:
        assert row["value"] == pytest.approx(value)


def test_duplicates_by_message_id_and_by_device_seq_never_self(spark: SparkSession) -> None:
    msgs = parse(
        spark,
        [
            canonical(message_id="a", seq=1),
            canonical(message_id="a", seq=1),  # exact resend, same batch
            canonical(message_id="b", seq=1),  # same device + seq, new id
            canonical(message_id="c", seq=2),  # seen in an earlier batch (offset 90)
            canonical(message_id="d", seq=3),  # this record itself is in `seen` (a retried batch)
            canonical(message_id="e", seq=4),
        ],
    )
    seen = spark.createDataFrame(
        [("c", "dev-1", 9, "t", 0, 90), ("d", "dev-1", 3, "t", 0, 4)],
        "message_id string, device_id string, seq long, kafka_topic string, kafka_partition int, kafka_offset long",
    )
    flagged = silver.with_duplicate_flag(msgs, seen).orderBy("kafka_offset")
    assert [r["is_duplicate"] for r in flagged.collect()] == [False, True, True, True, False, False]


def test_registry_as_of_join_picks_the_assignment_valid_at_event_time(spark: SparkSession) -> None:
    registry = spark.createDataFrame(
        [
            ("dev-1", "ICU-1", dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 26, 8, 0)),
            ("dev-1", "WARD-B", dt.datetime(2026, 11, 26, 8, 0), None),
        ],
        "device_id string, ward string, valid_from timestamp, valid_to timestamp",
    )
    m = spark.createDataFrame(
        [("dev-1", dt.datetime(2026, 11, 26, 7, 59)), ("dev-1", dt.datetime(2026, 11, 26, 8, 0)), ("dev-9", NOW)],
        "device_id string, event_time timestamp",
    )
    out = silver.with_registry(m, registry).orderBy("device_id", "event_time")
    assert [r["ward"] for r in out.collect()] == ["ICU-1", "WARD-B", None]


def test_silver_and_quarantine_layouts(spark: SparkSession) -> None:
    msgs = parse(spark, [canonical(measurements=[{"vital": "heart_rate", "value": 80, "unit": "/min"},
                                                 {"vital": "heart_rate", "value": 900, "unit": "/min"}]), b"{x"])  # fmt: skip
    good = msgs.filter(F.col("reason").isNull())
    measurements = silver.explode_measurements(good, CATALOGUE).withColumn("ward", F.lit("ICU-1"))
    vitals = silver.to_silver_vitals(measurements)
    assert vitals.schema == silver.SILVER_VITALS_SCHEMA or [f.name for f in vitals.schema] == [
        f.name for f in silver.SILVER_VITALS_SCHEMA
    ]
    assert vitals.count() == 1
    q = silver.to_quarantine(msgs, "message").unionByName(silver.to_quarantine(measurements, "measurement"))
    rows = {(r["level"], r["reason"], r["measurement_index"]) for r in q.collect()}
    assert rows == {("message", "malformed_json", -1), ("measurement", "implausible_value", 1)}
    raw = q.filter("level = 'message'").first()
    assert raw is not None and bytes(raw["raw_value"]) == b"{x"


def test_a_measurement_cut_from_its_payload_gets_it_back_for_quarantine(spark: SparkSession) -> None:
    first = canonical(message_id="a", measurements=[{"vital": "heart_rate", "value": 900, "unit": "/min"}])
    second = canonical(message_id="b", seq=2, measurements=[{"vital": "spo2", "value": 97, "unit": "%"}])
    msgs = parse(spark, [first, second])
    narrow = silver.explode_measurements(msgs.filter(F.col("reason").isNull()).drop("raw_value", "json"), CATALOGUE)
    assert "raw_value" not in narrow.columns and "measurements" not in narrow.columns
    bad = silver.with_payload_of(narrow.filter(F.col("reason").isNotNull()), msgs).withColumn("ward", F.lit(None))
    rows = silver.to_quarantine(bad, "measurement").collect()
    assert [(r["message_id"], r["reason"]) for r in rows] == [("a", "implausible_value")]
    assert json.loads(bytes(rows[0]["raw_value"]))["message_id"] == "a"


def test_a_record_that_seen_holds_twice_is_still_not_its_own_duplicate(spark: SparkSession) -> None:
    msgs = parse(spark, [canonical(message_id="a", seq=1), canonical(message_id="b", seq=2)])
    seen = spark.createDataFrame(
        [("a", "dev-1", 1, "t", 0, 0), ("a", "dev-1", 1, "t", 0, 0), ("b", "dev-1", 2, "t", 0, 7)],
        "message_id string, device_id string, seq long, kafka_topic string, kafka_partition int, kafka_offset long",
    )
    flagged = silver.with_duplicate_flag(msgs, seen).orderBy("kafka_offset")
    assert [(r["message_id"], r["is_duplicate"]) for r in flagged.collect()] == [("a", False), ("b", True)]
    assert flagged.columns == [*msgs.columns, "is_duplicate"]
