"""The silver stream: bronze -> silver.vitals / silver.quarantine, and in the same micro-batch gold.news2
and gold.alerts (published to Kafka ``alerts.news2``).

Silver tables and ``ops.ingest_batches`` take idempotent appends (Delta txnAppId = the checkpoint's
writer id, txnVersion = the batch id); gold.news2 and gold.alerts take MERGEs keyed by observation or
alert id. Duplicate detection never counts a record as a duplicate of itself, and every count comes
from the batch's own DataFrames, so a micro-batch retried after a crash writes and counts the same.
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
from lakehouse.io import checkpoints, delta, streaming, tables
from lakehouse.observability import batches
from lakehouse.tables import uri

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
    writer: str  # owner of the checkpoint: Delta's txnAppId for idempotent appends

    def uri(self, table: str) -> str:
        return uri(self.region, table)


def context(cfg: Config, region: RegionConfig, writer: str) -> SilverContext:
    """Load the contract (dialects, catalogue) and the region's settings for the silver stream."""
    catalogue = load_catalogue()
    return SilverContext(
        region=region,
        dialects=load_dialects(catalogue=catalogue),
        catalogue=catalogue,
        future_tolerance_s=cfg.pipeline.future_tolerance_s,
        max_event_age_s=cfg.pipeline.max_event_age_s,
        alerts_topic=cfg.topics.alerts,
        writer=writer,
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
    dates = [r[0] for r in observations.select(F.to_date("observation_time")).distinct().collect()]
    stored = _read(spark, news2_uri).filter(F.col("observation_date").isin(dates))
    existing = stored.join(keys, ["patient_ref", "observation_time"], "left_semi")
    rows = gold.to_news2(gold.combine_observations(observations, existing))
    delta.merge_upsert(spark, news2_uri, rows, ["observation_date", "patient_ref", "observation_time"])

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
        batches.record_alert_episodes(ctx.region.name, to_open, to_close)
    if closed:
        delta.merge_upsert(spark, alerts_uri, to_close, ["alert_id"])
    if opened:
        delta.merge_insert(spark, alerts_uri, to_open, ["alert_id"])
    for df in (observations, latest, open_alerts, to_close, to_open):
        df.unpersist()
    return opened, closed


def process_batch(spark: SparkSession, bronze_batch: DataFrame, batch_id: int, ctx: SilverContext) -> dict[str, int]:
    """One micro-batch of bronze rows -> silver tables, gold.news2, gold.alerts and its ops.ingest_batches row.

    The parsed messages and the measurements are materialized once (persisted, then counted in a
    single job each), so the MERGEs that follow do not re-parse the batch.
    """
    messages = silver.parse_bronze(bronze_batch, ctx.dialects, ctx.future_tolerance_s, ctx.max_event_age_s).persist()
    cached: list[DataFrame] = [messages]
    try:
        span = messages.agg(
            F.count(F.lit(1)).alias("records"),
            F.min(F.when(F.col("reason").isNull(), F.col("event_time"))).alias("lo"),
            F.max(F.when(F.col("reason").isNull(), F.col("event_time"))).alias("hi"),
        ).first()
        if span is None or span["records"] == 0:
            return {"records": 0}
        seen = _read(spark, ctx.uri("silver.accepted_messages"))
        if span["lo"] is not None:
            days = timedelta(days=1)
            seen = seen.filter(F.col("event_date").between((span["lo"] - days).date(), (span["hi"] + days).date()))
        flagged = silver.with_duplicate_flag(messages.filter(F.col("reason").isNull()), seen).persist()
        cached.append(flagged)
        fresh = flagged.filter(~F.col("is_duplicate"))
        registry = _read(spark, ctx.uri("silver.device_registry"))
        measurements = silver.with_registry(silver.explode_measurements(fresh, ctx.catalogue), registry).persist()
        cached.append(measurements)
        m = measurements.agg(
            F.count(F.when(F.col("reason").isNull(), 1)).alias("ok"), F.count(F.col("reason")).alias("bad")
        ).first()
        d = flagged.agg(F.count(F.when(F.col("is_duplicate"), 1)).alias("dup"), F.count(F.lit(1)).alias("n")).first()
        assert m is not None and d is not None
        vitals = silver.to_silver_vitals(measurements)
        quarantine = silver.to_quarantine(messages, "message").unionByName(
            silver.to_quarantine(measurements, "measurement")
        )
        delta.append_once(silver.to_accepted_messages(fresh), ctx.uri("silver.accepted_messages"), ctx.writer, batch_id)
        delta.append_once(vitals, ctx.uri("silver.vitals"), ctx.writer, batch_id)
        delta.append_once(quarantine, ctx.uri("silver.quarantine"), ctx.writer, batch_id)
        opened, closed = update_news2_and_alerts(spark, vitals, ctx)

        counts = {
            "records": int(span["records"]),
            "messages_accepted": int(d["n"]) - int(d["dup"]),
            "messages_quarantined": int(span["records"]) - int(d["n"]),
            "messages_duplicate": int(d["dup"]),
            "measurements_accepted": int(m["ok"]),
            "measurements_quarantined": int(m["bad"]),
            "alerts_opened": opened,
            "alerts_closed": closed,
        }
        row = spark.createDataFrame([(ctx.region.name, batch_id, *counts.values())], [
            "region", "batch_id", *counts.keys()
        ]).withColumn("processed_time", F.current_timestamp())  # fmt: skip
        delta.append_once(row.select(*_ops_columns()), ctx.uri("ops.ingest_batches"), ctx.writer, batch_id)
        batches.record_silver_batch(ctx.region.name, counts, quarantine, vitals)
        return counts
    finally:
        for df in cached:
            df.unpersist()


def _ops_columns() -> list[str]:
    from lakehouse.tables import INGEST_BATCHES_SCHEMA

    return [f.name for f in INGEST_BATCHES_SCHEMA]


def start_silver(spark: SparkSession, cfg: Config, region: RegionConfig, once: bool) -> StreamingQuery:
    """Start the silver stream over bronze (availableNow when ``once``, else a processing-time trigger)."""
    checkpoint = tables.checkpoint_uri(region, QUERY)
    ctx = context(cfg, region, checkpoints.writer_id(spark, checkpoint, QUERY))
    source = spark.readStream.format("delta").load(uri(region, "bronze.telemetry"))

    def each(df: DataFrame, batch_id: int) -> None:
        process_batch(spark, df, batch_id, ctx)

    writer = (
        source.writeStream.foreachBatch(each)
        .option("checkpointLocation", checkpoint)
        .queryName(f"silver_vitals_{region.name}")
    )
    return streaming.start(writer, cfg, once)
