"""Starting a streaming query with the pipeline's trigger: availableNow for a catch-up pass, else processing time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from lakehouse.config import Config


def start(
    writer: DataStreamWriter, cfg: Config, once: bool, path: str | None = None, interval_s: float | None = None
) -> StreamingQuery:
    """Start ``writer``: drain what is available and stop (``once``), or run on a processing-time trigger of
    ``interval_s`` (default ``pipeline.trigger_interval_s``)."""
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        seconds = cfg.pipeline.trigger_interval_s if interval_s is None else interval_s
        writer = writer.trigger(processingTime=f"{seconds} seconds")
    return writer.start(path) if path else writer.start()


@contextmanager
def in_pool(spark: SparkSession, pool: str) -> Iterator[None]:
    """Queries started inside run their jobs in the FAIR scheduler pool ``pool`` (conf/spark/fairscheduler.xml)."""
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool)
    try:
        yield
    finally:
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]
