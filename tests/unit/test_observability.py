"""Observability without services: alert rules under promtool, dashboards against Grafana's structure and the
metrics the project defines, the listener's reading of Spark progress, replication lag, JSON log lines."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from lakehouse.config import CONF_DIR, load_config
from lakehouse.observability import dashboards, exporter, listener, logs, metrics
from lakehouse.observability.services import prometheus_config

PROM = CONF_DIR / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
DASHBOARDS = dashboards.load_all()


def _alerts() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    check = subprocess.run(
        ["promtool", "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(
        ["promtool", "test", "rules", *map(str, TEST_FILES)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_every_alert_has_a_firing_case_in_the_promtool_tests() -> None:
    fired: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            fired |= {t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert set(_alerts()) == fired
    assert {"StreamingQueryStalled", "KafkaLagGrowing", "ReplicationLagAboveRPO", "DataQualityFailuresSpiking",
            "ModelDriftHigh", "ModelQualityBelowFloor", "WardDevicesSilent"} <= fired  # fmt: skip


@pytest.mark.parametrize("profile", ["local", "cluster"])
def test_rpo_alert_threshold_is_the_profiles_rpo(profile: str) -> None:
    expr = _alerts()["ReplicationLagAboveRPO"]["expr"]
    assert expr == f"lakehouse_replication_lag_seconds > {load_config(profile).observability.rpo_s}"


def test_scrape_config_covers_every_exporter_of_the_profile() -> None:
    cfg = load_config("local")
    jobs = {j["job_name"]: j for j in prometheus_config(cfg)["scrape_configs"]}
    assert set(jobs) == {"prometheus", "pushgateway", "lakehouse-exporter", "pipeline"}
    assert jobs["pushgateway"]["honor_labels"] is True
    pipeline_targets = {c["labels"]["region"]: c["targets"] for c in jobs["pipeline"]["static_configs"]}
    assert pipeline_targets == {r: [e] for r, e in cfg.observability.pipeline_metrics.items()}
    assert all(t.startswith("127.0.0.1:") for j in jobs.values() for c in j["static_configs"] for t in c["targets"])


# --------------------------------------------------------------------------- dashboards


def _defined_metric_names() -> set[str]:
    names = {family.name for family in metrics.REGISTRY.collect()}
    source = Path(exporter.__file__).read_text()
    names |= set(re.findall(r'"(lakehouse_[a-z0-9_]+)"', source))
    return names


def test_the_five_dashboards_exist_with_unique_uids() -> None:
    assert set(DASHBOARDS) == {"pipeline-health", "data-quality", "dr-status", "model-monitoring", "patient-vitals"}
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_has_grafanas_structure_and_queries_defined_metrics(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboards.structure_problems(dashboard) == []
    defined = _defined_metric_names()
    for query in dashboards.panel_queries(dashboard):
        used = set(re.findall(r"\blakehouse_[a-z0-9_]+", query.expr))
        unknown = {u for u in used if u not in defined and u.removesuffix("_total") not in defined}
        assert not unknown, f"{name} panel {query.panel_id} ({query.title}) uses undefined metrics {unknown}"


def test_structure_check_finds_what_grafana_would_reject() -> None:
    broken = json.loads(json.dumps(DASHBOARDS["pipeline-health"]))
    broken["uid"] = "has spaces"
    broken["panels"][1]["id"] = broken["panels"][0]["id"]
    broken["panels"][2]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "other"}
    broken["panels"][3]["gridPos"]["w"] = 30
    problems = dashboards.structure_problems(broken)
    assert len(problems) == 4, problems


def test_dashboard_variables_are_substituted_like_grafana_does() -> None:
    expr = 'sum by (ward) (rate(lakehouse_ward_measurements_total{region="$region"}[$__rate_interval]))'
    assert dashboards.substitute(expr, "europe") == (
        'sum by (ward) (rate(lakehouse_ward_measurements_total{region="europe"}[1m]))'
    )


# --------------------------------------------------------------------------- listener, exporter, logs

PROGRESS = {  # the shape of StreamingQueryProgress.json for a Kafka source and a windowed aggregate
    "id": "5f1c", "runId": "9a2b", "name": "bronze_telemetry_testregion", "timestamp": "2026-11-26T10:00:00.000Z",
    "batchId": 7, "batchDuration": 2500, "numInputRows": 1200, "inputRowsPerSecond": 400.0,
    "processedRowsPerSecond": 480.0, "eventTime": {"watermark": "2026-11-26T09:50:00.000Z"},
    "stateOperators": [{"numRowsTotal": 30, "numRowsDroppedByWatermark": 2},
                       {"numRowsTotal": 12, "numRowsDroppedByWatermark": 1}],
    "sources": [{"description": "KafkaV2[Subscribe[telemetry.vitals]]",
                 "metrics": {"avgOffsetsBehindLatest": "10.0", "maxOffsetsBehindLatest": "25",
                             "minOffsetsBehindLatest": "0"}}],
}  # fmt: skip


def _value(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_listener_turns_a_progress_event_into_metrics() -> None:
    q = {"region": "testregion", "query": "bronze_telemetry"}
    before = _value("lakehouse_stream_input_rows_total", **q) or 0.0
    listener.record_progress("testregion", PROGRESS)
    assert _value("lakehouse_stream_input_rows_total", **q) == before + 1200
    assert _value("lakehouse_stream_input_rows_per_second", **q) == 400.0
    assert _value("lakehouse_stream_processed_rows_per_second", **q) == 480.0
    assert _value("lakehouse_stream_batch_duration_seconds", **q) == 2.5
    assert _value("lakehouse_stream_offsets_behind_latest", **q) == 25.0
    assert _value("lakehouse_stream_watermark_delay_seconds", **q) == 600.0
    assert _value("lakehouse_stream_state_rows", **q) == 42.0
    assert (
        _value("lakehouse_stream_last_progress_timestamp_seconds", **q)
        == datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()
    )
    assert b'lakehouse_stream_late_rows_dropped_total{query="bronze_telemetry",region="testregion"}' in (
        generate_latest(metrics.REGISTRY)
    )


def test_a_query_without_a_watermark_yet_reports_no_watermark_delay() -> None:
    progress = {**PROGRESS, "name": "gold_vitals_hourly_nowm", "eventTime": {"watermark": "1970-01-01T00:00:00.000Z"}}
    listener.record_progress("nowm", progress)
    assert _value("lakehouse_stream_watermark_delay_seconds", region="nowm", query="gold_vitals_hourly") is None


@pytest.mark.parametrize(
    ("primary", "secondary", "expected"),
    [
        ((5, {0: 100.0, 1: 200.0, 2: 300.0, 3: 400.0, 4: 500.0, 5: 600.0}), (5, {}), (0, 0.0)),
        ((5, {0: 100.0, 1: 200.0, 2: 300.0, 3: 400.0, 4: 500.0, 5: 600.0}), (2, {}), (3, 1000.0 - 400.0)),
        ((1, {0: 100.0, 1: 200.0}), (-1, {}), (2, 1000.0 - 100.0)),
        ((-1, {}), (-1, {}), (0, 0.0)),
    ],
)
def test_replication_lag_is_the_age_of_the_oldest_missing_commit(
    primary: tuple[int, dict[int, float]], secondary: tuple[int, dict[int, float]], expected: tuple[int, float]
) -> None:
    got = exporter.replication_lag(exporter.TableVersion(*primary), exporter.TableVersion(*secondary), now=1000.0)
    assert got == expected


def test_log_lines_are_json_with_job_region_query_and_batch() -> None:
    formatter = logs.JsonLineFormatter("pipeline", "asia")
    record = logging.LogRecord("lakehouse.stream", logging.INFO, __file__, 1, "batch done", None, None)
    record.query, record.query_id, record.batch_id = "silver_vitals", "5f1c", 7
    line = json.loads(formatter.format(record))
    assert {k: line[k] for k in ("level", "job", "region", "query", "query_id", "batch_id", "message")} == {
        "level": "info", "job": "pipeline", "region": "asia", "query": "silver_vitals", "query_id": "5f1c",
        "batch_id": 7, "message": "batch done",
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])


def test_alert_levels_series_are_the_gold_levels() -> None:
    from lakehouse.clinical import early_warning

    assert sorted(metrics.ALERT_LEVELS) == sorted(early_warning.ALERT_LEVELS)


def test_dag_run_summary_counts_states_and_times_the_latest_finished_run() -> None:
    from lakehouse.observability.exporter import dag_run_summary

    runs = [  # newest first, as Airflow lists them
        {"state": "running", "start_date": "2026-03-01T10:00:00Z", "end_date": None},
        {"state": "failed", "start_date": "2026-03-01T09:00:00Z", "end_date": "2026-03-01T09:01:30Z"},
        {"state": "success", "start_date": "2026-03-01T08:00:00Z", "end_date": "2026-03-01T08:10:00Z"},
        {"state": "success", "start_date": "2026-03-01T07:00:00Z", "end_date": "2026-03-01T07:02:00Z"},
    ]
    got = {state: (n, last) for state, n, last in dag_run_summary(runs)}
    assert got["success"][0] == 2 and got["success"][1] is not None and got["success"][1][0] == 600.0
    assert got["failed"] == (1, (90.0, got["failed"][1][1]))  # type: ignore[index]
    assert got["running"] == (1, None)
    assert dag_run_summary([]) == [("failed", 0, None), ("success", 0, None)]  # series exist before any run


def test_replication_lag_is_reported_for_the_tables_that_replicate_only() -> None:
    """A table that stays in its region (restricted.patient_identities, or one whose policy is forbidden) would
    lag forever and keep the RPO alert firing: the exporter leaves it out."""
    from dataclasses import replace

    cfg = load_config(str(CONF_DIR / "local.yaml"))
    tables = exporter.replicated_tables(cfg)
    assert "silver.vitals" in tables and "restricted.patient_identities" not in tables
    forbidding = replace(
        cfg, replication=replace(cfg.replication, tables={**cfg.replication.tables, "silver.vitals": "forbidden"})
    )
    assert "silver.vitals" not in exporter.replicated_tables(forbidding)
