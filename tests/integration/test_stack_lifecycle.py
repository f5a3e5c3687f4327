"""`lakehouse stack` on a second, isolated stack (own ports and state): lifecycle and every start-up fault.

Each fault must give one clear error naming cause and fix, a non-zero exit, no traceback, and leave
no process of that stack running.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.stack import process
from tests.conftest import run_cli
from tests.isolated import PORT_SHIFT, env_for, write_isolated_config

pytestmark = pytest.mark.integration

SUBSET = ["kafka-asia", "hdfs-namenode-asia", "hdfs-datanode-asia", "mlflow"]
AIRFLOW = ["airflow-api-server", "airflow-dag-processor", "airflow-scheduler"]  # one port: the api-server's
LIFECYCLE = SUBSET + AIRFLOW


def processes_of(state: Path) -> list[int]:
    """Live pids whose command line mentions this stack's state folder."""
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and process.is_alive(int(p.name)) and str(state) in process.cmdline(int(p.name))
    ]


def services_args(names: list[str]) -> list[str]:
    return [a for n in names for a in ("--service", n)]


@pytest.fixture()
def isolated(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    for pid in processes_of(state):  # never leak a process, even when a test fails
        process.stop(pid, 10)


def assert_clean_failure(result: Any, state: Path, *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "error: " in result.stderr and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert "fix: " in result.stderr
    assert processes_of(state) == []


def test_up_status_up_again_down(isolated: Path) -> None:
    env = env_for(write_isolated_config(isolated))
    up = run_cli("stack", "up", *services_args(LIFECYCLE), env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.count("ready in") == len(LIFECYCLE)

    status = json.loads(run_cli("stack", "status", "--json", *services_args(LIFECYCLE), env=env).stdout)
    assert status["healthy"] and all(s["healthy"] and s["pid"] for s in status["services"])
    pids = {s["name"]: s["pid"] for s in status["services"]}
    assert {s["port"] for s in status["services"]} == {
        19092 + PORT_SHIFT,
        19000 + PORT_SHIFT,
        19866 + PORT_SHIFT,
        15000 + PORT_SHIFT,
        18080 + PORT_SHIFT,
    }

    again = run_cli("stack", "up", *services_args(LIFECYCLE), env=env)
    assert again.returncode == 0 and again.stdout.count("already running") == len(LIFECYCLE)
    status2 = json.loads(run_cli("stack", "status", "--json", *services_args(LIFECYCLE), env=env).stdout)
    assert {s["name"]: s["pid"] for s in status2["services"]} == pids

    groups = {pid: process.group_members(pid) for pid in pids.values()}  # JVMs, MLflow and Airflow with their workers
    assert all(groups.values())
    down = run_cli("stack", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("stopped (pid") == len(LIFECYCLE)
    assert processes_of(isolated) == []
    assert [p for members in groups.values() for p in members if process.is_alive(p)] == []
    for svc in status["services"]:
        assert not process.port_in_use("127.0.0.1", svc["port"])
    # data stays: the NameNode's formatted image and the MLflow database survive `down`
    assert (isolated / "hdfs" / "asia" / "name" / "current" / "VERSION").exists()
    assert (isolated / "services" / "mlflow" / "mlflow.db").exists()
    assert (isolated / "services" / "airflow" / "airflow.db").exists()
    after = json.loads(run_cli("stack", "status", "--json", *services_args(LIFECYCLE), env=env).stdout)
    assert after["healthy"] is False and not any(s["running"] for s in after["services"])


def test_port_already_taken(isolated: Path) -> None:
    env = env_for(write_isolated_config(isolated))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 19092 + PORT_SHIFT))
        squatter.listen()
        result = run_cli("stack", "up", *services_args(SUBSET), env=env)
    assert_clean_failure(result, isolated, f"port {19092 + PORT_SHIFT} (kafka-asia) is already in use")


def test_service_that_does_not_become_ready_is_stopped(isolated: Path) -> None:
    env = env_for(write_isolated_config(isolated, ready_timeout_s=1))
    result = run_cli("stack", "up", "--service", "mlflow", env=env)
    assert_clean_failure(result, isolated, "mlflow did not become ready within 1s")


def test_service_that_crashes_at_start_is_reported_with_its_log(isolated: Path) -> None:
    config = write_isolated_config(isolated)
    data = yaml.safe_load(config.read_text())
    data["regions"]["asia"]["embedded"]["heap"]["kafka"] = "1k"  # the JVM refuses to start
    config.write_text(yaml.safe_dump(data))
    result = run_cli("stack", "up", "--service", "mlflow", "--service", "kafka-asia", env=env_for(config))
    assert_clean_failure(result, isolated, "kafka-asia", "last lines of")


def test_missing_java(isolated: Path) -> None:
    env = env_for(write_isolated_config(isolated), JAVA_HOME=str(isolated / "no-jdk"))
    result = run_cli("stack", "up", "--service", "kafka-asia", env=env)
    assert_clean_failure(result, isolated, f"Java was not found at {isolated / 'no-jdk' / 'bin' / 'java'}", "JDK 17")


def test_job_started_while_stack_is_down(isolated: Path) -> None:
    env = env_for(write_isolated_config(isolated))
    result = run_cli("demo", "--messages", "10", env=env)
    assert_clean_failure(result, isolated, "kafka-asia is not available", "run `lakehouse stack up`")


def test_unknown_service_name(isolated: Path) -> None:
    result = run_cli("stack", "up", "--service", "zookeeper", env=env_for(write_isolated_config(isolated)))
    assert_clean_failure(result, isolated, "unknown service(s): zookeeper", "kafka-europe")


def test_secure_kafka_authenticates_encrypts_and_gives_each_user_only_its_part(
    isolated: Path, spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kafka_security.enabled on an isolated broker: SASL_SSL only, SCRAM users, ACLs (deny by default)."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAuthorizationFailedError

    from lakehouse.config import load_config
    from lakehouse.io import kafka
    from lakehouse.security import kafka_auth
    from lakehouse.security.credentials import MLFLOW_PASSWORD_ENV, MLFLOW_USER_ENV
    from lakehouse.stack import probes

    for name in (MLFLOW_USER_ENV, MLFLOW_PASSWORD_ENV):  # loading the isolated profile re-points MLflow's clients
        monkeypatch.setenv(name, os.environ.get(name, ""))
    path = write_isolated_config(isolated)
    data = yaml.safe_load(path.read_text())
    data["kafka_security"] = {"enabled": True}
    path.write_text(yaml.safe_dump(data))
    up = run_cli("stack", "up", "--service", "kafka-asia", env=env_for(path))
    assert up.returncode == 0, up.stdout + up.stderr
    cfg = load_config(str(path))
    region, topics = cfg.regions["asia"], cfg.topics
    auth = region.kafka.auth
    assert auth is not None and auth.secrets_dir == isolated / "secrets" / "kafka"
    properties = isolated / "services" / "kafka-asia" / "server.properties"
    assert kafka_auth.password(auth, kafka_auth.ADMIN) in properties.read_text()  # so it is owner-only too
    for secret_file in [*(auth.password_file(user) for user in kafka_auth.USERS), properties]:
        assert oct(secret_file.stat().st_mode & 0o777) == "0o600", secret_file
    broker_log = isolated / "services" / "kafka-asia" / "logs" / "kafka-asia.log"
    bootstrap = region.kafka.bootstrap

    # no plaintext path, and a wrong password is refused by the broker
    assert not probes.kafka(bootstrap, 5).ok
    wrong = {**kafka_auth.client_kwargs(region.kafka, kafka_auth.DEVICE), "sasl_plain_password": "not-it"}
    assert not probes.kafka(bootstrap, 5, wrong).ok
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in broker_log.read_text()

    # devices write telemetry (through the project's own producer), nothing else
    readings = [(f"dev-{i}", f'{{"n": {i}}}'.encode()) for i in range(5)]
    assert kafka.produce(region, topics.telemetry, readings, user=kafka_auth.DEVICE) == 5
    as_device = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=20000,
                              **kafka_auth.client_kwargs(region.kafka, kafka_auth.DEVICE))  # fmt: skip
    with pytest.raises(TopicAuthorizationFailedError):
        as_device.send(topics.alerts, b"forged alert").get(timeout=30)
    as_device.close()

    # the pipeline reads telemetry (kafka-python and Spark's Kafka source over SASL_SSL), writes alerts, not telemetry
    assert sum(kafka.end_offsets(region, topics.telemetry).values()) == 5
    rows = kafka.read_kafka(spark, region, topics.telemetry, streaming=False).collect()
    assert sorted(bytes(r.value) for r in rows) == sorted(v for _, v in readings)
    as_pipeline = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=20000,
                                **kafka_auth.client_kwargs(region.kafka, kafka_auth.PIPELINE))  # fmt: skip
    as_pipeline.send(topics.alerts, key=b"p1", value=b'{"level": "emergency"}').get(timeout=30)
    with pytest.raises(TopicAuthorizationFailedError):
        as_pipeline.send(topics.telemetry, b"forged reading").get(timeout=30)
    as_pipeline.close()

    # clinical systems read alerts, and are denied telemetry
    clinical = kafka_auth.client_kwargs(region.kafka, kafka_auth.CLINICAL)
    consumer = KafkaConsumer(topics.alerts, bootstrap_servers=bootstrap, group_id="clinical-ward-7",
                             auto_offset_reset="earliest", consumer_timeout_ms=15000, **clinical)  # fmt: skip
    assert [m.value for m in consumer] == [b'{"level": "emergency"}']
    consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **clinical)
    try:
        with pytest.raises(KafkaError):
            described = admin.describe_topics([topics.telemetry])
            if any(t.get("error_code") for t in described):  # older clients report it in the result
                raise TopicAuthorizationFailedError(str(described))
    finally:
        admin.close()
    denied = [line for line in broker_log.read_text().splitlines() if "kafka.authorizer.logger" in line]
    assert any("User:clinical is Denied" in line and f"Topic:LITERAL:{topics.telemetry}" in line for line in denied)
    assert any("User:device is Denied" in line and f"Topic:LITERAL:{topics.alerts}" in line for line in denied)
    # what the exporter appends to ops.audit_log from this real log (its write path is the HDFS refusals')
    from lakehouse.security import kafka_audit

    audited = [r for r in (kafka_audit.parse(line, "asia") for line in broker_log.read_text().splitlines()) if r]
    who = {(r["actor"], r["target"]) for r in audited}
    assert {("kafka:clinical", f"Topic:{topics.telemetry}"), ("kafka:device", f"Topic:{topics.alerts}"),
            ("kafka:unauthenticated", "authentication")} <= who  # fmt: skip
    assert not any(r["actor"] in ("kafka:admin", "kafka:ANONYMOUS") for r in audited)
