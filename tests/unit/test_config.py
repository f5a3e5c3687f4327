"""Profiles load into typed objects; malformed files give one error naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lakehouse.config import CONF_DIR, load_config
from lakehouse.errors import ConfigError
from tests.conftest import run_cli


def test_local_profile_is_the_embedded_two_region_default() -> None:
    cfg = load_config("local")
    assert cfg.profile == "local"
    assert cfg.primary.name == "asia"
    assert cfg.region("europe").role == "secondary"
    assert cfg.region(None) is cfg.region("") is cfg.primary  # "": a DAG's empty region param, rendered
    assert all(r.embedded is not None for r in cfg.regions.values())
    assert cfg.primary.warehouse_uri == "hdfs://127.0.0.1:19000/lakehouse"
    assert cfg.mlflow.embedded and cfg.mlflow.artifacts_uri.startswith("file://")
    # every loopback port of the stack is distinct
    from lakehouse.stack.services import services

    ports = [p for s in services(cfg) for p in s.ports]
    assert len(ports) == len(set(ports)) > 10


def test_cluster_profile_differs_only_in_config() -> None:
    local, cluster = load_config("local"), load_config("cluster")
    assert cluster.spark.master.startswith("spark://")
    assert all(r.embedded is None for r in cluster.regions.values())
    assert set(local.regions) == set(cluster.regions)
    assert [r.role for r in local.regions.values()] == [r.role for r in cluster.regions.values()]


def test_catalogs_are_per_region_embedded_locally_and_external_on_the_cluster() -> None:
    local, cluster = load_config("local"), load_config("cluster")
    for region in local.regions.values():
        assert region.metastore.uri is None and region.metastore.derby_port is not None
        assert region.metastore.jdbc_url.startswith(f"jdbc:derby://127.0.0.1:{region.metastore.derby_port}/")
    assert {r.metastore.uri for r in cluster.regions.values()} == {
        "thrift://hive-metastore-asia:9083",
        "thrift://hive-metastore-europe:9083",
    }
    assert local.spark_connect.embedded and not local.spark_connect.autostart
    assert not cluster.spark_connect.embedded


def test_sandbox_profile_gets_its_own_tables_topics_and_catalog(tmp_path: Path) -> None:
    from lakehouse.config import write_sandbox_profile

    local = load_config("local")
    sandbox = load_config(str(write_sandbox_profile(CONF_DIR / "local.yaml", tmp_path, "unit")))
    for name, region in sandbox.regions.items():
        regular = local.region(name)
        assert region.metastore.derby_port == regular.metastore.derby_port  # the same Derby server ...
        assert region.metastore.database != regular.metastore.database  # ... another metastore database
        assert region.metastore.database.startswith(f"sandbox_{name}_unit_")
        assert region.warehouse_uri != regular.warehouse_uri
    assert sandbox.topics.telemetry != local.topics.telemetry


def test_env_var_selects_profile_by_name_or_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_ENV", "cluster")
    assert load_config().profile == "cluster"
    monkeypatch.setenv("LAKEHOUSE_ENV", str(CONF_DIR / "local.yaml"))
    assert load_config().profile == "local"


def test_sandbox_var_selects_a_sandbox_of_the_profile_by_bare_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$LAKEHOUSE_SANDBOX (how a DR DAG run is pointed at a drill): a name in <state_dir>/sandboxes, nothing else."""
    from lakehouse.config import SANDBOX_VAR, sandbox_dir, write_sandbox_profile

    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump({**yaml.safe_load((CONF_DIR / "local.yaml").read_text()), "state_dir": str(tmp_path)})
    )
    monkeypatch.setenv("LAKEHOUSE_ENV", str(base))
    cfg = load_config()
    drill = write_sandbox_profile(base, sandbox_dir(cfg), "drill")
    monkeypatch.setenv(SANDBOX_VAR, drill.stem)
    chosen = load_config()
    assert chosen.source == drill and chosen.primary.lakehouse_root == f"/sandbox/{drill.stem}"
    assert load_config(str(base)).source == base  # an explicit selector is taken as given
    monkeypatch.setenv(SANDBOX_VAR, "")
    assert load_config().source == base
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(drill.read_text())
    for name in ("../elsewhere", str(outside), "a/b", "-x", "x" * 129):
        monkeypatch.setenv(SANDBOX_VAR, name)
        with pytest.raises(ConfigError, match="is not a sandbox name"):
            load_config()
    monkeypatch.setenv(SANDBOX_VAR, "nosuch")
    with pytest.raises(ConfigError, match="no sandbox profile") as err:
        load_config()
    assert str(sandbox_dir(cfg)) in (err.value.fix or "")


def test_unknown_profile_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"does not exist") as err:
        load_config("staging")
    assert err.value.fix is not None and "cluster" in err.value.fix and "local" in err.value.fix


def _mutated(tmp_path: Path, change: str) -> Path:
    data = yaml.safe_load((CONF_DIR / "local.yaml").read_text())
    if change == "missing_spark":
        del data["spark"]
    elif change == "port_not_int":
        data["regions"]["asia"]["embedded"]["datanode_port"] = "lots"
    elif change == "two_primaries":
        data["regions"]["europe"]["role"] = "primary"
    elif change == "bad_role":
        data["regions"]["europe"]["role"] = "tertiary"
    elif change == "namenode_not_hdfs":
        data["regions"]["asia"]["hdfs"]["namenode_uri"] = "http://127.0.0.1:19000"
    elif change == "bootstrap_without_port":
        data["regions"]["asia"]["kafka"]["bootstrap_servers"] = ["127.0.0.1"]
    elif change == "missing_observability":
        del data["observability"]
    elif change == "pipeline_metrics_missing_region":
        del data["observability"]["pipeline_metrics"]["europe"]
    elif change == "pushgateway_without_port":
        data["observability"]["pushgateway_url"] = "http://127.0.0.1"
    elif change == "metastore_both":
        data["regions"]["asia"]["metastore"]["uri"] = "thrift://hms:9083"
    elif change == "metastore_neither":
        data["regions"]["asia"]["metastore"] = {"database": "x"}
    elif change == "metastore_not_thrift":
        data["regions"]["asia"]["metastore"] = {"uri": "http://hms:9083"}
    elif change == "metastore_bad_database":
        data["regions"]["asia"]["metastore"]["database"] = "meta;drop"
    elif change == "connect_not_sc":
        data["spark_connect"]["url"] = "http://127.0.0.1:15002"
    elif change == "connect_unknown_region":
        data["spark_connect"]["region"] = "mars"
    elif change == "cluster_not_spark":
        data["spark_cluster"]["master_url"] = "http://127.0.0.1:17077"
    elif change == "cluster_bad_memory":
        data["spark_cluster"]["executor_memory"] = "lots"
    elif change == "cluster_no_workers":
        data["spark_cluster"]["workers"] = 0
    elif change == "cluster_embedded_without_ports":
        del data["spark_cluster"]["worker_port"]
    elif change == "auth_cache_negative":
        data["mlflow"]["auth_cache_ttl_s"] = -1
    elif change == "models_not_bool":
        data["replication"]["models"] = "yes"
    elif change == "broker_on_a_controller_port":  # broker 2's port is broker 1's controller (19093)
        data["regions"]["asia"]["kafka"]["bootstrap_servers"] = ["127.0.0.1:19092", "127.0.0.1:19093"]
    elif change == "insync_above_replication":
        data["topics"].update(replication_factor=3, min_insync_replicas=4)
    elif change == "background_nice_above_19":
        data["pipeline"]["background_nice"] = 20
    elif change == "bronze_fetch_too_large":
        data["pipeline"]["bronze_fetch_mib"] = 4096
    elif change == "bronze_tasks_too_small":
        data["pipeline"]["bronze_max_records_per_task"] = 10
    elif change == "silver_batch_unbounded":
        data["pipeline"]["silver_max_mib_per_trigger"] = 0
    elif change == "realtime_batch_unbounded":
        data["pipeline"]["realtime_max_offsets_per_trigger"] = 0
    elif change == "state_ttl_within_accepted_age":  # 30 days: a measurement silver accepts could predate the state
        data["pipeline"]["news2_state_ttl_s"] = data["pipeline"]["max_event_age_s"]
    path = tmp_path / f"{change}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing_spark", r"config\.spark is missing"),
        ("port_not_int", r"regions\.asia\.embedded\.datanode_port must be int, got str"),
        ("two_primaries", r"exactly one region must have role primary"),
        ("bad_role", r"regions\.europe\.role must be one of"),
        ("namenode_not_hdfs", r"regions\.asia\.hdfs\.namenode_uri must start with hdfs://"),
        ("bootstrap_without_port", r"bootstrap_servers must be host:port"),
        ("missing_observability", r"config\.observability is missing"),
        ("pipeline_metrics_missing_region", r"observability\.pipeline_metrics must name every region"),
        ("pushgateway_without_port", r"observability\.pushgateway_url must be host:port or a URL with a port"),
        ("metastore_both", r"regions\.asia\.metastore needs exactly one of uri .* or derby_port"),
        ("metastore_neither", r"regions\.asia\.metastore needs exactly one of uri .* or derby_port"),
        ("metastore_not_thrift", r"regions\.asia\.metastore\.uri must be a thrift:// URI"),
        ("metastore_bad_database", r"regions\.asia\.metastore\.database must be letters, digits and underscores"),
        ("connect_not_sc", r"spark_connect\.url must be sc://host:port"),
        ("connect_unknown_region", r"spark_connect\.region 'mars' is not one of the regions"),
        ("models_not_bool", r"replication\.models must be bool, got str"),
        ("cluster_not_spark", r"spark_cluster\.master_url must be spark://host:port"),
        ("cluster_bad_memory", r"spark_cluster\.executor_memory must be a size such as 512m or 2g"),
        ("cluster_no_workers", r"spark_cluster\.workers and spark_cluster\.worker_cores must be at least 1"),
        ("cluster_embedded_without_ports", r"an embedded cluster needs worker_port and worker_web_port"),
        ("auth_cache_negative", r"mlflow\.auth_cache_ttl_s must be >= 0"),
        ("broker_on_a_controller_port", r"regions\.asia: an embedded region runs 1 to 9 Kafka brokers.* must differ"),
        ("insync_above_replication", r"topics\.min_insync_replicas must be 1 to replication_factor \(3\), got 4"),
        ("background_nice_above_19", r"pipeline\.background_nice must be 0-19 .*got 20"),
        ("bronze_fetch_too_large", r"pipeline\.bronze_fetch_mib must be 1 to 1024, got 4096"),
        ("bronze_tasks_too_small", r"pipeline\.bronze_max_records_per_task must be at least 1000, got 10"),
        ("silver_batch_unbounded", r"pipeline\.silver_max_mib_per_trigger must be 1 to 4096, got 0"),
        ("realtime_batch_unbounded", r"pipeline\.realtime_max_offsets_per_trigger must be at least 1, got 0"),
        (
            "state_ttl_within_accepted_age",
            r"pipeline\.news2_state_ttl_s \(2592000\) must exceed max_event_age_s \+ future_tolerance_s \(2592000 \+ 300\)",
        ),
    ],
)
def test_malformed_config_names_file_and_key(tmp_path: Path, change: str, message: str) -> None:
    path = _mutated(tmp_path, change)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(str(path))
    assert str(path) in err.value.message


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("profile: local\nspark:\n  master: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(str(path))


def test_cli_reports_malformed_config_without_traceback(tmp_path: Path) -> None:
    import os

    path = _mutated(tmp_path, "two_primaries")
    result = run_cli("stack", "status", env={**os.environ, "LAKEHOUSE_ENV": str(path)})
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "exactly one region" in result.stderr
    assert "Traceback" not in result.stderr


def test_pipeline_settings_left_out_follow_the_ones_they_derive_from(tmp_path: Path) -> None:
    """silver_trigger_interval_s defaults to trigger_interval_s; news2_state_ttl_s to a day more than the oldest
    event silver accepts (max_event_age_s + future_tolerance_s)."""
    local = load_config("local").pipeline
    assert (local.trigger_interval_s, local.silver_trigger_interval_s, local.news2_state_ttl_s) == (5, 20, 2_682_000)
    data = yaml.safe_load((CONF_DIR / "local.yaml").read_text())
    for key in ("silver_trigger_interval_s", "news2_state_ttl_s"):
        del data["pipeline"][key]
    data["pipeline"].update(trigger_interval_s=3, max_event_age_s=86400, future_tolerance_s=60)
    path = tmp_path / "derived.yaml"
    path.write_text(yaml.safe_dump(data))
    derived = load_config(str(path)).pipeline
    assert derived.silver_trigger_interval_s == 3 and derived.news2_state_ttl_s == 86400 + 60 + 86400
