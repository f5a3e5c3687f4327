"""The gold window streams: silver.vitals -> gold.vitals_minute and gold.vitals_hourly.

Event-time windows with a watermark, emitted in update mode and MERGEd by key, so a window's row is
refined while late data (within the watermark) arrives and a retried micro-batch rewrites the same rows.
Each batch is checked with the table's suite (conf/quality) before the MERGE; a blocking failure stops the
query before anything is written. Late data policy: a measurement later than the watermark (``pipeline.minute_watermark_s`` /
``hourly_watermark_s``) is left out of that window's aggregate; it stays in silver.vitals and gold.news2.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from lakehouse.config import Config, RegionConfig
from lakehouse.ingest import gold
from lakehouse.io import delta, streaming, tables
from lakehouse.quality import gate
from lakehouse.tables import uri

KEYS = ["patient_ref", "vital", "window_start"]
WINDOWS = {"gold.vitals_minute": "1 minute", "gold.vitals_hourly": "1 hour"}


def start_window_stream(
    spark: SparkSession, cfg: Config, region: RegionConfig, table: str, once: bool
) -> StreamingQuery:
    """Start one windowed aggregate stream (``table`` is gold.vitals_minute or gold.vitals_hourly)."""
    watermark = cfg.pipeline.minute_watermark_s if table == "gold.vitals_minute" else cfg.pipeline.hourly_watermark_s
    target = uri(region, table)
    checkpoint = tables.checkpoint_uri(region, table)
    appender = delta.BatchAppender.for_checkpoint(spark, checkpoint, table)
    checks = gate.load_checks(cfg, region, (table,), appender)  # MERGE is idempotent; dq.results needs the marker

    def upsert(batch: DataFrame, batch_id: int) -> None:
        if batch.isEmpty():  # no-data batches only advance the watermark: nothing to MERGE
            return
        if checks is None:
            delta.merge_upsert(spark, target, batch, KEYS)
            return
        rows = batch.persist()
        try:  # a blocking failure raises before the MERGE: the batch is not promoted and retried on restart
            outcome = checks.check(table, rows)
            run_id = f"{table}:{region.name}:{batch_id}"
            gate.publish(spark, [outcome], checks, run_id, f"stream batch {batch_id}", batch_id)
            delta.merge_upsert(spark, target, rows, KEYS)
        finally:
            rows.unpersist()

    source = delta.read_stream(spark, uri(region, "silver.vitals"))
    writer = (
        gold.windowed_vitals(source, WINDOWS[table], watermark)
        .writeStream.outputMode("update")
        .foreachBatch(upsert)
        .option("checkpointLocation", checkpoint)
        .queryName(f"{table.replace('.', '_')}_{region.name}")
    )
    return streaming.start(writer, cfg, once, interval_s=cfg.pipeline.merge_trigger_interval_s)
