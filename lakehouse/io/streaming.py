"""Starting a streaming query with the pipeline's trigger: availableNow for a catch-up pass, else processing time."""

from __future__ import annotations

from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from lakehouse.config import Config


def start(writer: DataStreamWriter, cfg: Config, once: bool, path: str | None = None) -> StreamingQuery:
    """Start ``writer``: drain what is available and stop (``once``), or run on ``pipeline.trigger_interval_s``."""
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{cfg.pipeline.trigger_interval_s} seconds")
    return writer.start(path) if path else writer.start()
