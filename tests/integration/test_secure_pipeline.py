"""The whole pipeline on a secure Kafka: a broker with SASL_SSL only, SCRAM users and ACLs (`kafka_security.enabled`,
started by `lakehouse stack up` on ports of its own, tests/isolated.py), the shared stack's HDFS and
metastore. Devices produce as `device`, the pipeline reads telemetry and publishes alerts as `pipeline`, a clinical
system reads the alerts as `clinical`; the counts reconcile exactly as on the plaintext broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from lakehouse import pipeline
from lakehouse.config import Config, load_config, write_sandbox_profile
from lakehouse.devices import simulator
from lakehouse.ingest.registry import register_assignments
from lakehouse.security import kafka_auth
from lakehouse.stack import probes
from lakehouse.tables import uri
from tests.conftest import run_cli, wait_for_services
from tests.isolated import env_for, write_isolated_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
SHIFT = -13000  # ports of its own: test_stack_lifecycle.py (the other lane) uses the default isolated shift


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The isolated stack's kafka-asia in secure mode (certificates, users, topics and ACLs made by `stack up`);
    its profile's data (never loaded here: loading a profile re-points this process's MLflow clients)."""
    state = tmp_path_factory.mktemp("secure") / "state"
    path = write_isolated_config(state, shift=SHIFT)
    data = yaml.safe_load(path.read_text())
    data["kafka_security"] = {"enabled": True}
    path.write_text(yaml.safe_dump(data))
    up = run_cli("stack", "up", "--service", "kafka-asia", env=env_for(path))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield {
            **data, "secrets_dir": str(state / "secrets" / "kafka"),
            "broker_log": str(state / "services" / "kafka-asia" / "logs" / "kafka-asia.log"),
        }  # fmt: skip
    finally:
        down = run_cli("stack", "down", "--service", "kafka-asia", env=env_for(path))
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="module")
def shared_hdfs(cfg: Config) -> Config:
    """The shared stack's HDFS and metastore of asia. `make test` runs this module in its second lane (after lint and
    the unit tests, scripts/test.sh) while the integration lane's session brings the stack up: it waits for them,
    never starts them (two `stack up` at once would race), and fails after 15 minutes."""
    wait_for_services(cfg, ["hdfs-namenode-asia", "hdfs-datanode-asia", "metastore-asia"])
    return cfg


@pytest.fixture(scope="module")
def secure_cfg(
    shared_hdfs: Config, secure_broker: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Config, str]:
    """A sandbox of the shared stack whose Kafka is the secure broker (its standard topics: the ACLs name them)."""
    path = write_sandbox_profile(shared_hdfs.source, tmp_path_factory.mktemp("profiles"), "secure")
    data = yaml.safe_load(path.read_text())
    bootstrap = secure_broker["regions"]["asia"]["kafka"]["bootstrap_servers"]
    for region in data["regions"].values():
        region["kafka"]["bootstrap_servers"] = bootstrap
    data["kafka_security"] = {"enabled": True, "secrets_dir": secure_broker["secrets_dir"]}
    data["topics"].update(telemetry=secure_broker["topics"]["telemetry"], alerts=secure_broker["topics"]["alerts"])
    path.write_text(yaml.safe_dump(data))
    return load_config(str(path)), secure_broker["broker_log"]


def test_the_pipeline_runs_end_to_end_on_sasl_ssl_and_each_user_keeps_to_its_part(
    spark: SparkSession, secure_cfg: tuple[Config, str]
) -> None:
    from kafka import KafkaConsumer

    (cfg, broker_log), region = secure_cfg, secure_cfg[0].primary
    assert not probes.kafka(region.kafka.bootstrap, 5).ok, "the broker has no plaintext path"
    fleet = simulator.make_fleet(12, seed=11, prefix="sec")
    register_assignments(
        cfg, region, simulator.fleet_assignments(fleet, datetime.now(UTC) - timedelta(hours=1), region.name)
    )
    sim, sent = simulator.simulate(
        cfg, 12, rate=10, seconds=120, bad_fraction=0.3, seed=11, realtime=False, prefix="sec", progress=lambda _: None
    )  # as `device`
    pipeline.run_once(spark, cfg, region, progress=print)  # reads telemetry, publishes alerts: as `pipeline`

    e = sim.expected
    rec = pipeline.reconcile(spark, region)
    assert rec.bronze_rows == sent and rec.balanced
    assert (rec.accepted, rec.quarantined, rec.duplicate) == (
        e.messages_accepted, e.messages_quarantined, e.messages_duplicate
    )  # fmt: skip
    vitals = spark.read.format("delta").load(uri(region, "silver.vitals"))
    assert vitals.count() == e.measurements_accepted

    # a clinical system reads every alert gold.alerts holds from the secure topic, as `clinical`
    stored = {r["alert_id"] for r in spark.read.format("delta").load(uri(region, "gold.alerts")).collect()}
    assert stored, "the simulated fleet raised no alert: nothing was published"
    consumer = KafkaConsumer(
        cfg.topics.alerts, bootstrap_servers=region.kafka.bootstrap, group_id="clinical-secure-e2e",
        auto_offset_reset="earliest", consumer_timeout_ms=15000,
        **kafka_auth.client_kwargs(region.kafka, kafka_auth.CLINICAL),
    )  # fmt: skip
    try:
        published = [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()
    assert stored <= {a["alert_id"] for a in published if a["status"] == "open"}

    # the ACLs give each role what its part needs: the authorizer denied nothing to the devices or the pipeline
    denied = [line for line in Path(broker_log).read_text().splitlines() if " is Denied " in line]
    assert not [line for line in denied if "User:device " in line or "User:pipeline " in line], denied[:5]
