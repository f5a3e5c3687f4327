"""`make demo` / `lakehouse demo`: devices -> Kafka -> Spark -> Delta on HDFS, read back and summarised."""

from __future__ import annotations

import time
from dataclasses import dataclass

from lakehouse.config import Config
from lakehouse.devices import synthetic
from lakehouse.errors import LakehouseError
from lakehouse.ingest import bronze
from lakehouse.io import kafka, tables
from lakehouse.stack import manager


@dataclass(frozen=True)
class DemoSummary:
    """What the demo sent, what reached the table, and whether the two reconcile."""

    region: str
    topic: str
    produced: int
    kafka_records: int
    bronze_rows: int
    bronze_rows_before: int
    devices: int
    partitions: dict[int, int]
    table_uri: str
    delta_version: int
    delta_log_files: int
    produce_s: float
    ingest_s: float

    @property
    def reconciled(self) -> bool:
        """Bronze holds exactly one row per Kafka record of the topic: nothing lost, nothing twice."""
        return self.bronze_rows == self.kafka_records

    def render(self) -> str:
        per_partition = ", ".join(f"p{p}={n}" for p, n in sorted(self.partitions.items()))
        rate = self.produced / self.produce_s if self.produce_s else 0.0
        lines = [
            f"demo summary ({self.region})",
            (
                f"  produced to Kafka       {self.produced:>8} messages to {self.topic} in {self.produce_s:.1f}s"
                f" ({rate:,.0f} msg/s, acks=all, idempotent)"
            ),
            f"  Kafka topic holds       {self.kafka_records:>8} records ({per_partition})",
            (
                f"  bronze.telemetry        {self.bronze_rows:>8} rows (+{self.bronze_rows - self.bronze_rows_before}"
                f" this run, streamed in {self.ingest_s:.1f}s) from {self.devices} devices"
            ),
            (
                f"  Delta table                 {self.table_uri} (version {self.delta_version},"
                f" {self.delta_log_files} files in _delta_log)"
            ),
            (
                f"  reconciled                  {'yes' if self.reconciled else 'NO'}:"
                f" table rows {'==' if self.reconciled else '!='} Kafka records"
            ),
        ]
        return "\n".join(lines)


def run(cfg: Config, messages: int = 5000, devices: int = 50, region: str | None = None) -> DemoSummary:
    """Send ``messages`` device messages to the region's Kafka, stream them into bronze, read back."""
    if messages < 1 or devices < 1:
        raise LakehouseError("--messages and --devices must be at least 1")
    reg = cfg.region(region)
    manager.require(cfg, "kafka", "hdfs-namenode", "hdfs-datanode", region=reg.name)
    from hdfs import InsecureClient
    from pyspark.sql import functions as F

    from lakehouse.session import build_spark

    topic = cfg.topics.telemetry
    kafka.ensure_topic(reg, topic, cfg.topics)
    t0 = time.monotonic()
    produced = kafka.produce_json(
        reg, topic, synthetic.messages(messages, devices), progress_every=max(1000, messages // 10)
    )
    produce_s = time.monotonic() - t0

    spark = build_spark(cfg, "lakehouse-demo")
    uri = tables.table_uri(reg, bronze.TABLE)
    from delta.tables import DeltaTable

    before = spark.read.format("delta").load(uri).count() if DeltaTable.isDeltaTable(spark, uri) else 0
    t1 = time.monotonic()
    bronze.run_bronze(spark, cfg, reg.name, once=True)
    ingest_s = time.monotonic() - t1

    table = spark.read.format("delta").load(uri)
    rows = table.count()
    stats = table.agg(F.countDistinct("key").alias("devices")).first()
    version = DeltaTable.forPath(spark, uri).history(1).select("version").first()
    offsets = kafka.end_offsets(reg, topic)
    log_dir = uri.split("://", 1)[1].split("/", 1)[1]
    log_files = InsecureClient(reg.hdfs.webhdfs_url, user=reg.hdfs.user).list(f"/{log_dir}/_delta_log")
    return DemoSummary(
        region=reg.name,
        topic=topic,
        produced=produced,
        kafka_records=sum(offsets.values()),
        bronze_rows=rows,
        bronze_rows_before=before,
        devices=int(stats["devices"]) if stats else 0,
        partitions=offsets,
        table_uri=uri,
        delta_version=int(version["version"]) if version else -1,
        delta_log_files=len(log_files),
        produce_s=produce_s,
        ingest_s=ingest_s,
    )
