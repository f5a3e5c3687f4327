"""Kafka -> ``bronze.telemetry``: every record exactly as received, append-only, nothing rejected.

Appended per micro-batch through ``delta.BatchAppender`` (exactly once with the Kafka offsets in the
checkpoint), rather than Delta's streaming sink, whose per-commit transaction check costs seconds here.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from lakehouse.config import Config, RegionConfig
from lakehouse.io import delta, kafka, streaming, tables

TABLE = "bronze.telemetry"

# bronze.telemetry: one row per Kafka record; key (topic, partition, offset); raw bytes kept as received.
BRONZE_SCHEMA = T.StructType(
    [
        T.StructField("key", T.StringType(), True),
        T.StructField("value", T.BinaryType(), True),
        T.StructField("topic", T.StringType(), False),
        T.StructField("partition", T.IntegerType(), False),
        T.StructField("offset", T.LongType(), False),
        T.StructField("kafka_timestamp", T.TimestampType(), True),
        T.StructField("ingest_time", T.TimestampType(), False),
        T.StructField("ingest_date", T.DateType(), False),
    ]
)


def to_bronze(records: DataFrame) -> DataFrame:
    """Kafka source rows -> bronze rows: raw value and key, source coordinates, ingest time and date."""
    return records.select(
        F.col("key").cast("string").alias("key"),
        F.col("value"),
        F.col("topic"),
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingest_time"),
    ).withColumn("ingest_date", F.to_date("ingest_time"))


def start_bronze(spark: SparkSession, cfg: Config, region: RegionConfig, once: bool) -> StreamingQuery:
    """Start Kafka -> bronze (availableNow when ``once``, else a processing-time trigger); append-only."""
    source = kafka.read_kafka(
        spark,
        region,
        cfg.topics.telemetry,
        streaming=True,
        max_offsets_per_trigger=cfg.pipeline.max_offsets_per_trigger,
        partition_fetch_bytes=cfg.pipeline.bronze_fetch_mib << 20,
        max_records_per_task=cfg.pipeline.bronze_max_records_per_task,
    )
    target = tables.table_uri(region, TABLE)
    checkpoint = tables.checkpoint_uri(region, TABLE)
    appender = delta.BatchAppender.for_checkpoint(spark, checkpoint, TABLE)

    def each(batch: DataFrame, batch_id: int) -> None:
        appender.append(batch, target, batch_id)

    writer = (
        to_bronze(source)
        .writeStream.foreachBatch(each)
        .option("checkpointLocation", checkpoint)
        .queryName(f"bronze_telemetry_{region.name}")
    )
    return streaming.start(writer, cfg, once)
