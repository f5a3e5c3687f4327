"""Kafka at cluster shape: three KRaft brokers of an isolated stack (`lakehouse stack up --service kafka-asia-1
...`: replication factor 3, min.insync.replicas 2). The leader of the telemetry topic's first partition is killed
with kill -9 while devices produce (acks=all, idempotent) and the bronze stream reads: every acknowledged record
lands in bronze.telemetry, on the shared stack's HDFS, exactly once.

`make test` runs this module in its second lane (scripts/test.sh): its brokers have ports and a state folder of
their own; of the shared stack it uses asia's HDFS, which the other lane brought up (waited for, never started).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from lakehouse import pipeline
from lakehouse.config import Config, load_config, write_sandbox_profile
from lakehouse.devices import simulator
from lakehouse.ingest import bronze
from lakehouse.stack import manager, process
from lakehouse.tables import uri
from tests.conftest import run_cli, wait_for_services
from tests.isolated import env_for, write_isolated_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

SHIFT = -14000  # ports of its own (test_stack_lifecycle.py: -12000, test_secure_pipeline.py: -13000)
BROKERS = ("kafka-asia-1", "kafka-asia-2", "kafka-asia-3")
MESSAGES = 3000
KILL_AFTER = 1000


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """The isolated stack's asia Kafka as three brokers, started and stopped as ops do (`stack up --service`)."""
    state = tmp_path_factory.mktemp("kafka3") / "state"
    path = write_isolated_config(state, shift=SHIFT)
    data = yaml.safe_load(path.read_text())
    first = 19092 + SHIFT
    data["regions"]["asia"]["kafka"]["bootstrap_servers"] = [f"127.0.0.1:{first + k}" for k in (0, 100, 200)]
    data["topics"].update(replication_factor=3, min_insync_replicas=2)
    path.write_text(yaml.safe_dump(data))
    env = env_for(path)
    names = [a for name in BROKERS for a in ("--service", name)]
    up = run_cli("stack", "up", *names, env=env, timeout=900)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield load_config(str(path))
    finally:
        down = run_cli("stack", "down", *names, env=env)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def sandbox(cfg: Config, brokers: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A sandbox of the shared stack (its own tables and topics on asia's HDFS) whose asia Kafka is the three
    brokers, its topics replicated as theirs."""
    wait_for_services(cfg, ["hdfs-namenode-asia", "hdfs-datanode-asia", "metastore-asia"])
    path = write_sandbox_profile(cfg.source, tmp_path_factory.mktemp("profiles"), "kafka3")
    data = yaml.safe_load(path.read_text())
    data["regions"]["asia"]["kafka"]["bootstrap_servers"] = list(brokers.regions["asia"].kafka.bootstrap_servers)
    data["topics"].update(replication_factor=3, min_insync_replicas=2)
    path.write_text(yaml.safe_dump(data))
    return load_config(str(path))


def _partition_0(bootstrap: str, topic: str) -> dict[str, Any]:
    """Leader, replicas and in-sync replicas of the topic's first partition, as the cluster reports them."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kafka3-test")
    try:
        (described,) = admin.describe_topics([topic])
        for p in described["partitions"]:  # the metadata response's field names (older clients: partition, leader)
            if p.get("partition_index", p.get("partition")) == 0:
                return {"leader": p.get("leader_id", p.get("leader")), "replicas": p.get("replica_nodes", p.get("replicas")),
                        "isr": p.get("isr_nodes", p.get("isr"))}  # fmt: skip
        raise AssertionError(f"{topic} has no partition 0: {described}")
    finally:
        admin.close()


def _bronze_values(spark: SparkSession, cfg: Config) -> list[tuple[int, int, bytes]]:
    rows = spark.read.format("delta").load(uri(cfg.primary, "bronze.telemetry")).select("partition", "offset", "value")
    return [(int(r["partition"]), int(r["offset"]), bytes(r["value"])) for r in rows.collect()]


def test_a_broker_killed_while_producing_and_streaming_loses_no_acknowledged_record_and_duplicates_none(
    brokers: Config, sandbox: Config, spark: SparkSession
) -> None:
    region = sandbox.primary
    pipeline.prepare(spark, sandbox, region)  # the topics (factor 3, 2 in sync) and the tables
    topic = sandbox.topics.telemetry
    before = _partition_0(region.kafka.bootstrap, topic)
    assert sorted(before["replicas"]) == [1, 2, 3] and len(before["isr"]) == 3, before
    leader = int(before["leader"])
    query = bronze.start_bronze(spark, sandbox, region, False)  # streaming on its processing-time trigger
    try:
        _produce_kill_and_check(spark, sandbox, brokers, leader, query)
    finally:
        query.stop()


def _produce_kill_and_check(spark: SparkSession, sandbox: Config, brokers: Config, leader: int, query: Any) -> None:
    from kafka import KafkaProducer

    region, topic = sandbox.primary, sandbox.topics.telemetry
    producer = KafkaProducer(
        bootstrap_servers=region.kafka.bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
        retries=2_147_483_647, request_timeout_ms=10_000, delivery_timeout_ms=180_000, client_id="kafka3-devices",
    )  # fmt: skip
    sim = simulator.Simulator(12, 31, 0.0, start=datetime.now(UTC) - timedelta(minutes=10), prefix="k3")
    futures: list[tuple[bytes, Any]] = []
    killed_at = None
    try:
        for n, (key, value) in enumerate(sim.messages(MESSAGES, rate=100)):
            if n == KILL_AFTER:  # the partition leader dies mid-stream: no shutdown, no leadership hand-over
                victim = next(s for s in manager.select(brokers, [f"kafka-asia-{leader}"]))
                pid = process.read_pid(victim.pid_file)
                assert pid is not None and process.is_alive(pid)
                os.killpg(pid, signal.SIGKILL)
                killed_at = time.monotonic()
            futures.append((value, producer.send(topic, key=key.encode(), value=value)))
            time.sleep(0.005)
        producer.flush(timeout=180)
    finally:
        producer.close(timeout=30)
    acked, failed = {}, []
    for value, future in futures:
        try:
            meta = future.get(timeout=1)
            acked[(meta.partition, meta.offset)] = value
        except Exception as exc:  # noqa: BLE001 -- a record the producer gave up on is not acknowledged
            failed.append(repr(exc))
    assert killed_at is not None
    print(f"kafka3: killed broker {leader} (leader of partition 0); {len(acked)} of {MESSAGES} acknowledged")
    assert not failed and len(acked) == MESSAGES, failed[:3]  # two brokers in sync: every send goes through
    after = _partition_0(region.kafka.bootstrap, topic)
    assert int(after["leader"]) != leader and leader not in after["isr"], after

    # every acknowledged record reaches bronze while the stream runs on the two brokers left
    deadline, stored = time.monotonic() + 300, []
    while time.monotonic() < deadline:
        assert query.exception() is None, query.exception()
        stored = _bronze_values(spark, sandbox)
        if {(p, o) for p, o, _ in stored} >= acked.keys():
            break
        time.sleep(5)
    by_position = {(p, o): v for p, o, v in stored}
    missing = [pos for pos in acked if pos not in by_position]
    assert not missing, f"{len(missing)} acknowledged records not in bronze, e.g. {missing[:5]}"
    assert all(by_position[pos] == value for pos, value in acked.items())
    # none twice: not at one position (the sink's exactly-once), not as one message at two (the producer's retries)
    assert len(by_position) == len(stored), "a Kafka position is in bronze twice"
    twice = [v for v, k in Counter(v for _, _, v in stored).items() if k > 1]
    assert not twice, f"{len(twice)} messages are in bronze twice"
    assert len(stored) == len(acked) == len(set(acked.values())) == MESSAGES
