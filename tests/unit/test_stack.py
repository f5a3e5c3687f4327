"""Unit tests of the embedded stack's pure helpers (no processes started)."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest

from lakehouse.config import load_config
from lakehouse.stack import services


def test_cluster_id_never_starts_with_a_dash() -> None:
    # 0xF8 encodes to '-' as the first URL-safe base64 character: kafka-storage would
    # read such an id as an option ("--cluster-id: expected one argument").
    draws = iter([b"\xf8" + bytes(15), b"\x10" + bytes(15)])
    cid = services.new_cluster_id(lambda n: next(draws))
    assert not cid.startswith("-")
    assert base64.urlsafe_b64decode(cid + "==") == b"\x10" + bytes(15)


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {services.new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_embedded_mlflow_caches_verified_credentials_as_configured(tmp_path: Path) -> None:
    """The basic-auth app checks a password hash (scrypt, ~0.5 CPU s) on every request unless MLflow's credential
    cache is on: the server's auth config carries the profile's TTL, and MLflow's own reader takes it."""
    from mlflow.server.auth.config import read_auth_config

    base = load_config()
    for ttl in (60, 0):
        cfg = replace(
            base,
            state_dir=tmp_path,
            mlflow=replace(
                base.mlflow,
                password_file=tmp_path / "pw",
                artifacts_uri=(tmp_path / "a").as_uri(),
                auth_cache_ttl_s=ttl,
            ),
        )
        [server] = [s for s in services.services(cfg) if s.name == "mlflow"]
        assert isinstance(server, services.MlflowServer)
        server.prepare(cfg, Path("java"))
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_AUTH_CONFIG_PATH", str(server.auth_config))
            assert read_auth_config().auth_cache_ttl_seconds == ttl


def test_the_spark_cluster_is_optional_and_runs_pyspark_own_master_and_workers(tmp_path: Path) -> None:
    from lakehouse.stack import manager

    cfg = replace(load_config(), state_dir=tmp_path)
    sc = cfg.spark_cluster
    assert sc is not None and sc.embedded
    cluster = services.spark_cluster_services(cfg)
    assert [s.name for s in cluster] == ["spark-master"] + [f"spark-worker-{i}" for i in range(1, sc.workers + 1)]
    assert all(s.optional and s.managed for s in cluster)
    assert not {s.name for s in cluster} & {s.name for s in manager.select(cfg)}  # plain `stack up` never starts it
    master, *workers = cluster
    command = master.command(cfg, Path("java"))
    assert command[0].endswith("pyspark/bin/spark-class") and "org.apache.spark.deploy.master.Master" in command
    assert command[command.index("--port") + 1] == sc.master_url.rsplit(":", 1)[1]
    ports = set()
    for worker in workers:
        assert isinstance(worker, services.SparkStandalone)
        worker.prepare(cfg, Path("java"))
        command = worker.command(cfg, Path("java"))
        assert "org.apache.spark.deploy.worker.Worker" in command and command[-1] == sc.master_url
        assert command[command.index("--cores") + 1] == str(sc.worker_cores)
        assert command[command.index("--memory") + 1] == sc.worker_memory
        assert str(worker.home) in " ".join(command)  # the marker `stack down` finds it by
        assert worker.properties_file.is_file()
        ports |= set(worker.ports)
    assert len(ports) == 2 * sc.workers and not ports & set(master.ports)
    every = [p for s in services.services(cfg) for p in s.ports]
    assert len(every) == len(set(every)), "two services of the profile share a port"


def test_a_cluster_profile_checks_the_platforms_master_only() -> None:
    from lakehouse.config import CONF_DIR

    cfg = load_config(str(CONF_DIR / "cluster.yaml"))
    (master,) = services.spark_cluster_services(cfg)
    assert master.name == "spark-master" and not master.managed and master.ports == ()


def test_submit_composes_spark_submit_with_the_jobs_settings_on_the_chosen_master() -> None:
    from lakehouse import session
    from lakehouse.config import PROJECT_ROOT
    from lakehouse.errors import ConfigError

    cfg = load_config()
    assert cfg.spark_cluster is not None
    command = session.submit_command(cfg, "pipeline", ["--region", "asia", "--once"], "cluster")
    assert command[0].endswith("pyspark/bin/spark-submit")
    assert command[command.index("--master") + 1] == cfg.spark_cluster.master_url
    assert command[command.index("--deploy-mode") + 1] == "client"
    assert command[-4:] == [str(PROJECT_ROOT / "jobs" / "pipeline.py"), "--region", "asia", "--once"]
    conf = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "--conf")
    assert "spark.master" not in conf  # --master only
    assert conf["spark.executor.memory"] == cfg.spark_cluster.executor_memory
    assert conf["spark.driver.host"] == "127.0.0.1"  # the executors reach the driver on loopback
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension" and conf["spark.jars"]
    assert conf["spark.driver.memory"] == cfg.spark.driver_memory
    train = session.submit_command(cfg, "train", [], "local[2]")
    conf = dict(train[i + 1].split("=", 1) for i, a in enumerate(train) if a == "--conf")
    assert conf["spark.driver.memory"] == cfg.ml.driver_memory and "spark.executor.memory" not in conf
    assert train[train.index("--master") + 1] == "local[2]"
    k8s = session.submit_command(cfg, "pipeline", [], "k8s://https://api.example:6443")
    assert k8s[k8s.index("--master") + 1] == "k8s://https://api.example:6443"
    with pytest.raises(ConfigError, match="no job 'nope'") as err:
        session.submit_command(cfg, "nope", [], "cluster")
    assert err.value.fix is not None and "pipeline" in err.value.fix
    with pytest.raises(ConfigError, match="is not a Spark master"):
        session.submit_command(cfg, "pipeline", [], "http://127.0.0.1:17077")
    no_cluster = replace(cfg, spark_cluster=None)
    with pytest.raises(ConfigError, match="no spark_cluster section"):
        session.submit_command(no_cluster, "pipeline", [], "cluster")


def test_a_driver_spark_submit_launched_keeps_the_submit_commands_master(monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse import session

    cfg = load_config()
    monkeypatch.delenv(session.SUBMITTED_VAR, raising=False)
    assert session.session_conf(cfg, "x")["spark.master"] == cfg.spark.master
    monkeypatch.setenv(session.SUBMITTED_VAR, "12345")
    conf = session.session_conf(cfg, "x")
    assert "spark.master" not in conf and conf["spark.app.name"] == "x"


def test_a_region_of_three_embedded_brokers_is_one_kraft_quorum(tmp_path: Path) -> None:
    """Three bootstrap servers of an embedded region: three nodes kafka-asia-1..3, each a broker and a voter of
    one quorum (controller i on kafka_controller_port + i - 1), formatted with one cluster id, topics replicated
    as the profile says (factor 3, 2 in sync) and the brokers' own topics as well."""
    import yaml

    from lakehouse.config import CONF_DIR

    data = yaml.safe_load((CONF_DIR / "local.yaml").read_text())
    data["regions"]["asia"]["kafka"]["bootstrap_servers"] = [f"127.0.0.1:{p}" for p in (19092, 19192, 19292)]
    data["topics"].update(replication_factor=3, min_insync_replicas=2)
    data["state_dir"] = str(tmp_path / "state")
    (tmp_path / "three.yaml").write_text(yaml.safe_dump(data))
    cfg = load_config(str(tmp_path / "three.yaml"))
    kafka = [s for s in services.services(cfg) if s.kind == "kafka"]
    assert [(s.name, s.ports) for s in kafka] == [
        ("kafka-asia-1", (19092, 19093)), ("kafka-asia-2", (19192, 19094)), ("kafka-asia-3", (19292, 19095)),
        ("kafka-europe", (29092, 29093)),
    ]  # fmt: skip
    brokers = [s for s in kafka if isinstance(s, services.KafkaBroker) and s.region == "asia"]
    props = [dict(line.split("=", 1) for line in b._properties(cfg).splitlines() if "=" in line) for b in brokers]
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {"1@127.0.0.1:19093,2@127.0.0.1:19094,3@127.0.0.1:19095"}
    assert props[1]["listeners"] == "PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19094"
    for p in props:
        assert (p["default.replication.factor"], p["min.insync.replicas"]) == ("3", "2")
        assert (p["offsets.topic.replication.factor"], p["transaction.state.log.min.isr"]) == ("3", "2")
    assert len({b.cluster_id_file for b in brokers}) == 1 and len({b.data_dir for b in brokers}) == 3
    # the single-broker default keeps its name, its own cluster id and unreplicated internal topics
    (europe,) = [s for s in kafka if isinstance(s, services.KafkaBroker) and s.region == "europe"]
    single = dict(line.split("=", 1) for line in europe._properties(cfg).splitlines() if "=" in line)
    assert (
        single["controller.quorum.voters"] == "1@127.0.0.1:29093" and single["offsets.topic.replication.factor"] == "1"
    )
    assert single["min.insync.replicas"] == "1" and europe.cluster_id_file == europe.home / "cluster.id"


def test_a_region_of_three_datanodes_replicates_each_block_twice(tmp_path: Path) -> None:
    """embedded.datanodes 3: hdfs-datanode-asia-1..3, ports 100 apart, a block folder each; the NameNode's and the
    jobs' HDFS clients' replication is the region's (2); europe keeps one DataNode and replication 1."""
    import yaml

    from lakehouse.config import CONF_DIR
    from lakehouse.session import spark_conf

    data = yaml.safe_load((CONF_DIR / "local.yaml").read_text())
    data["regions"]["asia"]["embedded"]["datanodes"] = 3
    data["regions"]["asia"]["hdfs"]["replication"] = 2
    data["state_dir"] = str(tmp_path / "state")
    (tmp_path / "three.yaml").write_text(yaml.safe_dump(data))
    cfg = load_config(str(tmp_path / "three.yaml"))
    hdfs = [s for s in services.services(cfg) if isinstance(s, services.HdfsDaemon)]
    assert [(s.name, s.ports) for s in hdfs if s.region == "asia"] == [
        ("hdfs-namenode-asia", (19000, 19870)), ("hdfs-datanode-asia-1", (19866, 19864, 19867)),
        ("hdfs-datanode-asia-2", (19966, 19964, 19967)), ("hdfs-datanode-asia-3", (20066, 20064, 20067)),
    ]  # fmt: skip
    sites = {s.name: s._site()[1] for s in hdfs}
    assert sites["hdfs-datanode-asia-3"]["dfs.datanode.address"] == "127.0.0.1:20066"
    assert len({sites[f"hdfs-datanode-asia-{i}"]["dfs.datanode.data.dir"] for i in (1, 2, 3)}) == 3
    assert {sites[n]["dfs.replication"] for n in sites if "asia" in n} == {"2"}
    assert sites["hdfs-datanode-europe"]["dfs.replication"] == "1"
    assert spark_conf(cfg, "t")["spark.hadoop.dfs.replication"] == "2"


@pytest.mark.parametrize(("datanodes", "replication", "message"), [(0, 1, "datanodes must be 1 to 9"),
                         (2, 3, "replication must be 1 to the region's 2 DataNode")])  # fmt: skip
def test_replication_beyond_the_datanodes_is_refused(
    tmp_path: Path, datanodes: int, replication: int, message: str
) -> None:
    import yaml

    from lakehouse.config import CONF_DIR
    from lakehouse.errors import ConfigError

    data = yaml.safe_load((CONF_DIR / "local.yaml").read_text())
    data["regions"]["asia"]["embedded"]["datanodes"] = datanodes
    data["regions"]["asia"]["hdfs"]["replication"] = replication
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_config(str(tmp_path / "bad.yaml"))


def test_a_submitted_job_reads_relative_paths_from_the_callers_folder(tmp_path: Path) -> None:
    """`lakehouse submit` runs spark-submit in the caller's folder: a relative path among the job's arguments names
    the file it names in the caller's shell (build_features checks its archive before anything else, then finds
    no HDFS at the sandbox's refused port; a job run from another folder would report the archive missing)."""
    import os
    import subprocess

    import yaml

    from lakehouse.config import CONF_DIR
    from lakehouse.devices import physionet
    from tests.conftest import CLI

    data = yaml.safe_load((CONF_DIR / "local.yaml").read_text())
    data["state_dir"] = str(tmp_path / "state")
    for region in data["regions"].values():
        region["hdfs"].update(namenode_uri="hdfs://127.0.0.1:9", webhdfs_url="http://127.0.0.1:9")
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "sample.tar.gz").symlink_to(physionet.SAMPLE_ARCHIVE)
    env = {**os.environ, "LAKEHOUSE_ENV": str(tmp_path / "sandbox.yaml")}

    def submit(archive: str) -> subprocess.CompletedProcess[str]:
        command = [*CLI, "submit", "--master", "local[1]", "build_features", "--", "--psv", archive]
        here = tmp_path / "here"
        return subprocess.run(command, cwd=here, env=env, capture_output=True, text=True, timeout=300, check=False)

    found = submit("sample.tar.gz")  # spark-submit merges the Python driver's stderr into its stdout
    assert "does not exist" not in found.stdout
    assert found.returncode != 0 and "hdfs-namenode-asia is not available" in found.stdout, found.stdout[-2000:]
    missing = submit("elsewhere.tar.gz")
    assert missing.returncode != 0 and "PhysioNet data elsewhere.tar.gz does not exist" in missing.stdout
