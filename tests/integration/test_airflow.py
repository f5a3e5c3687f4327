"""Airflow on the real local stack: the api-server authenticates with JWTs from /auth/token, a read-only user
cannot trigger, every refusal reaches ops.audit_log, the scheduler and the dag-processor report heartbeats, and
`lakehouse dags` talks to them through the REST API."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from lakehouse.config import Config
from lakehouse.orchestration.airflow import AirflowClient, AirflowError
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_api_issues_tokens_to_the_admin_only_and_reports_heartbeats(stack: Config) -> None:
    client = AirflowClient.from_config(stack)
    assert client.version().startswith("3.")
    health = client.health()
    assert {health[k]["status"] for k in ("metadatabase", "scheduler", "dag_processor")} == {"healthy"}, health
    with pytest.raises(AirflowError, match="refused the credentials"):
        AirflowClient(stack.airflow.url, stack.airflow.username, "not-the-password").dags()
    client._token = "forged"  # refused (401): the client fetches a fresh token once and goes on
    assert isinstance(client.dags(), list) and client._token != "forged"


def test_a_viewer_cannot_trigger_and_every_refusal_reaches_the_audit_log(stack: Config) -> None:
    from lakehouse import audit
    from lakehouse.orchestration.services import VIEWER

    started = datetime.now(UTC) - timedelta(seconds=1)
    viewer = AirflowClient.from_config(stack, user=VIEWER)
    assert {d["dag_id"] for d in viewer.dags()} >= {"nightly_retraining", "region_failover"}  # reading is allowed
    with pytest.raises(AirflowError, match="HTTP 403"):
        viewer.trigger("region_failover", {"target_region": "europe", "mode": "planned"})
    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    with pytest.raises(AirflowError, match="refused the credentials"):
        AirflowClient(stack.airflow.url, stranger, "guess").dags()

    # the api-server writes each refusal down, the lakehouse exporter appends it to the primary's ops.audit_log
    deadline, seen = time.monotonic() + 90, []
    while time.monotonic() < deadline and not ({"airflow:viewer", f"airflow:{stranger}"} <= {r["actor"] for r in seen}):
        time.sleep(3)
        seen = [r for r in audit.read(stack.primary, "airflow.access") if r["event_time"] >= started]
    mine = {(r["actor"], r["target"], json.loads(r["detail"])["status"]) for r in seen}
    assert ("airflow:viewer", "POST /api/v2/dags/region_failover/dagRuns", 403) in mine
    assert len([r for r in seen if r["actor"] == "airflow:viewer"]) == 1, "a refused trigger is not retried"
    assert (f"airflow:{stranger}", "POST /auth/token", 401) in mine
    assert {r["outcome"] for r in seen} == {"denied"}


def test_dags_list_shows_the_parsed_dags_without_import_errors(stack: Config) -> None:
    result = run_cli("dags", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["import_errors"] == []
    assert {d["dag_id"] for d in listed["dags"]} == {d["dag_id"] for d in AirflowClient.from_config(stack).dags()}


def test_trigger_of_an_unknown_dag_is_a_clear_error(stack: Config) -> None:
    result = run_cli("dags", "trigger", "no_such_dag", "--conf", "[1]")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--conf must be a JSON object" in result.stderr
    result = run_cli("dags", "trigger", "no_such_dag")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Airflow knows no DAG 'no_such_dag'" in result.stderr


def test_runs_are_listed_by_type_and_state_and_a_run_marked_failed_says_why(stack: Config) -> None:
    """What a test stack uses to leave no scheduled run behind (tests/conftest.py ``run_dag_once``): a DAG's runs
    filtered by run type and state, and a run marked failed with a note."""
    client = AirflowClient.from_config(stack)
    client.wait_for_dag("nightly_retraining", timeout_s=120)
    # a distinct logical date after the DAG's start date; the DAG is not unpaused, so the run stays queued
    moment = datetime(2026, 2, 1, tzinfo=UTC) + timedelta(seconds=uuid.uuid4().int % 2_000_000)
    run = client.trigger("nightly_retraining", {}, logical_date=moment)
    try:
        queued = client.runs("nightly_retraining", run_type="manual", states=("queued", "running"))
        assert run.run_id in {r.run_id for r in queued}
        assert run.run_id not in {r.run_id for r in client.runs("nightly_retraining", run_type="scheduled")}
        assert run.run_id not in {r.run_id for r in client.runs("nightly_retraining", states=("success",))}
    finally:
        client.set_run_state("nightly_retraining", run.run_id, "failed", note="marked by test_airflow")
    marked = client.dag_run("nightly_retraining", run.run_id)
    assert (marked.state, marked.note) == ("failed", "marked by test_airflow")
    failed = client.runs("nightly_retraining", run_type="manual", states=("failed",))
    assert run.run_id in {r.run_id for r in failed}
    assert run.run_id not in {r.run_id for r in client.runs("nightly_retraining", states=("queued", "running"))}
