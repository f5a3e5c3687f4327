"""ops.audit_log rows: who (the Airflow task, else the OS user), what, when, outcome, the evidence as JSON."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

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


def test_rows_written_without_a_jvm_read_back_in_spark_with_the_declared_schema(
    tmp_path: Path, spark: SparkSession
) -> None:
    """audit.record (deltalake, for JVM-less jobs) and Spark agree on the table: same columns, types, partition."""
    from lakehouse.config import load_config

    region = load_config().primary
    region = replace(region, hdfs=replace(region.hdfs, namenode_uri=tmp_path.as_uri()), lakehouse_root="lh")
    assert audit.read(region) == []
    first = audit.entry("region.failover", "asia -> europe", "europe", "promoted", {"epoch": 1})
    audit.record(region, first, audit.entry("fencing.write", "asia", "asia", "denied", {"epoch": 1}))
    audit.record(region, audit.entry("dq.gate", "silver.vitals", "asia", "blocked", {"blocked": ["x"]}))
    assert [r["action"] for r in audit.read(region)] == ["region.failover", "fencing.write", "dq.gate"]
    (denied,) = audit.read(region, "fencing.write")
    assert denied["outcome"] == "denied" and json.loads(denied["detail"]) == {"epoch": 1}
    frame = spark.read.format("delta").load(tables.uri(region, audit.TABLE))
    assert [(f.name, f.dataType) for f in frame.schema.fields] == [
        (f.name, f.dataType) for f in audit.AUDIT_SCHEMA.fields
    ]
    row = frame.where("action = 'region.failover'").first()
    assert row is not None and row["event_id"] == first["event_id"] and row["event_time"] == first["event_time"]
    partitions = {p.name for p in (tmp_path / "lh" / "ops" / "audit_log").iterdir() if p.is_dir()}
    assert partitions >= {f"event_date={first['event_date']}"}


def test_a_denial_is_still_raised_when_the_audit_table_cannot_be_written(tmp_path: Path) -> None:
    from lakehouse.config import load_config

    region = load_config().primary
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the warehouse should be")
    region = replace(region, hdfs=replace(region.hdfs, namenode_uri=blocked.as_uri()), lakehouse_root="lh")
    assert audit.try_record(region, audit.entry("fencing.write", "asia", "asia", "denied", {})) is False


def _local_region(tmp_path: Path) -> Any:
    from lakehouse.config import load_config

    region = load_config().primary
    return replace(region, hdfs=replace(region.hdfs, namenode_uri=tmp_path.as_uri()), lakehouse_root="lh")


def test_every_job_run_is_recorded_with_its_outcome_and_never_changes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jobs/ entry points run through lakehouse.cli.run_job: one job.run row per run, succeeded or failed (with the
    exit code and the one-line error), a crash re-raised after it; a run that cannot be recorded keeps its outcome."""
    from lakehouse import cli
    from lakehouse.errors import InputError

    for key in ("AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID", "AIRFLOW_CTX_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    region = _local_region(tmp_path)
    into = lambda: region

    def missing() -> int:
        raise InputError("archive /nope.tar.gz does not exist", fix="pass --psv PATH")

    assert cli.run_job("train", ["promote", "--region", "asia"], lambda: 0, into) == 0
    assert cli.run_job("build_features", ["--psv", "/nope.tar.gz"], missing, into) == InputError("x").exit_code
    with pytest.raises(ZeroDivisionError):
        cli.run_job("score", ["drift", "--hours", "24"], lambda: 1 // 0, into)
    rows = audit.read(region, "job.run")
    assert [(r["target"], r["outcome"]) for r in rows] == [
        ("train promote", "succeeded"), ("build_features", "failed"), ("score drift", "failed"),
    ]  # fmt: skip
    assert all(r["actor"].startswith(("user:", "uid:")) and r["region"] == region.name for r in rows)
    ok, bad, crash = (json.loads(r["detail"]) for r in rows)
    assert ok["args"] == ["promote", "--region", "asia"] and ok["exit_code"] == 0 and "error" not in ok
    assert bad["exit_code"] == 66 and "archive /nope.tar.gz does not exist" in bad["error"]
    assert crash["exit_code"] == 1 and crash["error"].startswith("ZeroDivisionError")

    def unreachable() -> Any:
        raise OSError("HDFS does not answer")

    assert cli.run_job("maintenance", [], lambda: 0, unreachable) == 0
    assert cli.run_job("build_features", [], missing, unreachable) == 66
    assert len(audit.read(region, "job.run")) == 3


def test_every_jobs_entry_point_is_recorded() -> None:
    """Each jobs/*.py runs through run_job or job_main (so Airflow's and spark-submit's runs are all audited)."""
    from lakehouse.config import PROJECT_ROOT

    for path in sorted((PROJECT_ROOT / "jobs").glob("*.py")):
        source = path.read_text()
        assert f'run_job("{path.stem}"' in source or f'job_main("{path.stem}"' in source, path.name
        assert "guarded(" not in source, path.name


def test_an_append_that_loses_a_race_to_a_metadata_commit_is_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Spark's table registration commits comments and properties to ops.audit_log while other processes append
    to it (CI saw the replicator die of "Metadata changed since last commit"): appends made while another writer
    commits a metadata change every 50 ms all land, each once (CI, with two lanes on two cores, once saw an append
    lose five races in a row: the retries are jittered and outlast seconds of churn)."""
    import threading

    from deltalake import DeltaTable

    region = _local_region(tmp_path)
    audit.record(region, audit.entry("seed", "t", region.name, "o", {}))
    uri, stop = tables.uri(region, audit.TABLE), threading.Event()

    def churn() -> None:  # 60 metadata commits, one every 50 ms: seconds of churn, shorter than an append's retries
        for i in range(60):
            DeltaTable(uri).alter.set_table_properties({"delta.logRetentionDuration": f"interval {30 + i % 5} days"})
            if stop.wait(0.05):
                return

    writer = threading.Thread(target=churn, daemon=True)
    writer.start()
    try:
        sent = [audit.entry("race", str(n), region.name, "o", {}) for n in range(30)]
        for row in sent:
            audit.record(region, row)
    finally:
        stop.set()
        writer.join()
    races = sum("lost a race" in r.getMessage() for r in caplog.records)
    landed = [r["event_id"] for r in audit.read(region, "race")]
    assert sorted(landed) == sorted(r["event_id"] for r in sent), f"{races} races retried"


def test_an_append_stuck_on_storage_is_tried_again_and_read_shows_the_entry_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """delta-rs' HDFS client now and then never returns from a call: the append is abandoned at its deadline and
    made again with the same event_id. The first one may still land (here it does, late): the table then holds the
    entry twice, and ``read`` shows it once. Two stuck appends in a row raise (the caller's task retries)."""
    import threading

    import deltalake
    from deltalake import DeltaTable

    from lakehouse.io import deadline

    region = _local_region(tmp_path)
    real_write, calls, late = deltalake.write_deltalake, [], threading.Event()

    def first_one_late(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.0)  # past the deadline below, then it lands after all
            real_write(*args, **kwargs)
            late.set()
            return
        real_write(*args, **kwargs)

    monkeypatch.setattr(deadline, "STORAGE_DEADLINE_S", 0.3)
    monkeypatch.setattr(deltalake, "write_deltalake", first_one_late)
    row = audit.entry("stuck", "t", region.name, "o", {})
    audit.record(region, row)
    assert len(calls) == 2 and late.wait(10)
    stored = DeltaTable(tables.uri(region, audit.TABLE)).to_pyarrow_table().to_pylist()
    assert [r["event_id"] for r in stored] == [row["event_id"]] * 2  # the abandoned append landed too
    assert [r["event_id"] for r in audit.read(region, "stuck")] == [row["event_id"]]

    def always_stuck(*args: Any, **kwargs: Any) -> None:
        time.sleep(1.0)

    monkeypatch.setattr(deltalake, "write_deltalake", always_stuck)
    with pytest.raises(deadline.StorageTimeout, match="append to ops.audit_log of"):
        audit.record(region, audit.entry("stuck", "again", region.name, "o", {}))
