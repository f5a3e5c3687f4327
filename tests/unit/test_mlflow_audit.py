"""Refused MLflow requests become ops.audit_log rows: who (the user the client gave, or anonymous), what
(method and path), when, and the HTTP status; a line that is not a denial record is skipped, not fatal."""

from __future__ import annotations

import json
from datetime import datetime

from lakehouse.security import mlflow_audit
from lakehouse.security.denials import denial


def test_each_denial_line_becomes_one_denied_row_with_its_user_or_anonymous() -> None:
    reader = denial(403, "reader-1", "POST", "/api/2.0/mlflow/runs/delete", "127.0.0.1")
    anonymous = denial(401, None, "GET", "/api/2.0/mlflow/experiments/search", "10.0.0.7")
    rows = mlflow_audit.rows([json.dumps(reader), "not json {", json.dumps({"status": 401}), json.dumps(anonymous)],
                             "asia")  # fmt: skip
    assert [(r["actor"], r["target"], r["outcome"], r["action"]) for r in rows] == [
        ("mlflow:reader-1", "POST /api/2.0/mlflow/runs/delete", "denied", "mlflow.access"),
        ("mlflow:anonymous", "GET /api/2.0/mlflow/experiments/search", "denied", "mlflow.access"),
    ]
    assert [json.loads(r["detail"]) for r in rows] == [{"status": 403, "ip": "127.0.0.1"},
                                                        {"status": 401, "ip": "10.0.0.7"}]  # fmt: skip
    assert {r["region"] for r in rows} == {"asia"}
    when = datetime.fromisoformat(reader["time"]).replace(tzinfo=None)
    assert rows[0]["event_time"] == when and rows[0]["event_date"] == when.date()
