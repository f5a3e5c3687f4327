"""A streaming query listener that turns every query progress event into metrics and a JSON log line."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from lakehouse.observability import metrics as m

log = logging.getLogger("lakehouse.stream")


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def query_label(name: str | None, region: str) -> str:
    """The query's name without its region suffix (``silver_vitals_asia`` -> ``silver_vitals``)."""
    label = name or "unnamed"
    return label.removesuffix(f"_{region}")


def offsets_behind(progress: dict[str, Any]) -> float | None:
    """Max records behind the latest Kafka offsets over the query's Kafka sources (None: no Kafka source)."""
    values = [
        float(src["metrics"]["maxOffsetsBehindLatest"])
        for src in progress.get("sources", [])
        if "maxOffsetsBehindLatest" in (src.get("metrics") or {})
    ]
    return max(values) if values else None


def record_progress(region: str, progress: dict[str, Any]) -> None:
    """Set the metrics of one query progress event (the parsed ``StreamingQueryProgress.json``)."""
    q = (region, query_label(progress.get("name"), region))
    rows = int(progress.get("numInputRows", 0))
    m.STREAM_INPUT_RATE.labels(*q).set(float(progress.get("inputRowsPerSecond") or 0.0))
    m.STREAM_PROCESSED_RATE.labels(*q).set(float(progress.get("processedRowsPerSecond") or 0.0))
    m.STREAM_BATCH_SECONDS.labels(*q).set(float(progress.get("batchDuration", 0)) / 1000.0)
    m.STREAM_ROWS.labels(*q).inc(rows)
    m.STREAM_BATCHES.labels(*q).inc()
    m.STREAM_ACTIVE.labels(*q).set(1)
    stamp = _seconds(progress["timestamp"])
    m.STREAM_LAST_PROGRESS.labels(*q).set(stamp)
    behind = offsets_behind(progress)
    if behind is not None:
        m.STREAM_OFFSETS_BEHIND.labels(*q).set(behind)
    watermark = (progress.get("eventTime") or {}).get("watermark")
    if watermark and _seconds(watermark) > 0:  # epoch 0: no event seen yet, no watermark
        m.STREAM_WATERMARK_DELAY.labels(*q).set(max(0.0, stamp - _seconds(watermark)))
    operators = progress.get("stateOperators") or []
    if operators:
        m.STREAM_STATE_ROWS.labels(*q).set(sum(int(op.get("numRowsTotal", 0)) for op in operators))
        m.STREAM_DROPPED.labels(*q).inc(sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in operators))


class MetricsListener(StreamingQueryListener):
    """Registered once per SparkSession: metrics and a log line per micro-batch of every query."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.names: dict[str, str] = {}

    def onQueryStarted(self, event: Any) -> None:
        label = query_label(event.name, self.region)
        self.names[str(event.id)] = label
        m.STREAM_ACTIVE.labels(self.region, label).set(1)
        log.info("query started", extra={"query": label, "query_id": str(event.id), "run_id": str(event.runId)})

    def onQueryProgress(self, event: Any) -> None:
        progress = json.loads(event.progress.json)
        record_progress(self.region, progress)
        log.info(
            "batch done",
            extra={
                "query": query_label(progress.get("name"), self.region), "query_id": progress.get("id"),
                "batch_id": progress.get("batchId"), "rows": progress.get("numInputRows"),
                "duration_s": float(progress.get("batchDuration", 0)) / 1000.0,
            },
        )  # fmt: skip

    def onQueryIdle(self, event: Any) -> None:
        label = self.names.get(str(event.id))
        if label is not None:
            m.STREAM_LAST_PROGRESS.labels(self.region, label).set(_seconds(event.timestamp))

    def onQueryTerminated(self, event: Any) -> None:
        label = self.names.get(str(event.id), "unnamed")
        m.STREAM_ACTIVE.labels(self.region, label).set(0)
        if event.exception:
            m.STREAM_FAILED.labels(self.region, label).inc()
            first = str(event.exception).strip().splitlines()[0] if str(event.exception).strip() else "unknown"
            log.error(f"query failed: {first}", extra={"query": label, "query_id": str(event.id), "error": first})
        else:
            log.info("query stopped", extra={"query": label, "query_id": str(event.id)})


_INSTALLED: dict[int, MetricsListener] = {}


def install(spark: SparkSession, region: str) -> MetricsListener:
    """Register the metrics listener on ``spark`` once (idempotent per session and region)."""
    key = id(spark)
    current = _INSTALLED.get(key)
    if current is not None and current.region == region:
        return current
    if current is not None:
        spark.streams.removeListener(current)
    listener = MetricsListener(region)
    spark.streams.addListener(listener)
    _INSTALLED[key] = listener
    return listener
