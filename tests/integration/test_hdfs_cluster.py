"""HDFS at cluster shape: a NameNode and three DataNodes of an isolated stack (replication 2). The bronze job
(`jobs/bronze_ingest.py`, its own Spark driver writing with the profile's replication) streams device messages from
the shared stack's Kafka into bronze.telemetry there; one DataNode is killed with kill -9 mid-ingest. At most one
micro-batch fails (the job is restarted once, as Airflow's retry would), nothing is lost or duplicated, and fsck
finds the file system healthy afterwards.

`make test` runs this module in its second lane (scripts/test.sh): its HDFS has ports and a state folder of its own;
of the shared stack it uses asia's Kafka and metastore, which the other lane brought up (waited for, never started).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from lakehouse.config import PROJECT_ROOT, Config, load_config
from lakehouse.devices import simulator
from lakehouse.security import encryption
from lakehouse.stack import jvm, manager, process
from lakehouse.tables import uri
from tests.conftest import run_cli, wait_for_services
from tests.isolated import env_for, write_isolated_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

SHIFT = -15000  # ports of its own (the other isolated stacks: -12000, -13000, -14000)
SERVICES = ("hdfs-namenode-asia", "hdfs-datanode-asia-1", "hdfs-datanode-asia-2", "hdfs-datanode-asia-3")
ROUNDS, PER_ROUND, KILL_IN_ROUND = 6, 1000, 2


@dataclass(frozen=True)
class Cluster:
    path: Path
    cfg: Config
    env: dict[str, str]


@pytest.fixture(scope="module")
def hdfs3(cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The isolated stack's asia HDFS with three DataNodes (replication 2), started and stopped as ops do; its
    profile takes the shared stack's asia Kafka and metastore, with topics and a catalog database of its own."""
    wait_for_services(cfg, ["kafka-asia", "metastore-asia"])
    state = tmp_path_factory.mktemp("hdfs3") / "state"
    path = write_isolated_config(state, shift=SHIFT)
    data = yaml.safe_load(path.read_text())
    shared = yaml.safe_load(cfg.source.read_text())["regions"]["asia"]
    asia = data["regions"]["asia"]
    asia["embedded"]["datanodes"] = 3
    asia["hdfs"]["replication"] = 2
    tag = uuid.uuid4().hex[:8]
    asia["kafka"] = shared["kafka"]
    asia["metastore"] = {**shared["metastore"], "database": f"hdfs3_{tag}"}
    data["topics"].update(telemetry=f"telemetry.hdfs3-{tag}", alerts=f"alerts.hdfs3-{tag}")
    path.write_text(yaml.safe_dump(data))
    # the deployment's master keys: this process's Spark reads the job's encrypted bronze columns
    env = {**env_for(path), "PYTHONPATH": str(PROJECT_ROOT), encryption.KEY_FILE_ENV: str(encryption.key_file(cfg))}
    names = [a for name in SERVICES for a in ("--service", name)]
    up = run_cli("stack", "up", *names, env=env, timeout=900)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield Cluster(path, load_config(str(path)), env)
    finally:
        down = run_cli("stack", "down", *names, env=env)
        assert down.returncode == 0, down.stdout + down.stderr


def _start_job(cluster: Cluster, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "jobs" / "bronze_ingest.py"), "--region", "asia"],
            stdout=out, stderr=subprocess.STDOUT, env=cluster.env, start_new_session=True,
        )  # fmt: skip


def _fsck(cluster: Cluster, path: str) -> str:
    namenode = next(s for s in manager.select(cluster.cfg, ["hdfs-namenode-asia"]))
    conf_dir = namenode.home / "etc"
    run = subprocess.run(
        [str(jvm.java_binary(cluster.cfg)), "-Xmx256m", "-cp", jvm.classpath(cluster.cfg, "hadoop", conf_dir),
         "org.apache.hadoop.hdfs.tools.DFSck", path],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "HADOOP_CONF_DIR": str(conf_dir), "HADOOP_USER_NAME": cluster.cfg.primary.hdfs.user},
    )  # fmt: skip
    return run.stdout + run.stderr


def test_a_datanode_killed_mid_ingest_fails_at_most_one_batch_and_loses_nothing(
    hdfs3: Cluster, spark: SparkSession, tmp_path: Path
) -> None:
    cfg, region = hdfs3.cfg, hdfs3.cfg.primary
    bronze = uri(region, "bronze.telemetry")
    log = tmp_path / "bronze_ingest.log"
    job, starts, sent = _start_job(hdfs3, log), 1, 0

    def stored() -> int:
        try:
            return int(spark.read.format("delta").load(bronze).count())
        except Exception:  # noqa: BLE001 -- not created yet (the job's first batch)
            return 0

    try:
        for n in range(ROUNDS):
            _, count = simulator.simulate(cfg, 12, rate=PER_ROUND / 10, seconds=10, realtime=False, seed=40 + n,
                                          prefix=f"h{n}", progress=lambda _: None)  # fmt: skip
            sent += count
            if n == KILL_IN_ROUND:  # a DataNode dies mid-ingest: as the job picks the round up (5 s trigger), with
                time.sleep(2)  # blocks of the earlier batches on it
                victim = next(s for s in manager.select(cfg, ["hdfs-datanode-asia-2"]))
                pid = process.read_pid(victim.pid_file)
                assert pid is not None and process.is_alive(pid)
                os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 240
            while stored() < sent and time.monotonic() < deadline:
                if job.poll() is not None:  # a failed batch stops the job: restarted, as a retry would
                    assert starts == 1, f"the bronze job failed twice:\n{log.read_text()[-3000:]}"
                    print(f"hdfs3: the bronze job exited ({job.returncode}) in round {n}; restarting it once")
                    job, starts = _start_job(hdfs3, log), starts + 1
                time.sleep(2)
            assert stored() >= sent, f"round {n}: bronze has {stored()} of {sent}:\n{log.read_text()[-3000:]}"
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(timeout=60)

    rows = spark.read.format("delta").load(bronze).select("partition", "offset")
    positions = {(int(r["partition"]), int(r["offset"])) for r in rows.collect()}
    total = rows.count()
    print(f"hdfs3: {sent} sent, {total} in bronze, job started {starts} time(s)")
    assert total == len(positions) == sent  # nothing lost, nothing twice (a retried batch is not appended again)

    report = _fsck(hdfs3, region.lakehouse_root)
    print(report[-1500:])
    assert "is HEALTHY" in report, report[-3000:]
    for kind in ("Missing blocks", "Corrupt blocks"):
        assert re.search(rf"{kind}:\s+0\b", report), report[-3000:]
