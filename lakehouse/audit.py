"""``ops.audit_log``: an append-only record of decisions taken on the platform's behalf (who, what, when,
region, outcome), kept in the primary region (and replicated with the other tables).

What is recorded (action: outcomes):
- ``model.promotion_gate``: promoted | kept_champion (the nightly DAG's promote task)
- ``replication.pass``: replicated | failed, a pass that copied, failed or was refused (an idle pass is not)
- ``replication.residency``: denied, a table refused at the replication boundary by its residency policy
- ``region.failover``: promoted; ``region.failback``: returned (in the new primary; mode, epoch, RPO, RTO)
- ``fencing.write``: denied, a writer of a fenced (no longer primary) region refused its commit
- ``dq.gate``: passed | blocked, the validation job's verdict; blocked, a streaming batch stopped
- ``pipeline.run``: target ``once``: succeeded | failed (a catch-up run); ``continuous``: started | stopped |
  failed (``pipeline start``, a promoted standby included)
- ``hdfs.access``, ``kafka.access``, ``mlflow.access``, ``airflow.access``: denied, a request a service refused
  (its own log, forwarded by the lakehouse exporter: :mod:`lakehouse.security.refusals`)
- ``job.run``: succeeded | failed, every run of an entry point of ``jobs/`` (what Airflow and spark-submit run);
  target ``<job>`` or ``<job> <step>``, detail its arguments, exit code, seconds and error; in the primary in force

Who: the Airflow task (``airflow:<dag>/<run id>/<task>``) when a DAG runs the job, else the OS user.
Written with the ``deltalake`` package, so jobs without a JVM (replication, failover) record the same way.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pyspark.sql import types as T

from lakehouse.config import RegionConfig
from lakehouse.io import deadline, tables

TABLE = "ops.audit_log"
log = logging.getLogger(__name__)

# ops.audit_log: one row per recorded decision (key event_id); append-only. An append retried after a storage
# timeout may leave one decision in two rows with the same event_id (never none): count distinct event_ids.
AUDIT_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType(), False),
        T.StructField("event_time", T.TimestampType(), False),
        T.StructField("event_date", T.DateType(), False),
        T.StructField("actor", T.StringType(), False),
        T.StructField("action", T.StringType(), False),
        T.StructField("target", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
        T.StructField("outcome", T.StringType(), False),
        T.StructField("detail", T.StringType(), True),
    ]
)
COLUMNS: dict[str, str] = {
    "event_id": "Random id of the entry (key; an append retried after a storage timeout may store it twice).",
    "event_time": "When the decision was taken, UTC.",
    "event_date": "UTC date of event_time (partition column).",
    "actor": "Who: airflow:<dag>/<run id>/<task> for a DAG task, else user:<OS user>.",
    "action": "What was decided, e.g. model.promotion_gate.",
    "target": "What it was decided about, e.g. sepsis_risk/7 (registered model and version).",
    "region": "Region whose tables the decision used.",
    "outcome": "The decision, e.g. promoted or kept_champion.",
    "detail": "JSON with the evidence (metric values, tolerance, reason).",
}


def actor() -> str:
    """The Airflow task running this process (from the variables Airflow exports to it), else the OS user."""
    dag, run, task = (os.environ.get(f"AIRFLOW_CTX_{k}") for k in ("DAG_ID", "DAG_RUN_ID", "TASK_ID"))
    if dag and run:
        return f"airflow:{dag}/{run}/{task or '?'}"
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def entry(
    action: str, target: str, region: str, outcome: str, detail: Mapping[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    """One ops.audit_log row (``detail`` as JSON)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    return {
        "event_id": uuid.uuid4().hex, "event_time": moment, "event_date": moment.date(), "actor": actor(),
        "action": action, "target": target, "region": region, "outcome": outcome,
        "detail": json.dumps(dict(detail), sort_keys=True, default=str),
    }  # fmt: skip


def arrow_schema() -> pa.Schema:
    """The table's schema for the ``deltalake`` writer (timestamps in microseconds, UTC, as Spark writes)."""
    kinds: dict[T.DataType, pa.DataType] = {
        T.StringType(): pa.string(), T.TimestampType(): pa.timestamp("us", tz="UTC"), T.DateType(): pa.date32(),
    }  # fmt: skip
    return pa.schema([pa.field(f.name, kinds[f.dataType], nullable=f.nullable) for f in AUDIT_SCHEMA.fields])


COMMIT_ATTEMPTS = 12  # an append that lost a race to another writer's commit is tried again on the new version
STUCK_ATTEMPTS = 2  # an append stuck on storage past its deadline is tried once more, with the same event_id
BACKOFF_CAP_S = 2.0  # the longest wait between two attempts (full jitter, doubling from 0.1 s): ~17 s in all


def record(region: RegionConfig, *rows: dict[str, Any], attempts: int = COMMIT_ATTEMPTS) -> None:
    """Append ``rows`` (from :func:`entry`) to ``region``'s ops.audit_log in one commit (creating it if absent).

    Several processes write the log (pipelines, the replicator, DAG tasks) and Spark's table registration may
    commit comments to it: an append whose commit conflicts (``CommitFailedError``, e.g. "Metadata changed since
    last commit") is tried again on the table's new version, up to ``attempts`` times with a jittered backoff
    that doubles (a writer that keeps committing for seconds delays an append, it does not fail it); an append
    adds no file another commit removes, so a retry never writes a row twice. Each attempt has a deadline
    (:mod:`lakehouse.io.deadline`): an append stuck on storage is abandoned and tried once more
    (``STUCK_ATTEMPTS``; delta-rs' HDFS client now and then never returns from one call, and the next one works),
    then raises ``StorageTimeout`` instead of blocking the caller. The abandoned append may still land: the entry
    is then in the table twice with one ``event_id``, never missing; :func:`read` shows it once."""
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    if not rows:
        return
    data = pa.Table.from_pylist([{**r, "event_time": r["event_time"].replace(tzinfo=UTC)} for r in rows],
                                schema=arrow_schema())  # fmt: skip
    uri = tables.table_uri(region, TABLE)

    def append() -> None:
        write_deltalake(uri, data, mode="append", partition_by=["event_date"])

    attempt = stuck = 0
    while True:
        attempt += 1
        try:
            deadline.within(deadline.STORAGE_DEADLINE_S, f"append to ops.audit_log of {region.name}", append)
            return
        except CommitFailedError as exc:
            if attempt >= attempts:
                raise
            log.warning(f"ops.audit_log of {region.name}: commit lost a race ({exc}); attempt {attempt + 1}")
            # jittered, so appends that lost to the same commit do not collide again on the next one
            time.sleep(random.uniform(0.0, min(BACKOFF_CAP_S, 0.1 * 2**attempt)))
        except deadline.StorageTimeout as exc:
            stuck += 1
            if stuck >= STUCK_ATTEMPTS:
                raise
            log.warning(f"{exc.message}; trying again with the same event_id")


def try_record(region: RegionConfig, *rows: dict[str, Any]) -> bool:
    """:func:`record`, for paths that are already failing or refusing (a denial must still be raised when
    the audit table cannot be written): a failure to record is logged, not raised. True when recorded."""
    try:
        record(region, *rows)
        return True
    except Exception as exc:  # noqa: BLE001 -- whatever the storage raised; the caller's own error goes on
        log.error(f"ops.audit_log of {region.name}: could not record {[r['action'] for r in rows]}: {exc}")
        return False


def read(region: RegionConfig, action: str | None = None) -> list[dict[str, Any]]:
    """``region``'s audit rows (of ``action``, if given), oldest first; empty when nothing was recorded yet."""
    from deltalake import DeltaTable

    uri = tables.table_uri(region, TABLE)
    if not DeltaTable.is_deltatable(uri):
        return []
    rows: list[dict[str, Any]] = DeltaTable(uri).to_pyarrow_table().to_pylist()
    # an append abandoned at its deadline and tried again may have landed as well: one row per event_id
    unique = {r["event_id"]: r for r in rows if action is None or r["action"] == action}
    return sorted(unique.values(), key=lambda r: r["event_time"])


def record_job_run(
    job: str, argv: Sequence[str], code: int, seconds: float, error: str | None,
    into: Callable[[], RegionConfig] | None = None,
) -> bool:  # fmt: skip
    """Record a run of ``jobs/<job>.py`` (``job.run``) in ``into()``'s audit log, by default the primary in force
    (fencing state) of the process's profile. Never raises: a run that cannot be recorded is logged. True when
    recorded."""
    try:
        region = into() if into is not None else _primary_in_force()
    except Exception as exc:  # noqa: BLE001 -- no profile, no reachable region: the job's own outcome stands
        log.error(f"ops.audit_log: run of job {job} not recorded: {exc}")
        return False
    step = [argv[0]] if argv and not argv[0].startswith("-") else []
    detail: dict[str, Any] = {"args": list(argv), "exit_code": code, "seconds": round(seconds, 1)}
    if error is not None:
        detail["error"] = error
    outcome = "succeeded" if code == 0 else "failed"
    return try_record(region, entry("job.run", " ".join([job, *step]), region.name, outcome, detail))


def _primary_in_force() -> RegionConfig:
    from lakehouse.config import load_config
    from lakehouse.replication import fencing

    cfg = load_config()
    return cfg.region(fencing.current(cfg)[0].primary)
