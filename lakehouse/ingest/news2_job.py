"""The real-time early-warning query: Kafka telemetry -> per-patient state -> gold.news2 and alerts.news2.

It reads the telemetry topic directly (no Delta hop before an alert), validates and normalizes each
message with the same transforms as silver (only accepted measurements count), keeps one
:class:`~lakehouse.clinical.early_warning.PatientState` per patient in Spark's state store
(``applyInPandasWithState`` over buckets of patients, :class:`Bucket`), publishes each alert event (open,
close) to the Kafka topic ``alerts.news2`` from the state function the moment it is decided (before the
micro-batch ends, for latency), and per micro-batch appends the final observations to ``gold.news2``
(idempotent: ``delta.BatchAppender``). The state and the alert topic
(for clinical systems, which must find the patient) use the raw patient reference; ``gold.news2`` gets the
patient's pseudonym (:mod:`lakehouse.security.pseudonyms`).

``gold.alerts`` is then MERGEd from the alert topic by :mod:`lakehouse.ingest.alerts_job`. Exactly once:
the Kafka source is replayable, the state store and the append are versioned by the batch id, and the
state function only reads the batch's processing time (constant when a batch is retried), so a retried
batch computes the same rows. Alert publishing is at least once; consumers dedupe on alert_id + status.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import InheritableThread
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from lakehouse.clinical.early_warning import Measurement, PatientState
from lakehouse.config import Config, KafkaConfig, RegionConfig
from lakehouse.ingest import silver
from lakehouse.ingest.bronze import to_bronze
from lakehouse.ingest.contract import load_catalogue, load_dialects
from lakehouse.ingest.gold import ALERTS_SCHEMA, NEWS2_SCHEMA
from lakehouse.io import checkpoints, delta, kafka, streaming, tables
from lakehouse.observability import metrics
from lakehouse.quality import gate
from lakehouse.quality.suites import Severity
from lakehouse.security import kafka_auth, pseudonyms
from lakehouse.tables import uri

QUERY = "gold.news2"

# One state-store row per bucket of patients (a hash of the patient reference picks the bucket): the state function
# then runs once per bucket with data, not once per patient, so a micro-batch costs per measurement whether the
# fleet is 1k or 100k devices. A bucket keeps each patient's PatientState as JSON, parsed only when the patient
# has data (or a pending observation falls due).
STATE_SCHEMA = T.StructType(
    [
        # JSON objects (pyspark 4.2's Python worker cannot read a state schema with a MapType):
        T.StructField("patients", T.StringType(), False),  # patient -> its PatientState JSON
        T.StructField("pending", T.StringType(), False),  # patient -> processing time (ms) its observation is pending
        T.StructField("seen", T.StringType(), False),  # patient -> processing time (ms) of its latest measurement
    ]
)
STATE_LAYOUT = 3  # 1: a row per patient, 2: buckets, 3: buckets with each patient's latest time (for the TTL)

# The state function's rows: kind 'observation' (a gold.news2 row) or 'alert' (a gold.alerts event);
# the columns of both tables, all nullable (each kind fills its own).
_ALERT_ONLY = [f for f in ALERTS_SCHEMA if f.name not in {g.name for g in NEWS2_SCHEMA}]
OUTPUT_SCHEMA = T.StructType(
    [T.StructField("kind", T.StringType(), False)]
    + [T.StructField(f.name, f.dataType, True) for f in (*NEWS2_SCHEMA, *_ALERT_ONLY)]
)
_COLUMNS = OUTPUT_SCHEMA.fieldNames()
_TIMESTAMPS = frozenset(f.name for f in OUTPUT_SCHEMA if isinstance(f.dataType, T.TimestampType))
_MANY_TIMESTAMPS = 256  # from this many rows on, _frame converts timestamps with pandas


@dataclass(frozen=True)
class StateRules:
    """How the state function turns measurements into observations (from ``pipeline`` config)."""

    hold_ms: int  # 0: every observation is final at the end of its micro-batch (catch-up runs)
    carry_forward_s: int
    buckets: int = 1024  # pipeline.news2_state_buckets
    alerts_to: tuple[KafkaConfig, str] | None = None  # (Kafka, topic): publish alerts as they are decided
    # alert ids keyed under this (the patient key): the plain id hashes the raw patient reference with the level
    # and time gold.alerts shows beside it, so trying a hospital's patient numbers would re-identify the row
    id_key: bytes | None = None
    ttl_ms: int = 0  # pipeline.news2_state_ttl_s: a patient without data this long leaves the state (0: never)


_PRODUCERS: dict[KafkaConfig, Any] = {}


def _producer(target: KafkaConfig) -> Any:
    """One idempotent, acks=all Kafka producer per Python worker process (workers are reused); in secure mode as
    the pipeline user (its password read from the secret file here, never shipped in the task)."""
    if target not in _PRODUCERS:
        from kafka import KafkaProducer

        _PRODUCERS[target] = KafkaProducer(
            bootstrap_servers=target.bootstrap, client_id="lakehouse-alerts", acks="all", enable_idempotence=True,
            linger_ms=0, **kafka_auth.client_kwargs(target, kafka_auth.PIPELINE),
        )  # fmt: skip
    return _PRODUCERS[target]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds") + "Z"  # naive UTC
    if isinstance(value, date):
        return value.isoformat()
    return value


def alert_message(event: dict[str, Any], published: datetime) -> bytes:
    """An alert event as the JSON the ``alerts.news2`` topic carries (gold.alerts columns + published_time)."""
    body = {f.name: _json_value(event.get(f.name)) for f in ALERTS_SCHEMA}
    body["published_time"] = _json_value(published)
    return json.dumps(body, separators=(",", ":")).encode()


def send_alerts(events: list[dict[str, Any]], target: KafkaConfig, topic: str) -> None:
    """Publish alert events to Kafka now and wait for the acks (at least once: a retried batch resends)."""
    producer = _producer(target)
    published = datetime.now(UTC).replace(tzinfo=None)
    for event in events:
        producer.send(topic, key=str(event["patient_ref"]).encode(), value=alert_message(event, published))
    producer.flush()


def to_measurements(records: DataFrame, registry: DataFrame, cfg: Config) -> DataFrame:
    """Kafka records -> accepted measurements (patient_ref, event_time, vital, value, ward), as in silver."""
    catalogue = load_catalogue()
    messages = silver.parse_bronze(
        to_bronze(records),
        load_dialects(catalogue=catalogue),
        cfg.pipeline.future_tolerance_s,
        cfg.pipeline.max_event_age_s,
    ).filter(F.col("reason").isNull())
    measurements = silver.explode_measurements(messages, catalogue).filter(F.col("reason").isNull())
    return silver.with_registry(measurements, registry).select("patient_ref", "event_time", "vital", "value", "ward")


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Output rows -> the state function's frame: timestamps as datetime64[ns], everything else as objects.

    Built column by column: it runs once per bucket with data and micro-batch, on a few rows or on thousands.
    Timestamps: numpy converts a few datetimes fastest (``pd.to_datetime`` costs ~0.35 ms per call), pandas
    many (~12x faster than numpy at 20,000)."""
    data: dict[str, np.ndarray[Any, Any]] = {}
    for name in _COLUMNS:
        if name in _TIMESTAMPS:
            values = [r.get(name) for r in rows]  # None -> NaT
            if len(values) < _MANY_TIMESTAMPS:
                data[name] = np.array(values, dtype="datetime64[ns]")
            else:
                data[name] = pd.to_datetime(values).to_numpy(dtype="datetime64[ns]")
        else:
            column = np.empty(len(rows), dtype=object)  # element by element: a list value stays one cell
            for i, r in enumerate(rows):
                column[i] = r.get(name)
            data[name] = column
    return pd.DataFrame(data, copy=False)


def _measurements(frames: Iterator[pd.DataFrame]) -> dict[str, list[Measurement]]:
    """A bucket's rows of the micro-batch -> each patient's measurements (in arrival order)."""
    by_patient: dict[str, list[Measurement]] = {}
    for frame in frames:
        times = (frame["event_time"].to_numpy(dtype="datetime64[us]").astype("int64")).tolist()
        wards = [None if pd.isna(w) else str(w) for w in frame["ward"].tolist()]
        for p, t, v, x, w in zip(
            frame["patient_ref"].tolist(), times, frame["vital"].tolist(), frame["value"].tolist(), wards, strict=True
        ):
            by_patient.setdefault(str(p), []).append(Measurement(t, str(v), float(x), w))
    return by_patient


@dataclass
class Bucket:
    """One state-store row: the state of the patients whose reference hashes to it."""

    patients: dict[str, str]  # patient -> PatientState JSON
    pending: dict[str, int]  # patient -> processing time (ms) since its latest observation is pending (hold > 0)
    seen: dict[str, int] = field(default_factory=dict)  # patient -> processing time (ms) of its latest data

    def advance(
        self, by_patient: dict[str, list[Measurement]], now_ms: int, rules: StateRules
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Take the bucket's measurements of a micro-batch (none on a timeout) at processing time ``now_ms``;
        return (final observations, alert events). With a hold time, a pending observation becomes final
        ``hold_ms`` after the last micro-batch that brought its patient data, as it would with one row per patient.
        A patient without data for ``rules.ttl_ms`` leaves the bucket (:meth:`expire`)."""
        now_us = now_ms * 1000
        final: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for patient, measurements in by_patient.items():
            self.seen[patient] = now_ms
            stored = self.patients.get(patient)
            current = PatientState.from_json(stored) if stored is not None else PatientState()
            observations, alerts = current.step(patient, measurements, now_us, rules.carry_forward_s)
            final += observations
            events += alerts
            if rules.hold_ms == 0:
                final += current.finish(patient, now_us, rules.carry_forward_s)
            elif current.pending_us is not None:
                self.pending[patient] = now_ms
            self.patients[patient] = current.to_json()
        if rules.hold_ms:
            for patient, since in list(self.pending.items()):
                if patient not in by_patient and since + rules.hold_ms <= now_ms:
                    current = PatientState.from_json(self.patients[patient])
                    final += current.finish(patient, now_us, rules.carry_forward_s)
                    self.patients[patient] = current.to_json()
                    del self.pending[patient]
        if rules.ttl_ms:
            self.expire(now_ms, rules, final, events)
        return final, events

    def expire(self, now_ms: int, rules: StateRules, final: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        """Drop the patients without data for ``rules.ttl_ms`` (a pending observation becomes final, an open alert
        closes: both added to ``final`` and ``events``). The TTL exceeds silver's oldest accepted event age, so a
        measurement of theirs that comes later is newer than any observation they had: no time is scored twice.
        A bucket sweeps when the query calls it (data of any of its patients, or a hold timeout)."""
        now_us = now_ms * 1000
        for patient, at in list(self.seen.items()):
            if now_ms - at < rules.ttl_ms:
                continue
            current = PatientState.from_json(self.patients.pop(patient))
            final += current.finish(patient, now_us, rules.carry_forward_s)
            events += current.expire(now_us)
            del self.seen[patient]
            self.pending.pop(patient, None)

    def next_timeout_ms(self, now_ms: int, hold_ms: int) -> int | None:
        """Milliseconds until the earliest pending observation falls due (None: nothing pending)."""
        if not hold_ms or not self.pending:
            return None
        return max(1, min(self.pending.values()) + hold_ms - now_ms)


def state_function(rules: StateRules) -> Any:
    """The ``applyInPandasWithState`` function: one bucket's measurements of a micro-batch -> output rows."""

    def step(key: tuple[Any, ...], batches: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        now_ms = state.getCurrentProcessingTimeMs()
        if state.exists:
            patients, pending, seen = state.get
            bucket = Bucket(json.loads(patients), json.loads(pending), json.loads(seen))
        else:
            bucket = Bucket({}, {}, {})
        by_patient = {} if state.hasTimedOut else _measurements(batches)
        final, events = bucket.advance(by_patient, now_ms, rules)
        if rules.id_key is not None:  # the same for an alert's open and close: both carry the stored id
            events = [{**e, "alert_id": pseudonyms.keyed_id(e["alert_id"], rules.id_key)} for e in events]
        if events and rules.alerts_to is not None:
            send_alerts(events, *rules.alerts_to)
        state.update((json.dumps(bucket.patients), json.dumps(bucket.pending), json.dumps(bucket.seen)))
        timeout = bucket.next_timeout_ms(now_ms, rules.hold_ms)
        if timeout is not None:
            state.setTimeoutDuration(timeout)
        rows = [{"kind": "observation", **r} for r in final] + [{"kind": "alert", **e} for e in events]
        if rows:
            yield _frame(rows)

    return step


@dataclass(frozen=True)
class BatchPhases:
    """Where one micro-batch of the real-time query spent its ``foreachBatch`` time, in seconds."""

    batch_id: int
    observations: int
    alerts: int
    # Kafka fetch, parse, the state function (alerts published here), the state store commit, the rows to the
    # driver; there the batch's rows by kind and alert episodes (for the metrics)
    compute_s: float
    checks_s: float  # the gold.news2 suite (on the driver)
    append_s: float  # the gold.news2 append, beside the suite's dq.results commit


ONE_FILE_MAX_ROWS = 20_000  # a batch of at most this many observations is appended as one file
RECENT_BATCHES: deque[BatchPhases] = deque(maxlen=2000)  # this process's latest batches (`bench latency` reads them)


def side_by_side(first: Callable[[], object], second: Callable[[], object]) -> None:
    """Run ``first`` in a thread (which inherits this one's Spark scheduler pool) while ``second`` runs here; return
    when both are done, raising the first error of either."""
    errors: list[Exception] = []

    def run() -> None:
        try:
            first()
        except Exception as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(exc)

    thread = InheritableThread(target=run, name="news2-side-commit")
    thread.start()
    try:
        second()
    finally:
        thread.join()
    if errors:
        raise errors[0]


def _tally(rows: pa.Table) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Rows of a batch by kind, and its alert events as (level, opened|closed) counts."""
    kinds: dict[str, int] = {}
    episodes: dict[tuple[str, str], int] = {}
    counts = rows.group_by(["kind", "status", "level"]).aggregate([([], "count_all")]).to_pylist()
    for r in counts:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + int(r["count_all"])
        status = {"open": "opened", "closed": "closed"}.get(r["status"]) if r["kind"] == "alert" else None
        if status is not None:
            key = (str(r["level"]), status)
            episodes[key] = episodes.get(key, 0) + int(r["count_all"])
    return kinds, episodes


def observations_of(spark: SparkSession, rows: pa.Table) -> DataFrame:
    """The observation rows of a batch brought to the driver, as a DataFrame over them (a local relation: Spark
    evaluates filters and projections of it on the driver, without a job)."""
    schema = T.StructType([OUTPUT_SCHEMA[f.name] for f in NEWS2_SCHEMA])  # nullable, as the state function's rows
    observations = rows.filter(pc.equal(rows["kind"], "observation")).select(schema.fieldNames())
    return spark.createDataFrame(observations, schema)


def early_warning(measurements: DataFrame, rules: StateRules) -> DataFrame:
    """Accepted measurements (streaming) -> observation and alert rows, patients' state in the state store (in
    ``rules.buckets`` rows)."""
    bucket = F.pmod(F.xxhash64("patient_ref"), F.lit(rules.buckets)).cast("int")
    return (
        measurements.withColumn("state_bucket", bucket)
        .groupBy("state_bucket")
        .applyInPandasWithState(
            state_function(rules),
            outputStructType=OUTPUT_SCHEMA,
            stateStructType=STATE_SCHEMA,
            outputMode="append",
            # no timeout in catch-up runs (hold 0): with one, availableNow would run no-data batches forever
            timeoutConf=GroupStateTimeout.ProcessingTimeTimeout if rules.hold_ms else GroupStateTimeout.NoTimeout,
        )
    )


def start_news2(spark: SparkSession, cfg: Config, region: RegionConfig, once: bool) -> StreamingQuery:
    """Start the real-time query (availableNow when ``once``: then observations are final per batch)."""
    checkpoint = tables.checkpoint_uri(region, QUERY)
    appender = delta.BatchAppender.for_checkpoint(spark, checkpoint, QUERY)
    checkpoints.require_state_layout(spark, checkpoint, QUERY, STATE_LAYOUT)
    checkpoints.require_setting(spark, checkpoint, "pipeline.news2_state_buckets", cfg.pipeline.news2_state_buckets)
    patient_key = pseudonyms.patient_key(cfg)
    # catch-up runs never hold: a timeout would make availableNow run no-data batches forever
    rules = StateRules(
        0 if once else cfg.pipeline.news2_hold_ms,
        cfg.pipeline.news2_carry_forward_s,
        cfg.pipeline.news2_state_buckets,
        (region.kafka, cfg.topics.alerts),
        patient_key,
        cfg.pipeline.news2_state_ttl_s * 1000,
    )
    records = kafka.read_kafka(
        spark,
        region,
        cfg.topics.telemetry,
        streaming=True,
        # bounded on its own: each batch's rows come to the driver (one observation per message at most)
        max_offsets_per_trigger=cfg.pipeline.realtime_max_offsets_per_trigger,
    )
    registry = spark.read.format("delta").load(uri(region, "silver.device_registry"))
    rows = early_warning(to_measurements(records, registry, cfg), rules)
    news2_uri = uri(region, "gold.news2")
    checks = gate.load_checks(cfg, region, ("gold.news2",), appender)

    def each(batch: DataFrame, batch_id: int) -> None:
        # one job computes the batch (the state store commits once) and brings it to the driver, as Arrow: a
        # batch is tens of rows a second (a catch-up one up to realtime_max_offsets_per_trigger messages' worth); the
        # tally, the checks and the append's plan then work on it there, without another pass over the query
        t0 = time.monotonic()
        rows = batch.toArrow()
        kinds, episodes = _tally(rows)  # rows by kind, alert events by level and status
        if episodes:  # already on Kafka: the state function published them as it decided them
            metrics.record_alerts(region.name, episodes)
        t2 = t3 = time.monotonic()
        if kinds.get("observation"):
            observations = pseudonyms.pseudonymize(observations_of(spark, rows), patient_key)
            # a live batch's tens of rows as one file (one task, one HDFS file), not one per core
            one_file = observations.coalesce(1) if kinds["observation"] <= ONE_FILE_MAX_ROWS else observations
            append = lambda: appender.append(one_file, news2_uri, batch_id)
            if checks is None:
                t3 = time.monotonic()
                append()
            else:
                outcome = checks.check("gold.news2", observations, kinds["observation"])  # small: on the driver
                publish = lambda: gate.publish(
                    spark, [outcome], checks, f"{QUERY}:{region.name}:{batch_id}", f"stream batch {batch_id}", batch_id
                )
                t3 = time.monotonic()
                if outcome.failed(Severity.BLOCK):
                    publish()  # records the results, then raises: nothing of the batch written, retried on restart
                side_by_side(publish, append)  # two commits to two tables; the batch ends when both have landed
        RECENT_BATCHES.append(
            BatchPhases(batch_id, kinds.get("observation", 0), kinds.get("alert", 0), t2 - t0, t3 - t2,
                        time.monotonic() - t3)
        )  # fmt: skip

    writer = (
        rows.writeStream.foreachBatch(each)
        .outputMode("append")
        .option("checkpointLocation", checkpoint)
        .queryName(f"gold_news2_{region.name}")
    )
    with streaming.in_pool(spark, "realtime"):
        if once:
            return writer.trigger(availableNow=True).start()
        return writer.trigger(processingTime=f"{cfg.pipeline.realtime_trigger_ms} milliseconds").start()
