"""The silver stream: bronze -> silver.vitals / silver.quarantine, and in the same micro-batch gold.news2
and gold.alerts (published to Kafka ``alerts.news2``).

Every write is an idempotent MERGE keyed by the source offset (or the alert id), and every count is
computed from the batch's DataFrames, so a micro-batch retried after a crash writes and counts the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse.config import Config, RegionConfig
from lakehouse.ingest import gold, silver
from lakehouse.ingest.contract import Catalogue, Dialect, load_catalogue, load_dialects
from lakehouse.io import delta, tables
from lakehouse.tables import uri

COORDS = ["kafka_topic", "kafka_partition", "kafka_offset"]
QUERY = "silver.vitals"


@dataclass(frozen=True)
class SilverContext:
    """Everything a silver micro-batch needs, resolved once when the query starts."""

    region: RegionConfig
    dialects: tuple[Dialect, ...]
    catalogue: Catalogue
    future_tolerance_s: int
    max_event_age_s: int
    alerts_topic: str

    def uri(self, table: str) -> str:
        return uri(self.region, table)


def context(cfg: Config, region: RegionConfig) -> SilverContext:
    """Load the contract (dialects, catalogue) and the region's settings for the silver stream."""
    catalogue = load_catalogue()
    return SilverContext(
        region=region,
        dialects=load_dialects(catalogue=catalogue),
        catalogue=catalogue,
        future_tolerance_s=cfg.pipeline.future_tolerance_s,
        max_event_age_s=cfg.pipeline.max_event_age_s,
        alerts_topic=cfg.topics.alerts,
    )


def _read(spark: SparkSession, location: str) -> DataFrame:
    return spark.read.format("delta").load(location)


def _publish_alerts(alerts: DataFrame, ctx: SilverContext) -> None:
    """Send alert events to Kafka (at least once; consumers dedupe on alert_id + status)."""
    (
        alerts.select(
            F.col("patient_ref").alias("key"),
            F.to_json(
                F.struct(*[F.col(c) for c in alerts.columns], F.current_timestamp().alias("published_time"))
            ).alias("value"),
        )
        .write.format("kafka")
        .option("kafka.bootstrap.servers", ctx.region.kafka.bootstrap)
        .option("kafka.acks", "all")
        .option("topic", ctx.alerts_topic)
        .save()
    )


def update_news2_and_alerts(spark: SparkSession, vitals: DataFrame, ctx: SilverContext) -> tuple[int, int]:
    """MERGE a batch's accepted measurements into gold.news2, then open/close gold.alerts; (opened, closed)."""
    news2_uri, alerts_uri = ctx.uri("gold.news2"), ctx.uri("gold.alerts")
    observations = gold.to_observations(vitals).persist()
    keys = observations.select("patient_ref", "observation_time")
    existing = _read(spark, news2_uri).join(keys, ["patient_ref", "observation_time"], "left_semi")
    rows = gold.to_news2(gold.combine_observations(observations, existing))
    delta.merge_upsert(spark, news2_uri, rows, ["patient_ref", "observation_time"])

    touched = observations.select("patient_ref").distinct()
    latest = gold.latest_per_patient(_read(spark, news2_uri).join(touched, "patient_ref", "left_semi")).persist()
    open_alerts = _read(spark, alerts_uri).filter("status = 'open'").join(touched, "patient_ref", "left_semi").persist()
    levels = gold.with_alert_level(latest).select("patient_ref", "alert_level", F.col("observation_time").alias("obs"))
    to_close = (
        open_alerts.join(levels, "patient_ref")
        .filter(F.col("alert_level").isNull() | (F.col("alert_level") != F.col("level")))
        .withColumn("status", F.lit("closed"))
        .withColumn("closed_observation_time", F.col("obs"))
        .withColumn("closed_time", F.current_timestamp())
        .drop("alert_level", "obs")
        .persist()
    )
    to_open = gold.new_alerts(latest, open_alerts).persist()
    opened, closed = to_open.count(), to_close.count()
    if opened or closed:
        _publish_alerts(to_open.unionByName(to_close), ctx)
    if closed:
        delta.merge_upsert(spark, alerts_uri, to_close, ["alert_id"])
    if opened:
        delta.merge_insert(spark, alerts_uri, to_open, ["alert_id"])
    for df in (observations, latest, open_alerts, to_close, to_open):
        df.unpersist()
    return opened, closed


def process_batch(spark: SparkSession, bronze_batch: DataFrame, batch_id: int, ctx: SilverContext) -> dict[str, int]:
    """One micro-batch of bronze rows -> silver tables, gold.news2, gold.alerts and its ops.ingest_batches row."""
    messages = silver.parse_bronze(bronze_batch, ctx.dialects, ctx.future_tolerance_s, ctx.max_event_age_s).persist()
    try:
        records = messages.count()
        if records == 0:
            return {"records": 0}
        rejected = messages.filter(F.col("reason").isNotNull())
        acceptable = messages.filter(F.col("reason").isNull())
        span = acceptable.agg(F.min("event_time").alias("lo"), F.max("event_time").alias("hi")).first()
        seen = _read(spark, ctx.uri("silver.accepted_messages"))
        if span is not None and span["lo"] is not None:
            seen = seen.filter(
                F.col("event_date").between(
                    (span["lo"] - timedelta(days=1)).date(), (span["hi"] + timedelta(days=1)).date()
                )
            )
        flagged = silver.with_duplicate_flag(acceptable, seen).persist()
        fresh = flagged.filter(~F.col("is_duplicate"))
        registry = _read(spark, ctx.uri("silver.device_registry"))
        measurements = silver.with_registry(silver.explode_measurements(fresh, ctx.catalogue), registry).persist()
        vitals = silver.to_silver_vitals(measurements).persist()
        quarantine = silver.to_quarantine(rejected, "message").unionByName(
            silver.to_quarantine(measurements, "measurement")
        )

        delta.merge_insert(spark, ctx.uri("silver.accepted_messages"), silver.to_accepted_messages(fresh), COORDS)
        delta.merge_insert(spark, ctx.uri("silver.vitals"), vitals, [*COORDS, "measurement_index"])
        delta.merge_insert(spark, ctx.uri("silver.quarantine"), quarantine, [*COORDS, "measurement_index"])
        opened, closed = update_news2_and_alerts(spark, vitals, ctx)

        counts = {
            "records": records,
            "messages_accepted": fresh.count(),
            "messages_quarantined": rejected.count(),
            "messages_duplicate": flagged.filter(F.col("is_duplicate")).count(),
            "measurements_accepted": vitals.count(),
            "measurements_quarantined": measurements.filter(F.col("reason").isNotNull()).count(),
            "alerts_opened": opened,
            "alerts_closed": closed,
        }
        row = spark.createDataFrame([(ctx.region.name, batch_id, *counts.values())], [
            "region", "batch_id", *counts.keys()
        ]).withColumn("processed_time", F.current_timestamp())  # fmt: skip
        delta.merge_upsert(spark, ctx.uri("ops.ingest_batches"), row.select(*_ops_columns()), ["region", "batch_id"])
        for df in (flagged, measurements, vitals):
            df.unpersist()
        return counts
    finally:
        messages.unpersist()


def _ops_columns() -> list[str]:
    from lakehouse.tables import INGEST_BATCHES_SCHEMA

    return [f.name for f in INGEST_BATCHES_SCHEMA]


def start_silver(spark: SparkSession, cfg: Config, region: RegionConfig, once: bool) -> StreamingQuery:
    """Start the silver stream over bronze (availableNow when ``once``, else a processing-time trigger)."""
    ctx = context(cfg, region)
    source = spark.readStream.format("delta").load(uri(region, "bronze.telemetry"))

    def each(df: DataFrame, batch_id: int) -> None:
        process_batch(spark, df, batch_id, ctx)

    writer = (
        source.writeStream.foreachBatch(each)
        .option("checkpointLocation", tables.checkpoint_uri(region, QUERY))
        .queryName(f"silver_vitals_{region.name}")
    )
    if once:
        return writer.trigger(availableNow=True).start()
    return writer.trigger(processingTime=f"{cfg.pipeline.trigger_interval_s} seconds").start()
