"""Configuration: one YAML profile per environment, loaded once into frozen typed objects.

The profile is chosen by the environment variable ``LAKEHOUSE_ENV``: a profile name
(``local``, the embedded default, or ``cluster``) resolving to ``conf/<name>.yaml``, or a path
to a YAML file. Only configuration differs between profiles; the code path is the same.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import yaml

from lakehouse.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"
ENV_VAR = "LAKEHOUSE_ENV"
DEFAULT_PROFILE = "local"
REGION_ROLES = ("primary", "secondary")

T = TypeVar("T")


@dataclass(frozen=True)
class SparkConfig:
    """How jobs build their SparkSession."""

    master: str
    driver_memory: str
    shuffle_partitions: int
    ui_enabled: bool
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KafkaConfig:
    """A region's Kafka cluster as clients see it."""

    bootstrap_servers: tuple[str, ...]

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers as the comma-joined string Spark and the CLI tools take."""
        return ",".join(self.bootstrap_servers)


@dataclass(frozen=True)
class HdfsConfig:
    """A region's HDFS as clients see it: RPC URI for Spark, WebHDFS URL for the Python client."""

    namenode_uri: str
    webhdfs_url: str
    user: str


@dataclass(frozen=True)
class EmbeddedRegion:
    """Ports and heap sizes of the loopback daemons `lakehouse stack up` runs for one region."""

    kafka_controller_port: int
    datanode_port: int
    datanode_http_port: int
    datanode_ipc_port: int
    kafka_heap: str
    namenode_heap: str
    datanode_heap: str
    metastore_heap: str = "256m"


@dataclass(frozen=True)
class MetastoreConfig:
    """A region's persistent catalog, a Hive metastore: either an external Thrift metastore (``uri``, the
    cluster profile) or a Derby network server the stack runs (``derby_port``) holding ``database``."""

    uri: str | None
    derby_port: int | None
    database: str

    @property
    def jdbc_url(self) -> str:
        """JDBC URL of the embedded metastore database (created on first connection)."""
        return f"jdbc:derby://127.0.0.1:{self.derby_port}/{self.database};create=true"


@dataclass(frozen=True)
class RegionConfig:
    """One region (Asia primary, Europe secondary): its Kafka, its HDFS, its catalog and where tables live."""

    name: str
    role: str
    kafka: KafkaConfig
    hdfs: HdfsConfig
    lakehouse_root: str
    embedded: EmbeddedRegion | None
    metastore: MetastoreConfig

    @property
    def warehouse_uri(self) -> str:
        """Root URI of this region's tables, e.g. ``hdfs://127.0.0.1:19000/lakehouse``."""
        return self.hdfs.namenode_uri.rstrip("/") + "/" + self.lakehouse_root.strip("/")


@dataclass(frozen=True)
class MlflowConfig:
    """The MLflow tracking server (basic-auth app); ``embedded`` means the local stack runs it, with ``username``
    as its admin whose password is generated into ``password_file``; otherwise the pipeline's MLflow user."""

    tracking_uri: str
    artifacts_uri: str
    embedded: bool
    username: str = "admin"
    password_file: Path = Path(".state/secrets/mlflow-admin-password")


@dataclass(frozen=True)
class AirflowConfig:
    """Airflow 3: the api-server's URL (REST API ``/api/v2``, tokens from ``/auth/token``), the admin user the CLI
    and tests authenticate as, and how the local stack runs it (``embedded``: `lakehouse stack up` runs the
    api-server, the scheduler and the dag-processor with ``executor`` on the ``database_uri`` metadata DB)."""

    url: str
    embedded: bool
    username: str
    password_file: Path  # the simple auth manager's JSON {user: password}, or a file holding only the password
    database_uri: str  # SQLAlchemy URI of the metadata database (SQLite under the state folder by default)
    executor: str
    parallelism: int  # task instances running at once (each one is a process: keep it near the core count)


@dataclass(frozen=True)
class MlConfig:
    """The sepsis model: MLflow experiment and registered model, GBT size, validation share, the promotion
    gate (a challenger is promoted unless its ``gate_metric`` is below the champion's minus ``gate_tolerance``
    on the same validation set) and the AUROC floor monitoring alerts on."""

    experiment: str
    model_name: str
    validation_pct: int
    max_iter: int
    max_depth: int
    gate_metric: str  # auroc, auprc or utility
    gate_tolerance: float
    auroc_floor: float
    alert_threshold: float | None = None  # risk score raising a sepsis_risk alert (None: the champion's own)
    scorer_trigger_s: int = 60  # the live scorer's micro-batch interval
    drift_window_h: int = 24  # drift: the live window (hours of features and scores) compared with training
    driver_memory: str = "6g"  # the ML jobs' Spark driver (local profile: all of Spark) heap
    shuffle_partitions: int = 8  # the ML jobs' shuffle partitions (batch windows and joins, no state stores)


@dataclass(frozen=True)
class SparkConnectConfig:
    """The long-running Spark Connect server analysts attach to (``sc://host:port``) without a local JVM.

    ``embedded``: `lakehouse stack up --service spark-connect` runs it (with ``autostart`` plain `stack up`
    does too); it serves the tables and catalog of ``region`` (default: the primary).
    """

    url: str
    embedded: bool
    autostart: bool
    region: str | None


@dataclass(frozen=True)
class TopicsConfig:
    """Kafka topic names and shape, the same in every region."""

    telemetry: str
    alerts: str
    partitions: int
    replication_factor: int


@dataclass(frozen=True)
class PipelineConfig:
    """Streaming pipeline behaviour: triggers, validation tolerances, late-data policy, maintenance floor."""

    trigger_interval_s: float
    max_offsets_per_trigger: int
    merge_trigger_interval_s: float  # trigger of the MERGE-based queries (window tables, gold.alerts)
    realtime_trigger_ms: int  # trigger of the real-time NEWS2/alert query (Kafka -> gold.news2, alerts.news2)
    news2_hold_ms: int  # 0: observations final per micro-batch; else once no newer measurement came for this long
    news2_carry_forward_s: int  # a vital's last value counts in a patient's observations for this long
    future_tolerance_s: int
    max_event_age_s: int
    minute_watermark_s: int
    hourly_watermark_s: int
    vacuum_min_retention_hours: int


@dataclass(frozen=True)
class StackConfig:
    """Behaviour of `lakehouse stack` (embedded profile)."""

    ready_timeout_s: float
    stop_timeout_s: float


@dataclass(frozen=True)
class ObservabilityConfig:
    """Prometheus, the Pushgateway and the project's metric endpoints; ``embedded`` means `stack up` runs them."""

    prometheus_url: str
    pushgateway_url: str
    exporter_url: str  # the lakehouse exporter: replication lag and Kafka offsets, computed per scrape
    pipeline_metrics: Mapping[str, str]  # region -> host:port where its continuous pipeline serves /metrics
    embedded: bool
    scrape_interval_s: float
    retention: str  # Prometheus TSDB retention, e.g. "7d"
    rpo_s: int  # DR recovery-point objective: replication lag above it is an alert


RESIDENCY_POLICIES = ("allowed", "pseudonymous", "forbidden")
TABLE_NAME = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")  # <layer>.<name>, whole name: use fullmatch
PSEUDONYMOUS_PROPERTY = "lakehouse.residency.patientIds"  # table property a producer sets to "pseudonymous"


@dataclass(frozen=True)
class ReplicationConfig:
    """Cross-region table replication: pass interval, parallel file copies and, per table, its residency
    policy: ``allowed`` (may leave its region as is), ``pseudonymous`` (only while the table declares
    pseudonymous patient identifiers in its Delta property ``lakehouse.residency.patientIds``) or
    ``forbidden`` (never leaves its region)."""

    interval_s: float
    parallelism: int
    tables: Mapping[str, str]  # table name -> residency policy, in replication order


@dataclass(frozen=True)
class QualityConfig:
    """Data-quality checks: where the expectation suites live (YAML, one per table) and whether the
    pipeline runs them on every micro-batch (``enabled: false`` only for benchmarks' checks-off runs)."""

    enabled: bool
    suites_dir: Path

    def data_docs_dir(self, state_dir: Path) -> Path:
        """Where GX Data Docs (HTML) are rendered: under the state folder."""
        return state_dir / "dq" / "data_docs"


@dataclass(frozen=True)
class Config:
    """The whole configuration of one profile."""

    profile: str
    source: Path
    state_dir: Path
    jars_dir: Path
    java_home: Path | None
    spark: SparkConfig
    mlflow: MlflowConfig
    airflow: AirflowConfig
    ml: MlConfig
    spark_connect: SparkConnectConfig
    topics: TopicsConfig
    stack: StackConfig
    pipeline: PipelineConfig
    observability: ObservabilityConfig
    regions: Mapping[str, RegionConfig]
    replication: ReplicationConfig
    quality: QualityConfig = field(default_factory=lambda: QualityConfig(True, CONF_DIR / "quality"))

    @property
    def primary(self) -> RegionConfig:
        """The region whose role is ``primary``."""
        return next(r for r in self.regions.values() if r.role == "primary")

    def region(self, name: str | None) -> RegionConfig:
        """The named region, or the primary when ``name`` is None or empty (e.g. a DAG's empty ``region`` param)."""
        if not name:
            return self.primary
        try:
            return self.regions[name]
        except KeyError:
            known = ", ".join(self.regions)
            raise ConfigError(
                f"unknown region {name!r} (profile {self.profile!r} has: {known})",
                fix=f"use one of: {known}",
            ) from None


# --------------------------------------------------------------------------- parsing helpers


def _get(data: Mapping[str, Any], key: str, kind: type[T], where: str, default: Any = ...) -> T:
    """Read ``key`` of type ``kind`` from a mapping, with an error naming the dotted path."""
    if key not in data or data[key] is None:
        if default is ...:
            raise ConfigError(f"{where}.{key} is missing")
        return default
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}.{key} must be {kind.__name__}, got {type(value).__name__} ({value!r})")
    return value


def _section(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    return _get(data, key, dict, where)


def _port_of(url: str, where: str) -> int:
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    if parsed.port is None or parsed.hostname is None:
        raise ConfigError(f"{where} must be host:port or a URL with a port, got {url!r}")
    return parsed.port


def _path(value: str, root: Path) -> Path:
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else (root / path)


def _parse_region(name: str, data: Mapping[str, Any]) -> RegionConfig:
    where = f"regions.{name}"
    role = _get(data, "role", str, where)
    if role not in REGION_ROLES:
        raise ConfigError(f"{where}.role must be one of {REGION_ROLES}, got {role!r}")
    kafka = _section(data, "kafka", where)
    servers = _get(kafka, "bootstrap_servers", list, f"{where}.kafka")
    if not servers or not all(isinstance(s, str) for s in servers):
        raise ConfigError(f"{where}.kafka.bootstrap_servers must be a non-empty list of host:port")
    for s in servers:
        _port_of(s, f"{where}.kafka.bootstrap_servers")
    hdfs = _section(data, "hdfs", where)
    hdfs_cfg = HdfsConfig(
        namenode_uri=_get(hdfs, "namenode_uri", str, f"{where}.hdfs"),
        webhdfs_url=_get(hdfs, "webhdfs_url", str, f"{where}.hdfs"),
        user=_get(hdfs, "user", str, f"{where}.hdfs", "lakehouse"),
    )
    if not hdfs_cfg.namenode_uri.startswith("hdfs://"):
        raise ConfigError(f"{where}.hdfs.namenode_uri must start with hdfs://")
    _port_of(hdfs_cfg.namenode_uri, f"{where}.hdfs.namenode_uri")
    _port_of(hdfs_cfg.webhdfs_url, f"{where}.hdfs.webhdfs_url")
    embedded: EmbeddedRegion | None = None
    if data.get("embedded") is not None:
        emb = _section(data, "embedded", where)
        ew = f"{where}.embedded"
        heap = _get(emb, "heap", dict, ew, {})
        embedded = EmbeddedRegion(
            kafka_controller_port=_get(emb, "kafka_controller_port", int, ew),
            datanode_port=_get(emb, "datanode_port", int, ew),
            datanode_http_port=_get(emb, "datanode_http_port", int, ew),
            datanode_ipc_port=_get(emb, "datanode_ipc_port", int, ew),
            kafka_heap=str(heap.get("kafka", "384m")),
            namenode_heap=str(heap.get("namenode", "384m")),
            datanode_heap=str(heap.get("datanode", "256m")),
            metastore_heap=str(heap.get("metastore", "256m")),
        )
        if len(servers) != 1:
            raise ConfigError(f"{where}: an embedded region runs exactly one Kafka broker")
    meta = _section(data, "metastore", where)
    mw = f"{where}.metastore"
    metastore = MetastoreConfig(
        uri=_get(meta, "uri", str, mw, None),
        derby_port=_get(meta, "derby_port", int, mw, None),
        database=_get(meta, "database", str, mw, f"metastore_{name}"),
    )
    if (metastore.uri is None) == (metastore.derby_port is None):
        raise ConfigError(f"{mw} needs exactly one of uri (an external Hive metastore) or derby_port (embedded)")
    if metastore.uri is not None and not metastore.uri.startswith("thrift://"):
        raise ConfigError(f"{mw}.uri must be a thrift:// URI, got {metastore.uri!r}")
    if metastore.uri is not None:
        _port_of(metastore.uri, f"{mw}.uri")
    if metastore.derby_port is not None and embedded is None:
        raise ConfigError(f"{mw}.derby_port is for embedded regions; give an external region a uri")
    if not metastore.database.replace("_", "").isalnum():
        raise ConfigError(f"{mw}.database must be letters, digits and underscores, got {metastore.database!r}")
    return RegionConfig(
        name=name,
        role=role,
        kafka=KafkaConfig(bootstrap_servers=tuple(servers)),
        hdfs=hdfs_cfg,
        lakehouse_root=_get(data, "lakehouse_root", str, where, "/lakehouse"),
        embedded=embedded,
        metastore=metastore,
    )


def _parse_observability(data: Mapping[str, Any], regions: Mapping[str, RegionConfig]) -> ObservabilityConfig:
    where = "observability"
    urls = {k: _get(data, k, str, where) for k in ("prometheus_url", "pushgateway_url", "exporter_url")}
    for key, url in urls.items():
        _port_of(url, f"{where}.{key}")
    per_region = _get(data, "pipeline_metrics", dict, where)
    if set(per_region) != set(regions):
        raise ConfigError(
            f"{where}.pipeline_metrics must name every region ({', '.join(regions)}), got {sorted(per_region)}"
        )
    for name, endpoint in per_region.items():
        if not isinstance(endpoint, str):
            raise ConfigError(f"{where}.pipeline_metrics.{name} must be host:port, got {endpoint!r}")
        _port_of(endpoint, f"{where}.pipeline_metrics.{name}")
    return ObservabilityConfig(
        prometheus_url=urls["prometheus_url"],
        pushgateway_url=urls["pushgateway_url"],
        exporter_url=urls["exporter_url"],
        pipeline_metrics={str(k): str(v) for k, v in per_region.items()},
        embedded=_get(data, "embedded", bool, where, False),
        scrape_interval_s=_get(data, "scrape_interval_s", float, where, 15.0),
        retention=_get(data, "retention", str, where, "7d"),
        rpo_s=_get(data, "rpo_s", int, where, 300),
    )


def _parse_airflow(data: Mapping[str, Any], state_dir: Path, root: Path) -> AirflowConfig:
    where = "airflow"
    url = _get(data, "url", str, where)
    _port_of(url, f"{where}.url")
    home = state_dir / "services" / "airflow"
    password_file = _get(data, "password_file", str, where, "")
    cfg = AirflowConfig(
        url=url.rstrip("/"),
        embedded=_get(data, "embedded", bool, where, False),
        username=_get(data, "username", str, where, "admin"),
        password_file=_path(password_file, root) if password_file else home / "passwords.json",
        database_uri=_get(data, "database_uri", str, where, "") or f"sqlite:///{home / 'airflow.db'}",
        executor=_get(data, "executor", str, where, "LocalExecutor"),
        parallelism=_get(data, "parallelism", int, where, 2),
    )
    if cfg.parallelism < 1:
        raise ConfigError(f"{where}.parallelism must be at least 1, got {cfg.parallelism}")
    if not cfg.username or ":" in cfg.username or "," in cfg.username:
        raise ConfigError(f"{where}.username must be a plain name (no ':' or ','), got {cfg.username!r}")
    return cfg


def _parse_ml(data: Mapping[str, Any]) -> MlConfig:
    where = "ml"
    cfg = MlConfig(
        experiment=_get(data, "experiment", str, where, "sepsis_risk"),
        model_name=_get(data, "model_name", str, where, "sepsis_risk"),
        validation_pct=_get(data, "validation_pct", int, where, 20),
        max_iter=_get(data, "max_iter", int, where, 40),
        max_depth=_get(data, "max_depth", int, where, 4),
        gate_metric=_get(data, "gate_metric", str, where, "auroc"),
        gate_tolerance=_get(data, "gate_tolerance", float, where, 0.01),
        auroc_floor=_get(data, "auroc_floor", float, where, 0.7),
        alert_threshold=_get(data, "alert_threshold", float, where, None),
        scorer_trigger_s=_get(data, "scorer_trigger_s", int, where, 60),
        drift_window_h=_get(data, "drift_window_h", int, where, 24),
        driver_memory=_get(data, "driver_memory", str, where, "6g"),
        shuffle_partitions=_get(data, "shuffle_partitions", int, where, 8),
    )
    if cfg.shuffle_partitions < 1:
        raise ConfigError(f"{where}.shuffle_partitions must be >= 1, got {cfg.shuffle_partitions}")
    if cfg.alert_threshold is not None and not 0 < cfg.alert_threshold < 1:
        raise ConfigError(f"{where}.alert_threshold must be between 0 and 1 (a risk), got {cfg.alert_threshold}")
    if cfg.scorer_trigger_s < 1 or cfg.drift_window_h < 1:
        raise ConfigError(f"{where}.scorer_trigger_s and {where}.drift_window_h must be >= 1")
    if cfg.gate_metric not in ("auroc", "auprc", "utility"):
        raise ConfigError(f"{where}.gate_metric must be auroc, auprc or utility, got {cfg.gate_metric!r}")
    if not 0 < cfg.validation_pct < 100:
        raise ConfigError(f"{where}.validation_pct must be between 1 and 99, got {cfg.validation_pct}")
    if cfg.gate_tolerance < 0:
        raise ConfigError(f"{where}.gate_tolerance must be >= 0, got {cfg.gate_tolerance}")
    return cfg


def _parse_replication(data: Mapping[str, Any]) -> ReplicationConfig:
    where = "replication"
    tables = _get(data, "tables", dict, where)
    for table, policy in tables.items():
        if not isinstance(table, str) or not TABLE_NAME.fullmatch(table):
            raise ConfigError(f"{where}.tables: {table!r} is not a table name <layer>.<name>")
        if policy not in RESIDENCY_POLICIES:
            raise ConfigError(f"{where}.tables.{table} must be one of {RESIDENCY_POLICIES}, got {policy!r}")
    cfg = ReplicationConfig(
        interval_s=_get(data, "interval_s", float, where, 10.0),
        parallelism=_get(data, "parallelism", int, where, 4),
        tables={str(k): str(v) for k, v in tables.items()},
    )
    if cfg.interval_s <= 0 or cfg.parallelism < 1:
        raise ConfigError(f"{where}: interval_s must be > 0 and parallelism >= 1")
    return cfg


def _mlflow_user(name: str) -> str:
    if not name or ":" in name or any(c.isspace() for c in name):
        raise ConfigError(f"mlflow.username must be a plain name (no ':' or spaces), got {name!r}")
    return name


def parse_config(data: Any, source: Path, root: Path = PROJECT_ROOT) -> Config:
    """Build a :class:`Config` from the parsed YAML of ``source``; relative paths resolve against ``root``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    where = "config"
    spark = _section(data, "spark", where)
    mlflow = _section(data, "mlflow", where)
    topics = _get(data, "topics", dict, where, {})
    stack = _get(data, "stack", dict, where, {})
    pipe = _get(data, "pipeline", dict, where, {})
    quality = _get(data, "quality", dict, where, {})
    regions_raw = _section(data, "regions", where)
    regions = {str(n): _parse_region(str(n), _section(regions_raw, str(n), "regions")) for n in regions_raw}
    roles = sorted(r.role for r in regions.values())
    if roles.count("primary") != 1:
        raise ConfigError(f"regions: exactly one region must have role primary (got roles {roles})")
    state_dir = _path(_get(data, "state_dir", str, where, ".state"), root)
    java_home_raw = _get(data, "java_home", str, where, "")
    extra_conf = _get(spark, "conf", dict, "spark", {})
    artifacts = _get(mlflow, "artifacts_uri", str, "mlflow", "")
    _port_of(_get(mlflow, "tracking_uri", str, "mlflow"), "mlflow.tracking_uri")
    connect = _section(data, "spark_connect", where)
    connect_cfg = SparkConnectConfig(
        url=_get(connect, "url", str, "spark_connect"),
        embedded=_get(connect, "embedded", bool, "spark_connect", False),
        autostart=_get(connect, "autostart", bool, "spark_connect", False),
        region=_get(connect, "region", str, "spark_connect", None),
    )
    if not connect_cfg.url.startswith("sc://"):
        raise ConfigError(f"spark_connect.url must be sc://host:port, got {connect_cfg.url!r}")
    _port_of(connect_cfg.url, "spark_connect.url")
    if connect_cfg.region is not None and connect_cfg.region not in regions:
        raise ConfigError(
            f"spark_connect.region {connect_cfg.region!r} is not one of the regions ({', '.join(regions)})"
        )
    return Config(
        profile=_get(data, "profile", str, where),
        source=source,
        state_dir=state_dir,
        jars_dir=_path(_get(data, "jars_dir", str, where, ".jars"), root),
        java_home=_path(java_home_raw, root) if java_home_raw else None,
        spark=SparkConfig(
            master=_get(spark, "master", str, "spark"),
            driver_memory=_get(spark, "driver_memory", str, "spark", "2g"),
            shuffle_partitions=_get(spark, "shuffle_partitions", int, "spark", 4),
            ui_enabled=_get(spark, "ui_enabled", bool, "spark", False),
            conf={str(k): str(v) for k, v in extra_conf.items()},
        ),
        mlflow=MlflowConfig(
            tracking_uri=_get(mlflow, "tracking_uri", str, "mlflow"),
            artifacts_uri=artifacts or (state_dir / "mlflow" / "artifacts").as_uri(),
            embedded=_get(mlflow, "embedded", bool, "mlflow", False),
            username=_mlflow_user(_get(mlflow, "username", str, "mlflow", "admin")),
            password_file=(
                _path(mlflow_pw, root) if (mlflow_pw := _get(mlflow, "password_file", str, "mlflow", ""))
                else state_dir / "secrets" / "mlflow-admin-password"
            ),
        ),
        airflow=_parse_airflow(_section(data, "airflow", where), state_dir, root),
        ml=_parse_ml(_get(data, "ml", dict, where, {})),
        spark_connect=connect_cfg,
        topics=TopicsConfig(
            telemetry=_get(topics, "telemetry", str, "topics", "telemetry.vitals"),
            alerts=_get(topics, "alerts", str, "topics", "alerts.news2"),
            partitions=_get(topics, "partitions", int, "topics", 3),
            replication_factor=_get(topics, "replication_factor", int, "topics", 1),
        ),
        stack=StackConfig(
            ready_timeout_s=_get(stack, "ready_timeout_s", float, "stack", 120.0),
            stop_timeout_s=_get(stack, "stop_timeout_s", float, "stack", 30.0),
        ),
        pipeline=PipelineConfig(
            trigger_interval_s=_get(pipe, "trigger_interval_s", float, "pipeline", 1.0),
            max_offsets_per_trigger=_get(pipe, "max_offsets_per_trigger", int, "pipeline", 200_000),
            merge_trigger_interval_s=_get(pipe, "merge_trigger_interval_s", float, "pipeline", 30.0),
            realtime_trigger_ms=_get(pipe, "realtime_trigger_ms", int, "pipeline", 500),
            news2_hold_ms=_get(pipe, "news2_hold_ms", int, "pipeline", 0),
            news2_carry_forward_s=_get(pipe, "news2_carry_forward_s", int, "pipeline", 3600),
            future_tolerance_s=_get(pipe, "future_tolerance_s", int, "pipeline", 300),
            max_event_age_s=_get(pipe, "max_event_age_s", int, "pipeline", 30 * 86400),
            minute_watermark_s=_get(pipe, "minute_watermark_s", int, "pipeline", 600),
            hourly_watermark_s=_get(pipe, "hourly_watermark_s", int, "pipeline", 7200),
            vacuum_min_retention_hours=_get(pipe, "vacuum_min_retention_hours", int, "pipeline", 168),
        ),
        observability=_parse_observability(_section(data, "observability", where), regions),
        regions=regions,
        replication=_parse_replication(_section(data, "replication", where)),
        quality=QualityConfig(
            enabled=_get(quality, "enabled", bool, "quality", True),
            suites_dir=_path(_get(quality, "suites_dir", str, "quality", "conf/quality"), root),
        ),
    )


def config_path(selector: str | None = None) -> Path:
    """The YAML file named by ``selector`` (or ``$LAKEHOUSE_ENV``): a profile name or a file path."""
    value = selector or os.environ.get(ENV_VAR) or DEFAULT_PROFILE
    if value.endswith((".yaml", ".yml")) or os.sep in value:
        return Path(value).expanduser().resolve()
    return CONF_DIR / f"{value}.yaml"


def write_sandbox_profile(source: Path, folder: Path, name: str) -> Path:
    """Copy profile ``source`` into ``folder`` with its own lakehouse root, topic names and (embedded) metastore
    database (same services), so a test or benchmark runs a clean pipeline and catalog beside the regular
    tables; returns the new file."""
    import uuid

    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    tag = f"{name}-{uuid.uuid4().hex[:8]}"
    for region_name, region in data["regions"].items():
        region["lakehouse_root"] = f"/sandbox/{tag}"
        metastore = region.get("metastore") or {}
        if metastore.get("derby_port") is not None:
            metastore["database"] = f"sandbox_{region_name}_{tag.replace('-', '_')}"
    data["topics"]["telemetry"] = f"{tag}.telemetry"
    data["topics"]["alerts"] = f"{tag}.alerts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load_config(selector: str | None = None) -> Config:
    """Load and validate the selected profile; every problem is a :class:`ConfigError` naming file and key."""
    path = config_path(selector)
    if not path.is_file():
        profiles = ", ".join(sorted(p.stem for p in CONF_DIR.glob("*.yaml")))
        raise ConfigError(
            f"configuration file {path} does not exist",
            fix=f"set {ENV_VAR} to one of the profiles ({profiles}) or to the path of a YAML file",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{path} is not valid YAML{at}: {getattr(exc, 'problem', exc)}",
            fix="correct the file's syntax (compare with conf/local.yaml)",
        ) from None
    try:
        cfg = parse_config(data, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", fix=exc.fix or "compare with conf/local.yaml") from None
    # the process's HDFS identity (simple auth) is the profile's pipeline user, whatever the HDFS client: Spark's
    # JVM, WebHDFS, and the deltalake package (hdfs-native), which would otherwise act as the OS user and be
    # refused by the permission checks on the lakehouse folders
    os.environ.setdefault("HADOOP_USER_NAME", cfg.primary.hdfs.user)
    from lakehouse.security.credentials import export_mlflow_client_env  # imports this module

    export_mlflow_client_env(cfg)
    return cfg
