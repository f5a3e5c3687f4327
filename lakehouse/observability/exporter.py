"""Getting metrics to Prometheus: serve ``/metrics`` (long-running jobs), push to the Pushgateway (batch
jobs), and the lakehouse exporter: a small process that measures, at every scrape, what no job reports
by itself — each table's Delta version per region, DR replication lag, Kafka end offsets, which region is the
primary in force and what each region's pipeline last reported (lakehouse.replication.handover).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from prometheus_client import CollectorRegistry, push_to_gateway, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lakehouse.config import Config, RegionConfig
from lakehouse.io import isolated
from lakehouse.observability.metrics import REGISTRY
from lakehouse.tables import SPECS

log = logging.getLogger("lakehouse.metrics")


def host_port(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or a URL."""
    parsed = urlparse(endpoint if "://" in endpoint else f"tcp://{endpoint}")
    assert parsed.hostname is not None and parsed.port is not None  # validated with the config
    return parsed.hostname, parsed.port


def serve_pipeline_metrics(cfg: Config, region: RegionConfig, registry: Collector = REGISTRY) -> str | None:
    """Serve ``registry`` (the pipeline's: the project's with the background tier's) on the region's
    ``pipeline_metrics`` endpoint; returns its URL.

    Metrics never stop a pipeline: when the port is taken (another pipeline of the region runs), a
    warning line says so and None comes back.
    """
    host, port = host_port(cfg.observability.pipeline_metrics[region.name])
    bind = "127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0"
    try:
        start_http_server(port, addr=bind, registry=registry)
    except OSError as exc:
        log.warning(f"metrics not served: {bind}:{port} is taken ({exc})")
        return None
    return f"http://{host}:{port}/metrics"


def finish_batch_job(cfg: Config, job: str, region: str, seconds: float) -> bool:
    """Stamp a successful batch run and push the registry to the Pushgateway.

    Every query of a batch run has stopped by now, though the listener may not have heard of the last
    termination yet (Spark delivers events asynchronously): the run's queries are marked inactive here.
    """
    from lakehouse.observability.metrics import STREAM_ACTIVE, record_job

    for sample in next(iter(STREAM_ACTIVE.collect())).samples:
        if sample.labels.get("region") == region:
            STREAM_ACTIVE.labels(region, sample.labels["query"]).set(0)
    record_job(job, region, seconds)
    return push(cfg, job, region)


def push(cfg: Config, job: str, region: str | None, registry: CollectorRegistry = REGISTRY) -> bool:
    """Push ``registry`` to the Pushgateway under ``job`` (and ``region``), replacing that group.

    Metrics never fail a job: when the Pushgateway does not answer, a warning line says so and False
    comes back.
    """
    key = {"region": region} if region else {}
    try:
        push_to_gateway(cfg.observability.pushgateway_url, job=job, grouping_key=key, registry=registry, timeout=10)
    except OSError as exc:
        log.warning(f"metrics not pushed: Pushgateway at {cfg.observability.pushgateway_url} did not answer ({exc})")
        return False
    return True


# --------------------------------------------------------------------------- the lakehouse exporter


def replicated_tables(cfg: Config) -> list[str]:
    """The tables replication keeps a copy of in the other region (``replication.tables`` not ``forbidden``),
    the ones whose lag means something."""
    return [t for t, policy in cfg.replication.tables.items() if policy != "forbidden" and t in SPECS]


@dataclass(frozen=True)
class TableVersion:
    """Latest Delta version of a table in one region and the commit time (s) of each version."""

    version: int  # -1: no table
    commit_times: dict[int, float]


def delta_versions(region: RegionConfig, table: str, timeout_s: float = 5.0) -> TableVersion:
    """Read a table's ``_delta_log`` listing over WebHDFS (no Spark): versions and their commit times."""
    from hdfs import InsecureClient

    path = "/" + SPECS[table].name.replace(".", "/")
    root = "/" + region.lakehouse_root.strip("/")
    client = InsecureClient(region.hdfs.webhdfs_url, user=region.hdfs.user, timeout=timeout_s)
    listing = client.list(f"{root}{path}/_delta_log", status=True) if client.status(
        f"{root}{path}/_delta_log", strict=False
    ) else []  # fmt: skip
    times = {
        int(name[:-5]): status["modificationTime"] / 1000.0
        for name, status in listing
        if name.endswith(".json") and name[:-5].isdigit()
    }
    return TableVersion(max(times) if times else -1, times)


def replication_lag(primary: TableVersion, secondary: TableVersion, now: float) -> tuple[int, float]:
    """(versions, seconds) the secondary is behind: the seconds are the age of the oldest primary commit the
    secondary lacks, 0 when it has them all."""
    behind = max(0, primary.version - secondary.version)
    if behind == 0:
        return 0, 0.0
    first_missing = secondary.version + 1
    stamp = primary.commit_times.get(first_missing, min(primary.commit_times.values()))
    return behind, max(0.0, now - stamp)


DAG_RUNS_WINDOW = 100


def dag_run_summary(runs: list[dict[str, Any]]) -> list[tuple[str, int, tuple[float, float] | None]]:
    """(state, runs in that state, (duration s, end epoch s) of the latest finished one) for success, failed and
    every other state present; ``runs`` as Airflow's API lists them (newest first)."""
    from datetime import datetime

    out = []
    for state in sorted({"success", "failed", *(str(r.get("state")) for r in runs)}):
        mine = [r for r in runs if str(r.get("state")) == state]
        last = None
        done = [r for r in mine if r.get("start_date") and r.get("end_date")]
        if done:
            newest = max(done, key=lambda r: str(r["end_date"]))
            start, end = datetime.fromisoformat(newest["start_date"]), datetime.fromisoformat(newest["end_date"])
            last = ((end - start).total_seconds(), end.timestamp())
        out.append((state, len(mine), last))
    return out


class LakehouseCollector(Collector):
    """Computed at scrape time: table versions, replication lag primary -> each secondary, Kafka end offsets."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        # ops.replication_state is read with deltalake at every scrape, for as long as the exporter runs: in a
        # child process, where a hung read is killed and what the client leaks per read goes with the child
        self.storage = isolated.SHARED

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from lakehouse.io import kafka

        now = time.time()
        version = GaugeMetricFamily(
            "lakehouse_table_version", "Latest Delta version of a table (-1: the table does not exist)",
            labels=["region", "table"],
        )  # fmt: skip
        lag_v = GaugeMetricFamily(
            "lakehouse_replication_lag_versions", "Delta versions the secondary's copy of a table is behind",
            labels=["table", "source", "target"],
        )  # fmt: skip
        lag_s = GaugeMetricFamily(
            "lakehouse_replication_lag_seconds",
            "Age of the oldest primary commit the secondary does not have (0: caught up)",
            labels=["table", "source", "target"],
        )  # fmt: skip
        offsets = GaugeMetricFamily(
            "lakehouse_kafka_end_offset", "Sum over partitions of a topic's latest offsets", labels=["region", "topic"]
        )
        up = GaugeMetricFamily(
            "lakehouse_exporter_source_up", "1 when the exporter could read the source", labels=["region", "source"]
        )
        replicated = GaugeMetricFamily(
            "lakehouse_replication_replicated_version",
            "Latest version the replica holds, per ops.replication_state (written by every replication pass)",
            labels=["table", "source", "target", "status"],
        )  # fmt: skip
        last_pass = GaugeMetricFamily(
            "lakehouse_replication_last_pass_timestamp_seconds",
            "When the latest replication pass over the table started (ops.replication_state.pass_time)",
            labels=["table", "source", "target"],
        )  # fmt: skip
        dr = self._dr_state(up)
        primary = self.cfg.region(dr.primary)  # the lag runs from the primary in force: a failover reverses it
        seen: dict[str, dict[str, TableVersion]] = {}
        for region in self.cfg.regions.values():
            try:
                seen[region.name] = {t: delta_versions(region, t) for t in SPECS}
                up.add_metric([region.name, "hdfs"], 1)
            except Exception as exc:  # noqa: BLE001 - one region down must not hide the other
                log.warning(f"exporter: HDFS of {region.name} unreadable: {exc}")
                up.add_metric([region.name, "hdfs"], 0)
                continue
            for table, tv in seen[region.name].items():
                version.add_metric([region.name, table], tv.version)
            try:
                for topic in (self.cfg.topics.telemetry, self.cfg.topics.alerts):
                    offsets.add_metric([region.name, topic], sum(kafka.end_offsets(region, topic).values()))
                up.add_metric([region.name, "kafka"], 1)
            except Exception as exc:  # noqa: BLE001
                log.warning(f"exporter: Kafka of {region.name} unreadable: {exc}")
                up.add_metric([region.name, "kafka"], 0)
        for region in self.cfg.regions.values():
            if region.name == primary.name or primary.name not in seen or region.name not in seen:
                continue
            for table in replicated_tables(self.cfg):  # a table that stays in its region lags forever, by design
                versions, seconds = replication_lag(seen[primary.name][table], seen[region.name][table], now)
                lag_v.add_metric([table, primary.name, region.name], versions)
                lag_s.add_metric([table, primary.name, region.name], seconds)
            self._replication_state(region, replicated, last_pass, up)
        airflow = self._dag_runs(up)  # before ``up`` is yielded: it carries Airflow's source sample too
        yield from (version, lag_v, lag_s, offsets, up, replicated, last_pass, *dr.families, *airflow)

    def _dr_state(self, up: GaugeMetricFamily) -> DrState:
        """The region state in force and each region's pipeline status, as a failover reads them."""
        from lakehouse.replication import fencing, handover

        state, reached = fencing.current(self.cfg)
        primary = GaugeMetricFamily(
            "lakehouse_region_primary",
            "1 for the primary in force (the highest epoch among the regions that answer), 0 for the others",
            labels=["region"],
        )
        epoch = GaugeMetricFamily("lakehouse_region_epoch", "Epoch of the region state in force", labels=[])
        epoch.add_metric([], state.epoch)
        status = GaugeMetricFamily(
            "lakehouse_pipeline_status",
            "1 for what the region's pipeline last reported in its HDFS (standby, running, stopped), stale when"
            " it has not reported for 30 s (died), none when no pipeline ever ran there; 0 for the other states",
            labels=["region", "state"],
        )
        age = GaugeMetricFamily(
            "lakehouse_pipeline_status_age_seconds", "Seconds since the region's pipeline last reported",
            labels=["region"],
        )  # fmt: skip
        for region in self.cfg.regions.values():
            primary.add_metric([region.name], float(region.name == state.primary))
            up.add_metric([region.name, "region_state"], float(reached.get(region.name, False)))
            try:
                seen = handover.read_status(region, timeout_s=5.0)
            except Exception as exc:  # noqa: BLE001 - one region down must not hide the other
                log.warning(f"exporter: pipeline status of {region.name} unreadable: {exc}")
                up.add_metric([region.name, "pipeline_status"], 0)
                continue
            up.add_metric([region.name, "pipeline_status"], 1)
            now = "none" if seen is None else seen.shown()
            for name in (*handover.STATES, "stale", "none"):
                status.add_metric([region.name, name], float(name == now))
            if seen is not None:
                age.add_metric([region.name], seen.age_s())
        return DrState(state.primary, [primary, epoch, status, age])

    def _dag_runs(self, up: GaugeMetricFamily) -> list[GaugeMetricFamily]:
        """Per DAG, from Airflow's REST API: its latest runs by state and the duration and end of the latest
        finished run in each state (every DAG has a 0 for success and failed from the start)."""
        from lakehouse.orchestration.airflow import AirflowClient

        runs = GaugeMetricFamily(
            "lakehouse_airflow_dag_runs", f"Runs of the DAG by state among its latest {DAG_RUNS_WINDOW}",
            labels=["dag", "state"],
        )  # fmt: skip
        duration = GaugeMetricFamily(
            "lakehouse_airflow_dag_last_run_duration_seconds", "Duration of the DAG's latest finished run in the state",
            labels=["dag", "state"],
        )  # fmt: skip
        ended = GaugeMetricFamily(
            "lakehouse_airflow_dag_last_run_end_timestamp_seconds", "When the DAG's latest run in the state ended",
            labels=["dag", "state"],
        )  # fmt: skip
        try:
            client = AirflowClient.from_config(self.cfg, timeout_s=5.0)
            for dag in client.dags():
                dag_id = str(dag["dag_id"])
                reply = client.request(
                    "GET", f"/api/v2/dags/{dag_id}/dagRuns?limit={DAG_RUNS_WINDOW}&order_by=-run_after"
                )
                for state, count, last in dag_run_summary(reply["dag_runs"]):
                    runs.add_metric([dag_id, state], count)
                    if last is not None:
                        duration.add_metric([dag_id, state], last[0])
                        ended.add_metric([dag_id, state], last[1])
            up.add_metric(["all", "airflow"], 1)
        except Exception as exc:  # noqa: BLE001 - Airflow down must not hide the other metrics
            log.warning(f"exporter: Airflow unreadable: {exc}")
            up.add_metric(["all", "airflow"], 0)
        return [runs, duration, ended]

    def _replication_state(
        self, region: RegionConfig, replicated: GaugeMetricFamily, last_pass: GaugeMetricFamily, up: GaugeMetricFamily
    ) -> None:
        """The replication job's own account of each replica, from ops.replication_state in the target."""
        from lakehouse.replication import state

        try:
            rows = self.storage.call(f"ops.replication_state of {region.name}", state.read, region, attempts=2)
        except Exception as exc:  # noqa: BLE001 - an unreadable state table must not hide the other metrics
            log.warning(f"exporter: ops.replication_state of {region.name} unreadable: {exc}")
            up.add_metric([region.name, "replication_state"], 0)
            return
        for r in rows:
            labels = [str(r["table"]), str(r["source"]), str(r["target"])]
            replicated.add_metric([*labels, str(r["status"])], float(str(r["replicated_version"])))
            stamp = r["pass_time"]
            last_pass.add_metric(labels, stamp.timestamp() if hasattr(stamp, "timestamp") else 0.0)


@dataclass(frozen=True)
class DrState:
    """The primary in force and the DR metric families of one scrape."""

    primary: str
    families: list[GaugeMetricFamily]


def run_exporter(cfg: Config, home: Path, poll_s: float = 5.0) -> None:
    """Serve the lakehouse exporter on ``observability.exporter_url`` until killed; every ``poll_s`` seconds,
    append the accesses the local NameNodes, MLflow, Airflow's api-server and (secure) Kafka brokers refused to
    ops.audit_log (``security.hdfs_audit``, ``security.mlflow_audit``, ``security.airflow_audit``,
    ``security.kafka_audit``)."""
    from lakehouse.security import airflow_audit, hdfs_audit, kafka_audit, mlflow_audit, refusals

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LakehouseCollector(cfg))
    host, port = host_port(cfg.observability.exporter_url)
    bind = "127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0"
    start_http_server(port, addr=bind, registry=registry)
    log.info(f"lakehouse exporter serving on {cfg.observability.exporter_url}/metrics")
    while True:
        into = refusals.primary_in_force(cfg)  # looked up at most once per poll
        hdfs_audit.forward_all(cfg, home, into)
        mlflow_audit.forward_local(cfg, home, into)
        airflow_audit.forward_local(cfg, home, into)
        kafka_audit.forward_all(cfg, home, into)
        time.sleep(poll_s)
