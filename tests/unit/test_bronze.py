"""to_bronze keeps every Kafka record exactly as received and adds its ingest time."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from lakehouse.ingest.bronze import BRONZE_SCHEMA, to_bronze

KAFKA_SOURCE_SCHEMA = T.StructType(
    [
        T.StructField("key", T.BinaryType()),
        T.StructField("value", T.BinaryType()),
        T.StructField("topic", T.StringType()),
        T.StructField("partition", T.IntegerType()),
        T.StructField("offset", T.LongType()),
        T.StructField("timestamp", T.TimestampType()),
        T.StructField("timestampType", T.IntegerType()),
    ]
)


def test_to_bronze_keeps_raw_bytes_and_source_coordinates(spark: SparkSession) -> None:
    ts = dt.datetime(2026, 11, 26, 8, 0, 0)
    raw = [
        (b"dev-1", b'{"ok": true}', "telemetry.vitals", 0, 41, ts, 0),
        (None, b"\xff\xfe not json", "telemetry.vitals", 2, 7, ts, 0),
        (b"dev-2", None, "telemetry.vitals", 1, 0, None, 0),
    ]
    out = to_bronze(spark.createDataFrame(raw, KAFKA_SOURCE_SCHEMA))
    assert [f.name for f in out.schema] == [f.name for f in BRONZE_SCHEMA]
    assert [f.dataType for f in out.schema] == [f.dataType for f in BRONZE_SCHEMA]
    expected = spark.createDataFrame(
        [
            ("dev-1", bytearray(b'{"ok": true}'), "telemetry.vitals", 0, 41, ts),
            (None, bytearray(b"\xff\xfe not json"), "telemetry.vitals", 2, 7, ts),
            ("dev-2", None, "telemetry.vitals", 1, 0, None),
        ],
        "key string, value binary, topic string, partition int, offset long, kafka_timestamp timestamp",
    )
    assertDataFrameEqual(out.drop("ingest_time", "ingest_date"), expected)
    # ingest time is stamped now, and the partition date follows it
    row = out.select("ingest_time", "ingest_date").first()
    assert row is not None and row["ingest_date"] == row["ingest_time"].date()
    assert abs((dt.datetime.now() - row["ingest_time"]).total_seconds()) < 600
