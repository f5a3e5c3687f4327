"""The silver stream: bronze -> silver.vitals, silver.quarantine, silver.accepted_messages, ops.ingest_batches.

Patient references are pseudonymized here (:mod:`lakehouse.security.pseudonyms`): silver and gold hold
pseudonyms; each batch adds the pairs not seen before to ``restricted.patient_identities``.

Every table takes idempotent appends (``delta.BatchAppender``: each commit is marked with the
checkpoint's writer id and the batch id; a run's first batch skips tables that already have it). Duplicate detection never counts a record as a duplicate of itself, and every count comes
from the batch's own DataFrames, so a micro-batch retried after a crash writes and counts the same.
(NEWS2 and alerts do not wait for silver: ``news2_job`` reads Kafka directly.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse.config import Config, RegionConfig
from lakehouse.ingest import silver
from lakehouse.ingest.contract import Catalogue, Dialect, load_catalogue, load_dialects
from lakehouse.io import delta, streaming, tables
from lakehouse.observability import batches
from lakehouse.quality import gate
from lakehouse.security import pseudonyms
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
    appender: delta.BatchAppender  # idempotent appends, marked with the checkpoint's writer id
    patient_key: bytes  # raw patient references become pseudonyms here (lakehouse.security.pseudonyms)
    checks: gate.Checks | None = None  # the bronze.telemetry and silver.vitals suites (None: checks off)

    def uri(self, table: str) -> str:
        return uri(self.region, table)


def context(cfg: Config, region: RegionConfig, appender: delta.BatchAppender) -> SilverContext:
    """Load the contract (dialects, catalogue), the region's settings and the data-quality suites."""
    catalogue = load_catalogue()
    return SilverContext(
        region=region,
        dialects=load_dialects(catalogue=catalogue),
        catalogue=catalogue,
        future_tolerance_s=cfg.pipeline.future_tolerance_s,
        max_event_age_s=cfg.pipeline.max_event_age_s,
        appender=appender,
        patient_key=pseudonyms.patient_key(cfg),
        checks=gate.load_checks(cfg, region, ("bronze.telemetry", "silver.vitals"), appender),
    )


def _read(spark: SparkSession, location: str) -> DataFrame:
    return spark.read.format("delta").load(location)


def process_batch(spark: SparkSession, bronze_batch: DataFrame, batch_id: int, ctx: SilverContext) -> dict[str, int]:
    """One micro-batch of bronze rows -> silver tables and its ops.ingest_batches row.

    The parsed messages, the duplicate flags and the measurements are each materialized once, so the
    counts and appends that follow do not re-parse the batch.
    """
    # each stage is computed once and cut from its lineage (local checkpoint): the many small jobs below
    # then plan over an RDD relation instead of re-planning the wide parse expressions every time
    messages = silver.parse_bronze(bronze_batch, ctx.dialects, ctx.future_tolerance_s, ctx.max_event_age_s)
    messages = messages.localCheckpoint(eager=True)
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
    # the payload (raw bytes and text) is the widest part of a row and only quarantine needs it: accepted messages
    # go on without it, so the duplicate check's shuffles and the measurement rows stay narrow
    accepted = messages.filter(F.col("reason").isNull()).drop("raw_value", "json")
    flagged = silver.with_duplicate_flag(accepted, seen).localCheckpoint(eager=True)
    # raw patient references end here: what follows holds pseudonyms, the new pairs go to the restricted table
    found = pseudonyms.identities(flagged.filter(~F.col("is_duplicate")), ctx.patient_key)
    fresh = pseudonyms.pseudonymize(flagged.filter(~F.col("is_duplicate")), ctx.patient_key)
    registry = _read(spark, ctx.uri("silver.device_registry"))
    measurements = silver.with_registry(silver.explode_measurements(fresh, ctx.catalogue), registry)
    measurements = measurements.localCheckpoint(eager=True)
    if ctx.checks is not None:
        measurements = _check(spark, ctx.checks, messages, measurements, batch_id)
    m = measurements.agg(
        F.count(F.when(F.col("reason").isNull(), 1)).alias("ok"), F.count(F.col("reason")).alias("bad")
    ).first()
    d = flagged.agg(F.count(F.when(F.col("is_duplicate"), 1)).alias("dup"), F.count(F.lit(1)).alias("n")).first()
    assert m is not None and d is not None
    vitals = silver.to_silver_vitals(measurements)
    quarantine = silver.to_quarantine(messages, "message").unionByName(
        silver.to_quarantine(
            silver.with_payload_of(measurements.filter(F.col("reason").isNotNull()), messages), "measurement"
        )
    )
    known = _read(spark, ctx.uri(pseudonyms.IDENTITIES_TABLE))
    new_pairs = pseudonyms.new_identities(found, known).localCheckpoint(eager=True)
    if not new_pairs.isEmpty():  # a retried batch finds its pairs written already
        ctx.appender.append(new_pairs, ctx.uri(pseudonyms.IDENTITIES_TABLE), batch_id)
    ctx.appender.append(silver.to_accepted_messages(fresh), ctx.uri("silver.accepted_messages"), batch_id)
    ctx.appender.append(vitals, ctx.uri("silver.vitals"), batch_id)
    ctx.appender.append(quarantine, ctx.uri("silver.quarantine"), batch_id)

    counts = {
        "records": int(span["records"]),
        "messages_accepted": int(d["n"]) - int(d["dup"]),
        "messages_quarantined": int(span["records"]) - int(d["n"]),
        "messages_duplicate": int(d["dup"]),
        "measurements_accepted": int(m["ok"]),
        "measurements_quarantined": int(m["bad"]),
    }
    row = spark.createDataFrame([(ctx.region.name, batch_id, *counts.values())], [
        "region", "batch_id", *counts.keys()
    ]).withColumn("processed_time", F.current_timestamp())  # fmt: skip
    ctx.appender.append(row.select(*_ops_columns()), ctx.uri("ops.ingest_batches"), batch_id)
    batches.record_silver_batch(ctx.region.name, counts, quarantine, vitals)
    return counts


def _check(
    spark: SparkSession, checks: gate.Checks, messages: DataFrame, measurements: DataFrame, batch_id: int
) -> DataFrame:
    """Run the bronze ingestion-health and silver.vitals suites on the batch (both persisted already), record
    the results, raise if a blocking check failed (nothing of the batch is written then), and return the
    measurements with quarantine failures rejected (reason: the check's name)."""
    health = checks.check("bronze.telemetry", messages)
    vitals = checks.check("silver.vitals", silver.to_silver_vitals(measurements))
    run_id = f"{QUERY}:{checks.region}:{batch_id}"
    gate.publish(spark, [health, vitals], checks, run_id, f"stream batch {batch_id}", batch_id)
    reason = vitals.quarantine_reason()
    if reason is None:
        return measurements
    return gate.with_quarantine_reason(measurements, reason).localCheckpoint(eager=True)


def _ops_columns() -> list[str]:
    from lakehouse.tables import INGEST_BATCHES_SCHEMA

    return [f.name for f in INGEST_BATCHES_SCHEMA]


def start_silver(spark: SparkSession, cfg: Config, region: RegionConfig, once: bool) -> StreamingQuery:
    """Start the silver stream over bronze (availableNow when ``once``, else a processing-time trigger)."""
    checkpoint = tables.checkpoint_uri(region, QUERY)
    ctx = context(cfg, region, delta.BatchAppender.for_checkpoint(spark, checkpoint, QUERY))
    # bounded batches: a backlog (silver stopped while bronze went on) is caught up in batches the heap holds
    source = delta.read_stream(spark, uri(region, "bronze.telemetry"), cfg.pipeline.silver_max_mib_per_trigger)

    def each(df: DataFrame, batch_id: int) -> None:
        process_batch(spark, df, batch_id, ctx)

    writer = (
        source.writeStream.foreachBatch(each)
        .option("checkpointLocation", checkpoint)
        .queryName(f"silver_vitals_{region.name}")
    )
    return streaming.start(writer, cfg, once, interval_s=cfg.pipeline.silver_trigger_interval_s)
