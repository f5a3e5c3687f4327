"""The real local stack: Kafka -> Spark, Delta on each region's HDFS, MLflow, `stack up` idempotence, the demo on
the default profile, and a real run of the data_quality_daily DAG over the tables the demo filled."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.config import Config
from lakehouse.ingest.gold import ALERTS_SCHEMA
from lakehouse.io import kafka, tables
from lakehouse.orchestration.airflow import AirflowClient, DagRun
from lakehouse.stack import manager
from lakehouse.tables import uri
from tests.conftest import run_cli, run_dag_once

pytestmark = pytest.mark.integration

DAILY = "data_quality_daily"


def test_status_json_reports_every_service_healthy(stack: Config) -> None:
    result = run_cli("stack", "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    names = {s["name"] for s in report["services"]}
    # spark-connect is optional: listed only while it runs
    assert names == {
        "kafka-asia", "hdfs-namenode-asia", "hdfs-datanode-asia", "metastore-asia",
        "kafka-europe", "hdfs-namenode-europe", "hdfs-datanode-europe", "metastore-europe", "mlflow",
        "airflow-api-server", "airflow-dag-processor", "airflow-scheduler",
        "pushgateway", "lakehouse-exporter", "prometheus",
    }  # fmt: skip
    for svc in report["services"]:
        assert svc["healthy"] and svc["running"] and isinstance(svc["pid"], int), svc
        assert svc["port"] > 1024
        assert svc["region"] in ("asia", "europe", None)


def test_stack_up_twice_is_a_no_op(stack: Config) -> None:
    pids = {s.name: s.pid for s in manager.status(stack)}
    result = run_cli("stack", "up")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already running") == len(pids)
    assert "started" not in result.stdout
    assert {s.name: s.pid for s in manager.status(stack)} == pids


def test_kafka_python_produce_then_spark_kafka_source_reads_it_back(stack: Config, spark: SparkSession) -> None:
    region = stack.primary
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    assert kafka.ensure_topic(region, topic, stack.topics) is True
    assert kafka.ensure_topic(region, topic, stack.topics) is False
    records = [(f"dev-{i % 5}", {"n": i, "vital": "heart_rate", "value": 60 + i % 40}) for i in range(200)]
    assert kafka.produce_json(region, topic, records) == 200

    got = kafka.read_kafka(spark, region, topic, streaming=False).select(
        F.col("key").cast("string").alias("key"), F.col("value").cast("string").alias("value")
    )
    expected = spark.createDataFrame(
        [(k, json.dumps(v, separators=(",", ":"))) for k, v in records], "key string, value string"
    )
    assertDataFrameEqual(got, expected)
    assert sum(kafka.end_offsets(region, topic).values()) == 200


@pytest.mark.parametrize("region_name", ["asia", "europe"])
def test_delta_table_on_each_regions_hdfs(stack: Config, spark: SparkSession, region_name: str) -> None:
    from hdfs import InsecureClient

    region = stack.region(region_name)
    name = f"scratch.t_{uuid.uuid4().hex[:8]}"
    uri = tables.table_uri(region, name)
    assert uri.startswith(region.hdfs.namenode_uri)
    df = spark.createDataFrame(
        [("dev-1", "heart_rate", 72.0), ("dev-2", "spo2", 97.0)], "device_id string, vital string, value double"
    )
    df.write.format("delta").save(uri)
    spark.createDataFrame([("dev-3", "temperature", 37.2)], df.schema).write.format("delta").mode("append").save(uri)

    assertDataFrameEqual(
        spark.read.format("delta").load(uri),
        df.unionByName(spark.createDataFrame([("dev-3", "temperature", 37.2)], df.schema)),
    )
    path = "/" + uri.split("://", 1)[1].split("/", 1)[1]
    log = InsecureClient(region.hdfs.webhdfs_url, user=region.hdfs.user).list(f"{path}/_delta_log")
    assert "00000000000000000000.json" in log and "00000000000000000001.json" in log
    other = next(r for r in stack.regions.values() if r.name != region_name)
    assert InsecureClient(other.hdfs.webhdfs_url, user=other.hdfs.user).status(path, strict=False) is None


def test_mlflow_run_logged_and_read_back(stack: Config, tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(stack.mlflow.tracking_uri)
    experiment = f"stack-test-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(experiment)
    note = tmp_path / "note.txt"
    note.write_text("vital signs")
    with mlflow.start_run() as run:
        mlflow.log_param("window", "15min")
        mlflow.log_metric("auroc", 0.81)
        mlflow.log_artifact(str(note))
    client = MlflowClient(stack.mlflow.tracking_uri)
    got = client.get_run(run.info.run_id)
    assert got.data.params == {"window": "15min"}
    assert got.data.metrics == {"auroc": 0.81}
    assert client.get_experiment_by_name(experiment) is not None
    fetched = Path(client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "dl")))
    assert fetched.read_text() == "vital signs"


def test_mlflow_requires_a_user_and_a_reader_cannot_delete(stack: Config) -> None:
    import secrets

    import requests
    from mlflow.server import get_app_client

    from lakehouse.security import credentials
    from lakehouse.stack import probes

    base = stack.mlflow.tracking_uri
    admin = (stack.mlflow.username, credentials.mlflow_password(stack))
    search = f"{base}/api/2.0/mlflow/experiments/search?max_results=5"
    assert requests.get(search, timeout=30).status_code == 401  # anonymous
    assert requests.get(search, auth=(admin[0], "password1234"), timeout=30).status_code == 401  # MLflow's old default
    assert requests.get(search, auth=(admin[0], admin[1] + "x"), timeout=30).status_code == 401
    assert requests.get(f"{base}/health", timeout=30).status_code == 200  # liveness stays open, and says nothing
    assert requests.get(search, auth=admin, timeout=30).status_code == 200
    refused = probes.mlflow(base, 30, (admin[0], "wrong"))
    assert not refused.ok and "HTTP 401" in refused.detail

    api = f"{base}/api/2.0/mlflow"
    name = f"auth-test-{uuid.uuid4().hex[:8]}"
    created = requests.post(f"{api}/experiments/create", json={"name": name}, auth=admin, timeout=30)
    experiment = created.json()["experiment_id"]
    run = requests.post(f"{api}/runs/create", json={"experiment_id": experiment}, auth=admin, timeout=30)
    run_id = run.json()["run"]["info"]["run_id"]
    reader = (f"reader-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16))
    get_app_client("basic-auth", tracking_uri=base).create_user(*reader)  # as the admin (the profile's env)

    got = requests.get(f"{api}/experiments/get", params={"experiment_id": experiment}, auth=reader, timeout=30)
    assert got.status_code == 200 and got.json()["experiment"]["name"] == name  # default permission READ
    delete_experiment = requests.post(f"{api}/experiments/delete", json={"experiment_id": experiment}, auth=reader,
                                      timeout=30)  # fmt: skip
    delete_run = requests.post(f"{api}/runs/delete", json={"run_id": run_id}, auth=reader, timeout=30)
    assert (delete_experiment.status_code, delete_run.status_code) == (403, 403)
    after = requests.get(f"{api}/experiments/get", params={"experiment_id": experiment}, auth=admin, timeout=30)
    assert after.json()["experiment"]["lifecycle_stage"] == "active"
    after_run = requests.get(f"{api}/runs/get", params={"run_id": run_id}, auth=admin, timeout=30)
    assert after_run.json()["run"]["info"]["lifecycle_stage"] == "active"

    # the refusals reach ops.audit_log of the primary (the server records them, the lakehouse exporter forwards)
    from lakehouse import audit

    deadline, seen = time.monotonic() + 90, []
    while time.monotonic() < deadline and len(seen) < 2:
        seen = [r for r in audit.read(stack.primary, "mlflow.access") if r["actor"] == f"mlflow:{reader[0]}"]
        time.sleep(3)
    assert sorted(r["target"] for r in seen) == [
        "POST /api/2.0/mlflow/experiments/delete", "POST /api/2.0/mlflow/runs/delete",
    ]  # fmt: skip
    assert {(r["outcome"], json.loads(r["detail"])["status"]) for r in seen} == {("denied", 403)}


@pytest.fixture(scope="module")
def demo(stack: Config) -> str:
    """`lakehouse demo` on the default profile (fills the region's tables); its output."""
    result = run_cli("demo", "--patients", "10", "--devices", "6", "--messages", "300", "--bad-fraction", "0.2")
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_demo_runs_the_whole_path_and_reconciles(demo: str) -> None:
    assert "-> balanced" in demo
    for table in ("bronze.telemetry", "silver.vitals", "silver.quarantine", "gold.news2", "gold.vitals_minute"):
        assert table in demo


DUPLICATE_ALERT = "dq-daily-test-duplicate"  # the alert id the test writes twice into gold.alerts (a blocking failure)
CHECKED = ("bronze.telemetry", "gold.alerts")  # the run's `tables` param: the others' tasks end as skipped


@pytest.fixture(scope="module")
def daily_checks(stack: Config, spark: SparkSession, demo: str) -> Iterator[tuple[DagRun, date]]:
    """A real run of data_quality_daily through Airflow's scheduler over the day the demo filled, with one
    blocking failure planted in that day's gold.alerts partition (removed afterwards)."""
    region = stack.primary
    day = spark.read.format("delta").load(uri(region, "bronze.telemetry")).agg(F.max("ingest_date")).first()
    assert day is not None and day[0] is not None
    moment = datetime.combine(day[0], datetime.min.time(), UTC)
    planted = {"alert_id": DUPLICATE_ALERT, "patient_ref": "dq-daily-test", "level": "high", "status": "closed",
               "opened_observation_time": moment, "opened_event_time": moment, "opened_time": moment,
               "latest_observation_time": moment, "opened_date": day[0]}  # fmt: skip
    alerts_uri = uri(region, "gold.alerts")
    spark.createDataFrame([planted, planted], ALERTS_SCHEMA).write.format("delta").mode("append").save(alerts_uri)
    client = AirflowClient.from_config(stack)
    client.wait_for_dag(DAILY, timeout_s=120)
    try:  # the partition to check is the demo's day; the logical date that of the due scheduled run, if any
        fallback = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)  # unique, after the start_date
        conf = {"date": day[0].isoformat(), "tables": list(CHECKED)}
        yield run_dag_once(client, DAILY, conf, client.due_scheduled_run(DAILY) or fallback, timeout_s=1200), day[0]
    finally:
        DeltaTable.forPath(spark, alerts_uri).delete(F.col("alert_id") == DUPLICATE_ALERT)


def test_data_quality_daily_runs_for_real_and_fails_on_a_blocking_expectation(
    stack: Config, spark: SparkSession, daily_checks: tuple[DagRun, date]
) -> None:
    run, day = daily_checks
    suites = sorted(p.stem for p in stack.quality.suites_dir.glob("*.yaml"))
    assert run.state == "failed", run.tasks
    # only the table with the planted failure fails; the other checked table's real data passed its suite, and
    # the tables left out of the `tables` param were skipped without a job
    assert run.tasks == {
        f"validate_{t.replace('.', '_')}": "skipped" if t not in CHECKED else "failed" if t == "gold.alerts"
        else "success" for t in suites
    }  # fmt: skip
    results = spark.read.format("delta").load(uri(stack.primary, "dq.results"))
    mine = results.filter(F.col("run_id") == f"{DAILY}:{run.run_id}")
    assert {r["table_name"] for r in mine.select("table_name").distinct().collect()} == set(CHECKED)
    assert {r["scope"] for r in mine.select("scope").distinct().collect()} >= {f"partition ingest_date={day}"}
    blocked = mine.filter("NOT success AND action = 'blocked'").select("table_name", "expectation").distinct().collect()
    assert [(r[0], r[1]) for r in blocked] == [("gold.alerts", "alert_id_unique")]


def test_datanode_probes_running_at_once_do_not_fail_each_other(stack: Config) -> None:
    """Two jobs starting together (two Airflow tasks) both probe HDFS: neither may see the other as an outage."""
    from concurrent.futures import ThreadPoolExecutor

    from lakehouse.stack import probes

    hdfs = stack.primary.hdfs
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: probes.hdfs_datanode(hdfs.webhdfs_url, hdfs.user), range(24)))
    assert [o.detail for o in outcomes if not o.ok] == []
