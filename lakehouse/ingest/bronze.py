"""Kafka -> ``bronze.telemetry``: every record exactly as received, append-only, nothing rejected."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import Config
from lakehouse.io import kafka, tables

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


@dataclass(frozen=True)
class BronzeRun:
    """What one availableNow pass of the bronze stream did."""

    table_uri: str
    checkpoint_uri: str
    rows_read: int  # from the last 100 progress reports (Spark keeps no more); exact counts come from the table
    batches: int


def run_bronze(spark: SparkSession, cfg: Config, region_name: str | None = None, once: bool = True) -> BronzeRun:
    """Stream the region's telemetry topic into bronze; ``once`` drains what is there (availableNow)."""
    region = cfg.region(region_name)
    target = tables.table_uri(region, TABLE)
    checkpoint = tables.checkpoint_uri(region, TABLE)
    source = kafka.read_kafka(spark, region, cfg.topics.telemetry, streaming=True)
    writer = (
        to_bronze(source)
        .writeStream.format("delta")
        .outputMode("append")
        .partitionBy("ingest_date")
        .option("checkpointLocation", checkpoint)
        .queryName(f"bronze_telemetry_{region.name}")
    )
    writer = writer.trigger(availableNow=True) if once else writer.trigger(processingTime="5 seconds")
    query = writer.start(target)
    try:
        query.awaitTermination()
        progress = [p for p in query.recentProgress if int(p.get("numInputRows", 0)) > 0]
    finally:
        query.stop()
    return BronzeRun(
        table_uri=target,
        checkpoint_uri=checkpoint,
        rows_read=sum(int(p["numInputRows"]) for p in progress),
        batches=len(progress),
    )
