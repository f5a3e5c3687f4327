"""ops.audit_log rows: who (the Airflow task, else the OS user), what, when, outcome, the evidence as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lakehouse import audit, tables


def test_an_entry_names_the_airflow_task_that_decided(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "nightly_retraining")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "scheduled__2026-11-26")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "promote")
    row = audit.entry("model.promotion_gate", "sepsis_risk/3", "asia", "promoted", {"auroc": 0.81},
                      now=datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC))  # fmt: skip
    assert row["actor"] == "airflow:nightly_retraining/scheduled__2026-11-26/promote"
    assert row["event_time"] == datetime(2026, 11, 27, 1, 2, 3) and str(row["event_date"]) == "2026-11-27"
    assert json.loads(row["detail"]) == {"auroc": 0.81}
    assert set(row) == {f.name for f in audit.AUDIT_SCHEMA}
    assert audit.entry("a", "t", "asia", "o", {})["event_id"] != row["event_id"]


def test_outside_airflow_the_actor_is_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID", "AIRFLOW_CTX_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    assert audit.actor().startswith(("user:", "uid:"))


def test_the_audit_table_is_in_the_catalog_and_replicated() -> None:
    from lakehouse.config import load_config

    spec = tables.SPECS[audit.TABLE]
    assert spec.partition_by == ("event_date",) and set(spec.columns) == {f.name for f in audit.AUDIT_SCHEMA}
    assert load_config().replication.tables[audit.TABLE] == "allowed"
