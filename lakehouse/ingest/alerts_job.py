"""The alert table stream: Kafka ``alerts.news2`` -> ``gold.alerts`` (one row per alert episode).

The topic is the alert event log the real-time query publishes (open, then close events). Each
micro-batch keeps the latest event per alert id (a close wins over an open) and MERGEs it by alert id:
new alerts are inserted, a close updates the open row, and a resent event changes nothing, so a
retried batch or an at-least-once duplicate leaves the table as it was. The topic names the patient by the raw
reference (clinical systems act on it); the table holds the pseudonym (:mod:`lakehouse.security.pseudonyms`).

Each non-empty batch is checked with the gold.alerts suite (conf/quality) before the MERGE: a blocking
failure stops the query before anything is written, so the batch is retried once the cause is fixed. The
alerts themselves already reached clinical systems on the topic; the gate guards the table.
"""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse.config import Config, RegionConfig
from lakehouse.ingest.gold import ALERTS_SCHEMA
from lakehouse.io import delta, kafka, streaming, tables
from lakehouse.quality import gate
from lakehouse.replication import fencing
from lakehouse.security import pseudonyms
from lakehouse.tables import uri

QUERY = "gold.alerts"


def parse_alert_events(records: DataFrame) -> DataFrame:
    """Kafka records of ``alerts.news2`` -> gold.alerts rows (one per event, in topic order)."""
    return records.select(
        F.from_json(F.col("value").cast("string"), ALERTS_SCHEMA).alias("a"), "partition", "offset"
    ).select("a.*", "partition", "offset")


def latest_event_per_alert(events: DataFrame) -> DataFrame:
    """One row per alert id: its close event if the batch has one, else its open event."""
    w = Window.partitionBy("alert_id").orderBy(
        F.when(F.col("status") == "closed", 0).otherwise(1), F.col("partition"), F.col("offset").desc()
    )
    return (
        events.filter(F.col("alert_id").isNotNull())
        .withColumn("_rn", F.row_number().over(w))
        .filter("_rn = 1")
        .select(*[F.col(f.name) for f in ALERTS_SCHEMA])
    )


def merge_alerts(spark: SparkSession, target: str, events: DataFrame) -> None:
    """Insert new alerts; close open ones; anything else (a resend) changes nothing."""
    fencing.check()
    (
        DeltaTable.forPath(spark, target)
        .alias("t")
        .merge(events.alias("s"), "t.alert_id = s.alert_id")
        .whenMatchedUpdate(
            condition="s.status = 'closed' AND t.status = 'open'",
            set={
                "status": "s.status",
                "closed_observation_time": "s.closed_observation_time",
                "closed_time": "s.closed_time",
            },
        )
        .whenNotMatchedInsertAll()
        .execute()
    )


def start_alerts(spark: SparkSession, cfg: Config, region: RegionConfig, once: bool) -> StreamingQuery:
    """Start alerts.news2 -> gold.alerts (availableNow when ``once``)."""
    target = uri(region, "gold.alerts")
    checkpoint = tables.checkpoint_uri(region, QUERY)
    appender = delta.BatchAppender.for_checkpoint(spark, checkpoint, QUERY)
    checks = gate.load_checks(cfg, region, (QUERY,), appender)  # MERGE is idempotent; dq.results needs the marker

    patient_key = pseudonyms.patient_key(cfg)

    def each(batch: DataFrame, batch_id: int) -> None:
        latest = pseudonyms.pseudonymize(latest_event_per_alert(parse_alert_events(batch)), patient_key)
        latest = latest.localCheckpoint(eager=True)
        try:
            if latest.isEmpty():
                return
            if checks is not None:  # a blocking failure raises here: nothing merged, retried on restart
                outcome = checks.check(QUERY, latest)
                run_id = f"{QUERY}:{region.name}:{batch_id}"
                gate.publish(spark, [outcome], checks, run_id, f"stream batch {batch_id}", batch_id)
            merge_alerts(spark, target, latest)
        finally:
            latest.unpersist()

    source = kafka.read_kafka(spark, region, cfg.topics.alerts, streaming=True)
    writer = (
        source.writeStream.foreachBatch(each)
        .option("checkpointLocation", checkpoint)
        .queryName(f"gold_alerts_{region.name}")
    )
    return streaming.start(writer, cfg, once, interval_s=cfg.pipeline.merge_trigger_interval_s)
