"""Data quality through the real pipeline on the real stack: each severity path with real data, a blocking
gold gate that stops promotion and loses nothing once fixed, dq.results, and the batch validation job.

One shared module-scoped pass of the bronze, silver and gold.vitals_minute queries (simulated devices ->
blocked at the gold gate -> suite fixed -> the same pass again), in its own sandbox (lakehouse root,
topics, catalog) and its own copy of the suites with stricter bounds and severities: severity is
configuration, so the test changes only configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import audit, pipeline
from lakehouse.config import CONF_DIR, PROJECT_ROOT, Config, config_path, load_config, write_sandbox_profile
from lakehouse.devices import simulator
from lakehouse.ingest.registry import register_assignments
from lakehouse.tables import uri

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]  # the module fixture runs the queries twice
# the queries the checks under test live in (the real-time NEWS2 path is left out to keep this lean)
QUERIES = ("bronze.telemetry", "silver.vitals", "gold.vitals_minute")

HR_MAX = 85  # stricter than the shipped suite (simulated baseline 78 +- 6), so simulated data trips it
SPO2_MIN = 97


def edit_suite(folder: Path, table: str, name: str, severity: str | None = None, **args: Any) -> None:
    path = folder / f"{table}.yaml"
    suite = yaml.safe_load(path.read_text())
    check = next(c for c in suite["expectations"] if c["name"] == name)
    check["args"].update(args)
    if severity:
        check["severity"] = severity
    path.write_text(yaml.safe_dump(suite))


def profile_with_suites(base: Path, folder: Path, suites: Path) -> Path:
    data = yaml.safe_load(base.read_text())
    data["quality"] = {"enabled": True, "suites_dir": str(suites)}
    path = folder / f"{base.stem}-{suites.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def drain(spark: SparkSession, cfg: Config) -> None:
    """One catch-up pass of ``QUERIES`` (availableNow), in order, as `pipeline run --once` runs them."""
    pipeline.prepare(spark, cfg, cfg.primary)
    starters = dict(pipeline.STARTERS)
    for name in QUERIES:
        query = starters[name](spark, cfg, cfg.primary, True)
        try:
            query.awaitTermination()
        finally:
            query.stop()


def read(spark: SparkSession, cfg: Config, name: str) -> DataFrame:
    return spark.read.format("delta").load(uri(cfg.primary, name))


@dataclass(frozen=True)
class Run:
    cfg: Config
    profile: Path
    folder: Path
    expected: simulator.Expected
    blocked: str  # the error of the first pass, stopped by the gold gate
    minute_rows_while_blocked: int


@pytest.fixture(scope="module")
def run(stack: Config, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("dq")
    suites = folder / "suites"
    shutil.copytree(CONF_DIR / "quality", suites)
    edit_suite(suites, "silver.vitals", "heart_rate_range", "quarantine", max_value=HR_MAX)
    edit_suite(suites, "silver.vitals", "spo2_range", "warn", min_value=SPO2_MIN)
    edit_suite(suites, "gold.vitals_minute", "window_count_positive", "block", min_value=1_000_000)
    sandbox = write_sandbox_profile(config_path(), folder, "dq")
    profile = profile_with_suites(sandbox, folder, suites)
    cfg = load_config(str(profile))
    region = cfg.primary
    fleet = simulator.make_fleet(6, seed=5, prefix="dq")
    sim, _ = simulator.simulate(
        cfg, 6, rate=10, seconds=30, bad_fraction=0.2, seed=5, realtime=False, prefix="dq", progress=lambda _: None
    )
    register_assignments(cfg, region, simulator.fleet_assignments(fleet, sim.start - timedelta(hours=1), region.name))
    with pytest.raises(Exception) as blocked:  # the streaming query's error wraps DataQualityBlocked
        drain(spark, cfg)
    minute_rows = read(spark, cfg, "gold.vitals_minute").count()
    edit_suite(suites, "gold.vitals_minute", "window_count_positive", min_value=1)  # the fix
    drain(spark, cfg)
    return Run(cfg, profile, folder, sim.expected, str(blocked.value), minute_rows)


def test_quarantine_routes_failing_rows_with_the_check_as_reason_and_counts_reconcile(
    spark: SparkSession, run: Run
) -> None:
    e, cfg = run.expected, run.cfg
    rec = pipeline.reconcile(spark, cfg.primary)
    assert rec.balanced and rec.accepted == e.messages_accepted and rec.quarantined == e.messages_quarantined
    vitals = read(spark, cfg, "silver.vitals")
    assert vitals.filter(f"vital = 'heart_rate' AND value > {HR_MAX}").count() == 0
    rejected = read(spark, cfg, "silver.quarantine").filter("level = 'measurement'")
    by_reason = Counter({r["reason"]: r["count"] for r in rejected.groupBy("reason").count().collect()})
    dq_quarantined = by_reason.pop("heart_rate_range", 0)
    assert dq_quarantined > 0
    assert by_reason == e.measurement_rejects  # the contract's own rejections are untouched
    assert vitals.count() + dq_quarantined == e.measurements_accepted  # nothing lost, nothing counted twice
    assert rec.measurements_accepted == vitals.count()
    assert rec.measurements_quarantined == sum(e.measurement_rejects.values()) + dq_quarantined
    results = read(spark, cfg, "dq.results").filter("expectation = 'heart_rate_range'")
    failed = results.filter("NOT success").agg(F.sum("rows_failed"), F.collect_set("action")).first()
    assert failed is not None and failed[0] == dq_quarantined and failed[1] == ["quarantined"]


def test_warn_records_the_failure_and_keeps_the_rows(spark: SparkSession, run: Run) -> None:
    cfg = run.cfg
    low = read(spark, cfg, "silver.vitals").filter(f"vital = 'spo2' AND value < {SPO2_MIN}").count()
    assert low > 0
    results = read(spark, cfg, "dq.results").filter("expectation = 'spo2_range' AND NOT success")
    got = results.agg(F.sum("rows_failed"), F.collect_set("action"), F.collect_set("severity")).first()
    assert got is not None and (got[0], got[1], got[2]) == (low, ["recorded"], ["warn"])
    health = read(spark, cfg, "dq.results").filter("table_name = 'bronze.telemetry'")
    assert health.filter("expectation = 'quarantined_share_below_half' AND success").count() > 0


def test_a_blocking_gold_gate_stops_promotion_and_the_batch_is_retried_once_fixed(
    spark: SparkSession, run: Run
) -> None:
    cfg = run.cfg
    assert "window_count_positive" in run.blocked and "DataQualityBlocked" in run.blocked
    assert run.minute_rows_while_blocked == 0  # not promoted
    results = read(spark, cfg, "dq.results").filter("table_name = 'gold.vitals_minute'")
    assert results.filter("expectation = 'window_count_positive' AND action = 'blocked'").count() >= 1
    assert results.filter("expectation = 'window_count_positive' AND success").count() >= 1  # the retry
    gates = [r for r in audit.read(cfg.primary, "dq.gate") if r["target"] == "gold.vitals_minute"]
    assert gates and gates[0]["outcome"] == "blocked", gates  # the decision, in ops.audit_log
    assert json.loads(gates[0]["detail"])["blocked"] == ["gold.vitals_minute: window_count_positive"]
    # nothing lost: every (patient, vital, minute) of silver is in gold
    vitals = read(spark, cfg, "silver.vitals")
    windows = vitals.select("patient_ref", "vital", F.window("event_time", "1 minute").start.alias("w")).distinct()
    assert read(spark, cfg, "gold.vitals_minute").count() == windows.count() > 0


def test_validation_job_fails_on_a_blocking_expectation_and_renders_data_docs(spark: SparkSession, run: Run) -> None:
    suites = run.folder / "strict"
    shutil.copytree(Path(str(run.cfg.quality.suites_dir)), suites)
    edit_suite(suites, "silver.vitals", "spo2_range", "block")
    profile = profile_with_suites(run.profile, run.folder, suites)
    day = read(spark, run.cfg, "silver.vitals").agg(F.max("event_date")).first()
    assert day is not None
    env = {**os.environ, "LAKEHOUSE_ENV": str(profile), "PYTHONPATH": str(PROJECT_ROOT)}  # this checkout's package
    job = [sys.executable, str(PROJECT_ROOT / "jobs" / "data_quality.py"), "--table", "silver.vitals",
           "--table", "gold.vitals_minute", "--date", day[0].isoformat()]  # fmt: skip
    done = subprocess.run(job, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "spo2_range" in done.stderr and "blocking" in done.stderr
    docs = run.cfg.quality.data_docs_dir(run.cfg.state_dir) / "index.html"
    assert docs.is_file() and "silver.vitals" in docs.read_text()
    runs = read(spark, run.cfg, "dq.results").filter(F.col("run_id").startswith("validate:"))
    assert runs.filter("expectation = 'spo2_range' AND action = 'blocked'").count() == 1
    assert runs.filter("table_name = 'gold.vitals_minute' AND success").count() > 0
    (gate,) = [r for r in audit.read(run.cfg.primary, "dq.gate") if r["target"] == "silver.vitals, gold.vitals_minute"]
    assert gate["outcome"] == "blocked" and json.loads(gate["detail"])["blocked"] == ["silver.vitals: spo2_range"]
