"""Starting a streaming query with the pipeline's trigger: availableNow for a catch-up pass, else processing time."""

from __future__ import annotations

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
