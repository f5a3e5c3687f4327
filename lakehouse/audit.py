"""``ops.audit_log``: an append-only record of decisions taken on the platform's behalf (who, what, when,
region, outcome). The model promotion gate writes one row per decision; other controls append the same way.

Who: the Airflow task (``airflow:<dag>/<run id>/<task>``) when a DAG runs the job, else the OS user.
"""

from __future__ import annotations

import getpass
import json
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

TABLE = "ops.audit_log"

# ops.audit_log: one row per recorded decision (key event_id); append-only.
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
    "event_id": "Random id of the entry (key).",
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


def record(spark: SparkSession, uri: str, row: dict[str, Any]) -> None:
    """Append ``row`` (from :func:`entry`) to the audit table at ``uri``."""
    spark.createDataFrame([row], AUDIT_SCHEMA).write.format("delta").mode("append").save(uri)
