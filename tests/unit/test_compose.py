"""docker-compose.yml describes the deployment conf/cluster.yaml points at (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from lakehouse.config import CONF_DIR, PROJECT_ROOT, load_config

COMPOSE: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
CLUSTER = load_config(str(CONF_DIR / "cluster.yaml"))


def _endpoints() -> list[tuple[str, str]]:
    """Every host:port conf/cluster.yaml connects to, with what it is."""
    out: list[tuple[str, str]] = []
    for region in CLUSTER.regions.values():
        out += [(f"kafka {region.name}", s) for s in region.kafka.bootstrap_servers]
        out += [(f"namenode rpc {region.name}", region.hdfs.namenode_uri)]
        out += [(f"webhdfs {region.name}", region.hdfs.webhdfs_url)]
        out += [(f"hive metastore {region.name}", region.metastore.uri or "")]
    out += [("spark master", CLUSTER.spark.master), ("mlflow", CLUSTER.mlflow.tracking_uri)]
    out += [("spark connect", CLUSTER.spark_connect.url), ("airflow api", CLUSTER.airflow.url)]
    out += [("mlflow artifacts", CLUSTER.mlflow.artifacts_uri)]
    assert CLUSTER.spark_cluster is not None
    out += [
        ("spark cluster master", CLUSTER.spark_cluster.master_url),
        ("spark master ui", CLUSTER.spark_cluster.web_url),
    ]
    obs = CLUSTER.observability
    out += [("prometheus", obs.prometheus_url), ("pushgateway", obs.pushgateway_url)]
    out += [("lakehouse exporter", obs.exporter_url)]
    out += [(f"pipeline metrics {region}", endpoint) for region, endpoint in obs.pipeline_metrics.items()]
    return out


@pytest.mark.parametrize(("what", "endpoint"), _endpoints())
def test_every_cluster_endpoint_is_a_compose_service_exposing_that_port(what: str, endpoint: str) -> None:
    parsed = urlparse(endpoint if "://" in endpoint else f"tcp://{endpoint}")
    assert parsed.hostname in SERVICES, f"{what}: no compose service named {parsed.hostname}"
    svc = SERVICES[parsed.hostname]
    exposed = {str(p) for p in svc.get("expose", [])} | {str(p).split(":")[-1] for p in svc.get("ports", [])}
    assert str(parsed.port) in exposed, f"{what}: {parsed.hostname} does not expose {parsed.port}"


def test_kafka_brokers_advertise_their_own_name_and_match_replication() -> None:
    for region in CLUSTER.regions.values():
        brokers = [s.split(":")[0] for s in region.kafka.bootstrap_servers]
        voters = {SERVICES[b]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in brokers}
        assert len(voters) == 1, "all brokers of a region share one KRaft quorum"
        for broker in brokers:
            env = SERVICES[broker]["environment"]
            assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{broker}:9092"
            assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == CLUSTER.topics.replication_factor
            assert (
                int(env["KAFKA_MIN_INSYNC_REPLICAS"])
                == CLUSTER.topics.min_insync_replicas
                < CLUSTER.topics.replication_factor
            )


def test_hdfs_daemons_point_at_their_regions_namenode() -> None:
    for region in CLUSTER.regions.values():
        nn = urlparse(region.hdfs.namenode_uri).hostname
        datanodes = [n for n in SERVICES if n.startswith(f"datanode-{region.name}-")]
        assert len(datanodes) >= 2
        for name in [nn, *datanodes]:
            assert SERVICES[name]["environment"]["CORE-SITE.XML_fs.defaultFS"] == region.hdfs.namenode_uri
            # the profile's replication (what the jobs' HDFS clients write with) is the daemons'
            assert int(SERVICES[name]["environment"]["HDFS-SITE.XML_dfs.replication"]) == region.hdfs.replication
        assert 1 < region.hdfs.replication < len(datanodes)  # one DataNode may die, and there is one to copy to


def test_each_region_has_its_own_metastore_and_database() -> None:
    for region in CLUSTER.regions.values():
        host = urlparse(region.metastore.uri).hostname
        assert host == f"hive-metastore-{region.name}"
        svc = SERVICES[host]
        assert svc["environment"]["SERVICE_NAME"] == "metastore"
        assert svc["networks"] == [region.name], "a region's catalog lives in that region"
        databases = [d for d in svc["depends_on"] if d.startswith("hive-metastore-db-")]
        assert databases == [f"hive-metastore-db-{region.name}"]
        assert SERVICES[databases[0]]["networks"] == [region.name]


def test_spark_connect_serves_the_primary_regions_catalog_with_delta() -> None:
    command = " ".join(SERVICES["spark-connect"]["command"])
    assert f"spark.connect.grpc.binding.port={urlparse(CLUSTER.spark_connect.url).port}" in command
    assert f"spark.hadoop.hive.metastore.uris={CLUSTER.primary.metastore.uri}" in command
    assert "io.delta.sql.DeltaSparkSessionExtension" in command


def test_image_versions_match_the_versions_the_project_pins() -> None:
    pins = dict(line.split("==") for line in (PROJECT_ROOT / "constraints.txt").read_text().split() if "==" in line)
    kafka_pom = (PROJECT_ROOT / "jvm" / "kafka.pom.xml").read_text()
    hadoop_pom = (PROJECT_ROOT / "jvm" / "hadoop.pom.xml").read_text()
    assert SERVICES["spark-master"]["image"].startswith(f"apache/spark:{pins['pyspark']}")
    assert SERVICES["mlflow"]["image"].endswith(f":v{pins['mlflow']}")
    assert SERVICES["airflow-scheduler"]["image"].startswith(f"apache/airflow:{pins['apache-airflow']}")
    kafka_version = SERVICES["kafka-asia-1"]["image"].split(":")[1]
    assert f"<artifactId>kafka_2.13</artifactId><version>{kafka_version}</version>" in kafka_pom
    hadoop_version = SERVICES["namenode-asia"]["image"].split(":")[1]
    assert f"<artifactId>hadoop-hdfs</artifactId><version>{hadoop_version}</version>" in hadoop_pom


def test_lakehouse_containers_select_the_cluster_profile() -> None:
    for name in ("spark-worker-1", "airflow-scheduler"):
        assert SERVICES[name]["environment"]["LAKEHOUSE_ENV"] == "cluster"


def test_airflow_runs_its_three_components_on_one_shared_setup() -> None:
    names = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor")
    commands = {SERVICES[n]["command"][1] for n in names}
    assert commands == {"api-server", "scheduler", "dag-processor"}, "Airflow 3 needs all three"
    envs = [SERVICES[n]["environment"] for n in names]
    assert all(e == envs[0] for e in envs), "one configuration: the same JWT secret, DB and DAGs everywhere"
    assert envs[0]["AIRFLOW__CORE__EXECUTOR"] == CLUSTER.airflow.executor
    assert envs[0]["AIRFLOW__CORE__PARALLELISM"] == str(CLUSTER.airflow.parallelism)
    api = urlparse(CLUSTER.airflow.url)
    assert envs[0]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{CLUSTER.airflow.url}/execution/"
    assert api.hostname == "airflow-apiserver"
    password = CLUSTER.airflow.password_file
    assert any(f"/run/secrets/{s}" == str(password) for s in SERVICES["airflow-scheduler"]["secrets"])


def test_mlflow_requires_a_user_and_its_clients_hold_the_profiles_password() -> None:
    mlflow = SERVICES["mlflow"]
    assert "--app-name basic-auth" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"].startswith("/run/secrets/")
    for secret in ("mlflow_admin_password", "mlflow_flask_secret_key", "mlflow_auth_config"):
        assert secret in mlflow["secrets"] and secret in COMPOSE["secrets"]
        assert f"/run/secrets/{secret}" in mlflow["command"] + mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    password = CLUSTER.mlflow.password_file
    assert password.parent == Path("/run/secrets") and password.name in COMPOSE["secrets"]
    assert CLUSTER.mlflow.username != "admin"  # the pipeline is not the server's admin
    for client in ("airflow-scheduler", "pipeline-asia", "pipeline-europe", "replicator"):
        assert password.name in SERVICES[client]["secrets"], f"{client} cannot authenticate to MLflow"


def test_no_secret_values_in_compose() -> None:
    for name, svc in SERVICES.items():
        for key in svc.get("environment") or {}:
            if any(word in key.upper() for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert key.endswith("_FILE"), f"{name}.{key} holds a secret inline"


def test_prometheus_container_reads_the_config_generated_from_cluster_yaml() -> None:
    from lakehouse.observability.services import CLUSTER_RULES_DIR, render_prometheus_config

    prom = SERVICES["prometheus"]
    assert "./conf/prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    committed = (CONF_DIR / "prometheus" / "prometheus.yml").read_text()
    assert committed == render_prometheus_config(CLUSTER, CLUSTER_RULES_DIR), (
        "regenerate: LAKEHOUSE_ENV=cluster "
        "lakehouse metrics scrape-config --rules-dir /etc/prometheus/rules > conf/prometheus/prometheus.yml"
    )


def test_grafana_is_provisioned_from_conf_grafana() -> None:
    grafana = SERVICES["grafana"]
    assert "./conf/grafana:/etc/grafana/provisioning:ro" in grafana["volumes"]
    provider = yaml.safe_load((CONF_DIR / "grafana" / "dashboards" / "lakehouse.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/provisioning/dashboards"
    datasource = yaml.safe_load((CONF_DIR / "grafana" / "datasources" / "prometheus.yaml").read_text())
    url = datasource["datasources"][0]["url"]
    assert url == CLUSTER.observability.prometheus_url


def test_the_spark_cluster_profile_describes_the_compose_workers() -> None:
    sc = CLUSTER.spark_cluster
    assert sc is not None and not sc.embedded and sc.master_url == CLUSTER.spark.master
    workers = sorted(name for name in SERVICES if name.startswith("spark-worker-"))
    assert len(workers) == sc.workers
    for name in workers:
        command = SERVICES[name]["command"]
        assert "org.apache.spark.deploy.worker.Worker" in command and sc.master_url in command
        assert command[command.index("--cores") + 1] == str(sc.worker_cores)
        assert command[command.index("--memory") + 1] == sc.worker_memory
    assert CLUSTER.spark.conf["spark.executor.memory"] == sc.executor_memory


def test_every_region_runs_a_pipeline_that_follows_the_primary_and_a_replicator_follows_it_too() -> None:
    """DR as deployed (docs/dr.md): each region's pipeline runs its queries while its region is the primary in force
    and stands by warm otherwise (`--standby`), so a failover finds a standby to promote and a stopped or fenced
    pipeline comes back as a standby (restart policy); the one replicator takes its direction from the primary in
    force (no --source or --target), so after a failover it replicates the other way."""
    for region in CLUSTER.regions:
        svc = SERVICES[f"pipeline-{region}"]
        assert svc["command"][-4:] == ["run", "--region", region, "--standby"], svc["command"]
        assert svc["restart"] == "unless-stopped"
        assert svc["environment"]["LAKEHOUSE_ENV"] == "cluster"
        assert set(svc["networks"]) == set(CLUSTER.regions), "it reads the fencing state of every region"
    replicator = SERVICES["replicator"]
    command = replicator["command"]
    assert command[command.index("replicate") :] == ["replicate", "--continuous"], command
    assert replicator["restart"] == "unless-stopped" and replicator["environment"]["LAKEHOUSE_ENV"] == "cluster"
    assert set(replicator["networks"]) == set(CLUSTER.regions)
    assert {f"namenode-{r}" for r in CLUSTER.regions} <= set(replicator["depends_on"])
    assert CLUSTER.replication.interval_s <= 10, "the disaster RPO target: one interval plus a pass"
