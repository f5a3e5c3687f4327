"""to_bronze keeps every Kafka record exactly as received and adds its ingest time."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

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


def test_silver_reads_a_bronze_backlog_in_batches_under_its_byte_bound(spark: SparkSession, tmp_path: Path) -> None:
    """Five bronze commits of ~1.5 MiB each (incompressible payloads): with a 1 MiB bound silver reads them in one
    batch per file, every row once; with 64 MiB, in one batch."""
    from lakehouse.ingest.silver_job import bronze_stream

    bronze = str(tmp_path / "bronze")
    for commit in range(5):
        rows = [(commit, i, os.urandom(3000)) for i in range(500)]  # ~1.5 MB a file
        frame = spark.createDataFrame(rows, "commit int, i int, value binary").coalesce(1)
        frame.write.format("delta").mode("append").save(bronze)

    def batches(max_mib: int) -> list[int]:
        seen: list[int] = []
        query = (
            bronze_stream(spark, bronze, max_mib)
            .writeStream.foreachBatch(lambda df, _: seen.append(df.count()))
            .option("checkpointLocation", str(tmp_path / f"checkpoint-{max_mib}"))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
        return seen

    assert batches(1) == [500] * 5
    assert batches(64) == [2500]
