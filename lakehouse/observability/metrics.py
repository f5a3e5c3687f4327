"""Every metric the project exports, in one registry, with the functions that set them.

Names follow Prometheus conventions (``lakehouse_`` prefix, base units, ``_total`` for counters). The
registry is the project's own (no process metrics), so a batch job pushes exactly these to the
Pushgateway and a long-running job serves exactly these on ``/metrics``.

Producers that exist today: streaming queries (the listener), silver batches (quarantine by reason,
message outcomes, NEWS2 alerts per level, measurements per ward), the lakehouse exporter (replication
lag, Kafka end offsets; its own registry). Model and Airflow metrics are defined here with their setters; the ML and
DAG code that will call them has not landed yet.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

# --------------------------------------------------------------------------- streaming queries (listener)
STREAM = ("region", "query")
STREAM_INPUT_RATE = Gauge(
    "lakehouse_stream_input_rows_per_second",
    "Rows/s arriving at the query in its last batch",
    STREAM,
    registry=REGISTRY,
)
STREAM_PROCESSED_RATE = Gauge(
    "lakehouse_stream_processed_rows_per_second", "Rows/s the query processed in its last batch", STREAM,
    registry=REGISTRY,
)  # fmt: skip
STREAM_BATCH_SECONDS = Gauge(
    "lakehouse_stream_batch_duration_seconds", "Wall time of the query's last micro-batch", STREAM, registry=REGISTRY
)
STREAM_ROWS = Counter("lakehouse_stream_input_rows", "Rows read by the query", STREAM, registry=REGISTRY)
STREAM_BATCHES = Counter("lakehouse_stream_batches", "Micro-batches completed by the query", STREAM, registry=REGISTRY)
STREAM_OFFSETS_BEHIND = Gauge(
    "lakehouse_stream_offsets_behind_latest",
    "Kafka records between the query's consumed offsets and the latest offsets (max over partitions)",
    STREAM, registry=REGISTRY,
)  # fmt: skip
STREAM_WATERMARK_DELAY = Gauge(
    "lakehouse_stream_watermark_delay_seconds", "Batch time minus the query's event-time watermark", STREAM,
    registry=REGISTRY,
)  # fmt: skip
STREAM_STATE_ROWS = Gauge(
    "lakehouse_stream_state_rows", "Rows held in the query's state stores", STREAM, registry=REGISTRY
)
STREAM_DROPPED = Counter(
    "lakehouse_stream_late_rows_dropped", "Rows dropped by the query's watermark", STREAM, registry=REGISTRY
)
STREAM_LAST_PROGRESS = Gauge(
    "lakehouse_stream_last_progress_timestamp_seconds", "When the query last reported progress", STREAM,
    registry=REGISTRY,
)  # fmt: skip
STREAM_ACTIVE = Gauge(
    "lakehouse_stream_active", "1 while the query runs, 0 once it has terminated", STREAM, registry=REGISTRY
)
STREAM_FAILED = Counter(
    "lakehouse_stream_failures", "Queries that terminated with an exception", STREAM, registry=REGISTRY
)

# --------------------------------------------------------------------------- silver batches: data quality, NEWS2
MESSAGES = Counter(
    "lakehouse_silver_messages", "Bronze records classified by silver, by outcome (accepted/quarantined/duplicate)",
    ("region", "outcome"), registry=REGISTRY,
)  # fmt: skip
QUARANTINE = Counter(
    "lakehouse_quarantine_records", "Records quarantined by silver, by reason and level (message/measurement)",
    ("region", "reason", "level"), registry=REGISTRY,
)  # fmt: skip
DQ_FAILURES = Counter(
    "lakehouse_dq_failures", "Failed data-quality checks (expectations), by table and check",
    ("region", "table", "check"), registry=REGISTRY,
)  # fmt: skip
NEWS2_ALERTS = Counter(
    "lakehouse_news2_alerts", "NEWS2 alert episodes opened or closed, by level", ("region", "level", "status"),
    registry=REGISTRY,
)  # fmt: skip
WARD_MEASUREMENTS = Counter(
    "lakehouse_ward_measurements", "Accepted measurements per ward", ("region", "ward"), registry=REGISTRY
)
WARD_LAST_SEEN = Gauge(
    "lakehouse_ward_last_measurement_timestamp_seconds", "When a ward's devices last delivered an accepted measurement",
    ("region", "ward"), registry=REGISTRY,
)  # fmt: skip

# --------------------------------------------------------------------------- jobs (pushed by batch runs)
JOB_LAST_SUCCESS = Gauge(
    "lakehouse_job_last_success_timestamp_seconds", "When the job last finished successfully", ("job", "region"),
    registry=REGISTRY,
)  # fmt: skip
JOB_DURATION = Gauge(
    "lakehouse_job_duration_seconds", "Wall time of the job's last run", ("job", "region"), registry=REGISTRY
)

# DR replication lag, table versions and Kafka end offsets are computed at scrape time by the lakehouse
# exporter (lakehouse.observability.exporter.LakehouseCollector), not set here.

# --------------------------------------------------------------------------- models (lakehouse/ml and jobs/train.py push them)
MODEL_CHAMPION = Gauge(
    "lakehouse_model_champion_version", "Registered version of the model's current champion", ("model",),
    registry=REGISTRY,
)  # fmt: skip
MODEL_AUROC = Gauge("lakehouse_model_auroc", "AUROC of the last evaluation", ("model", "version"), registry=REGISTRY)
MODEL_UTILITY = Gauge(
    "lakehouse_model_utility", "Normalised utility (PhysioNet 2019) of the last evaluation", ("model", "version"),
    registry=REGISTRY,
)  # fmt: skip
MODEL_AUROC_FLOOR = Gauge(
    "lakehouse_model_auroc_floor", "The AUROC below which the model must not serve", ("model",), registry=REGISTRY
)
MODEL_DRIFT = Gauge(
    "lakehouse_model_drift_index", "Population stability index of a feature, serving vs training", ("model", "feature"),
    registry=REGISTRY,
)  # fmt: skip
MODEL_SCORES = Counter("lakehouse_model_scores", "Predictions served", ("model",), registry=REGISTRY)
MODEL_ALERTS = Counter("lakehouse_model_alerts", "Model alerts raised (score above threshold)", ("model",),
                       registry=REGISTRY)  # fmt: skip

# Airflow DAG runs: computed at scrape time by the lakehouse exporter from Airflow's REST API, not set here.

MESSAGE_OUTCOMES = {"messages_accepted": "accepted", "messages_quarantined": "quarantined",
                    "messages_duplicate": "duplicate"}  # fmt: skip


ALERT_LEVELS = ("high", "medium", "single_parameter")


def record_silver_counts(region: str, counts: Mapping[str, int]) -> None:
    """Count one silver batch's message outcomes (the dict ``process_batch`` returns); every outcome and
    NEWS2 alert level/status series exists from the first batch on, at 0 until it happens."""
    for key, outcome in MESSAGE_OUTCOMES.items():
        MESSAGES.labels(region, outcome).inc(counts.get(key, 0))
    for level in ALERT_LEVELS:
        for status in ("opened", "closed"):
            NEWS2_ALERTS.labels(region, level, status)


def record_quarantine(region: str, by_reason: Mapping[tuple[str, str], int]) -> None:
    """Count quarantined records by ``(reason, level)``."""
    for (reason, level), n in by_reason.items():
        if n:
            QUARANTINE.labels(region, reason, level).inc(n)


def record_alerts(region: str, by_level: Mapping[tuple[str, str], int]) -> None:
    """Count NEWS2 alert episodes by ``(level, status)`` (status: opened/closed)."""
    for (level, status), n in by_level.items():
        NEWS2_ALERTS.labels(region, level, status).inc(n)


def record_wards(region: str, by_ward: Mapping[str, int], now: float | None = None) -> None:
    """Count accepted measurements per ward and stamp when each ward was last heard from."""
    stamp = time.time() if now is None else now
    for ward, n in by_ward.items():
        WARD_MEASUREMENTS.labels(region, ward).inc(n)
        WARD_LAST_SEEN.labels(region, ward).set(stamp)


def record_dq_failure(region: str, table: str, check: str, n: int = 1) -> None:
    """Count failed data-quality checks (for the expectations facade)."""
    DQ_FAILURES.labels(region, table, check).inc(n)


def record_job(job: str, region: str, seconds: float) -> None:
    """Stamp a successful batch job run and its duration."""
    JOB_LAST_SUCCESS.labels(job, region).set(time.time())
    JOB_DURATION.labels(job, region).set(seconds)


def record_model_evaluation(model: str, version: str, auroc: float, utility: float, auroc_floor: float) -> None:
    """The last evaluation of a model version (to be called by the ML evaluation job)."""
    MODEL_AUROC.labels(model, version).set(auroc)
    MODEL_UTILITY.labels(model, version).set(utility)
    MODEL_AUROC_FLOOR.labels(model).set(auroc_floor)


def record_champion(model: str, version: int) -> None:
    """The model version currently promoted to champion."""
    MODEL_CHAMPION.labels(model).set(version)


def record_drift(model: str, by_feature: Mapping[str, float]) -> None:
    """Drift index (PSI) per feature, serving data against the training reference."""
    for feature, value in by_feature.items():
        MODEL_DRIFT.labels(model, feature).set(value)


def record_scoring(model: str, scores: int, alerts: int) -> None:
    """Predictions served and alerts raised by a scoring batch."""
    MODEL_SCORES.labels(model).inc(scores)
    MODEL_ALERTS.labels(model).inc(alerts)
