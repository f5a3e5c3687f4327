"""The services of the stack: how each is configured, started and checked (Prometheus, the Pushgateway and
the lakehouse exporter are defined in :mod:`lakehouse.observability.services`).

In the local profile every service is *managed*: `lakehouse stack up` writes its config under
``<state_dir>/<name>/``, formats its storage once, and runs it as a plain process. In the cluster
profile the same services are *external*: only their readiness probe is used.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from lakehouse.config import Config, RegionConfig
from lakehouse.errors import StackError
from lakehouse.stack import jvm, probes

JVM_OPENS = [
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "-Djava.awt.headless=true",
    "-XX:+UseG1GC",
]


def _host(url: str) -> str:
    return urlparse(url if "://" in url else f"tcp://{url}").hostname or "127.0.0.1"


def _port(url: str) -> int:
    port = urlparse(url if "://" in url else f"tcp://{url}").port
    assert port is not None  # validated when the config was loaded
    return port


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64, never starting with '-'.

    Kafka's own ``Uuid.randomUuid`` avoids a leading '-' because the storage tool's
    argument parser would read such an id as an option (1 in 64 random ids).
    """
    while True:
        cid = base64.urlsafe_b64encode(random_bytes(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


@dataclass(frozen=True)
class Service:
    """One process of the stack (or, in the cluster profile, one external endpoint)."""

    name: str
    kind: str
    region: str | None
    port: int
    ports: tuple[int, ...]
    managed: bool
    home: Path
    optional: bool = False  # started only when named (`stack up --service NAME`) or configured to autostart

    @property
    def jar_sets(self) -> tuple[str, ...]:
        """Maven jar sets the service runs from (checked before start-up)."""
        return ()

    @property
    def pid_file(self) -> Path:
        return self.home / "service.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / f"{self.name}.log"

    @property
    def marker(self) -> str:
        """A string on the process's command line that proves it is this service's (its home)."""
        return str(self.home)

    @property
    def markers(self) -> tuple[str, ...]:
        """Any of these on the command line proves the process is this service's (a process that retitles
        itself, such as Airflow's api-server, has a second form)."""
        return (self.marker,)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def prepare(self, cfg: Config, java: Path) -> None:
        """Write config files and format storage; idempotent (existing data is kept)."""

    def command(self, cfg: Config, java: Path) -> list[str]:
        raise NotImplementedError

    def env(self, cfg: Config, java: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["JAVA_HOME"] = str(java.resolve().parent.parent)
        return env

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        raise NotImplementedError

    def provision(self, cfg: Config) -> None:
        """Set-up that needs the running service (after its probe passed); idempotent. Nothing by default."""

    def _run_once(self, cmd: list[str], cfg: Config, java: Path, what: str) -> None:
        log = self.home / "logs" / f"{self.name}-{what}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            rc = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env(cfg, java), cwd=self.home, check=False
            ).returncode
        if rc != 0:
            from lakehouse.stack.process import tail

            raise StackError(
                f"{self.name}: {what} failed (exit {rc}); last lines of {log}:\n{tail(log)}",
                fix=f"read {log}; if the data folder {self.home} is damaged, remove it (data is lost)",
            )


@dataclass(frozen=True)
class KafkaBroker(Service):
    """A Kafka node in KRaft combined mode (broker + controller): node ``node_id`` of the region's ``brokers``
    (one by default; three at cluster shape, one bootstrap server each, all of them voters of one quorum)."""

    region_cfg: RegionConfig | None = None
    node_id: int = 1
    brokers: int = 1

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def cluster_id_file(self) -> Path:
        """The KRaft cluster id every node's storage is formatted with (one broker: in its own home)."""
        assert self.region_cfg is not None
        return (
            self.home / "cluster.id"
            if self.brokers == 1
            else self.home.parent / f"kafka-{self.region_cfg.name}.cluster.id"
        )

    def _properties(self, cfg: Config) -> str:
        assert self.region_cfg is not None and self.region_cfg.embedded is not None
        first = self.region_cfg.embedded.kafka_controller_port
        ctl = first + self.node_id - 1
        voters = ",".join(f"{n}@{self.host}:{first + n - 1}" for n in range(1, self.brokers + 1))
        internal_rf = min(3, self.brokers)  # the brokers' own topics: as replicated as the cluster allows
        internal_isr = min(2, self.brokers)
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                f"controller.quorum.voters={voters}",
                *self._listeners(ctl),
                f"log.dirs={self.data_dir}",
                f"num.partitions={cfg.topics.partitions}",
                f"default.replication.factor={min(cfg.topics.replication_factor, self.brokers)}",
                f"min.insync.replicas={min(cfg.topics.min_insync_replicas, self.brokers)}",
                "auto.create.topics.enable=false",
                f"offsets.topic.replication.factor={internal_rf}",
                "offsets.topic.num.partitions=3",
                f"transaction.state.log.replication.factor={internal_rf}",
                f"transaction.state.log.min.isr={internal_isr}",
                f"share.coordinator.state.topic.replication.factor={internal_rf}",
                f"share.coordinator.state.topic.min.isr={internal_isr}",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "log.segment.bytes=67108864",
                "",
            ]
        )

    @property
    def keystore(self) -> Path:
        return self.home / "keystore.pem"

    def _listeners(self, ctl: int) -> list[str]:
        assert self.region_cfg is not None
        auth = self.region_cfg.kafka.auth
        if auth is not None:  # secure mode: SASL_SSL only, ACLs (lakehouse.security.kafka_auth)
            from lakehouse.security import kafka_auth

            return kafka_auth.broker_properties(auth, self.host, self.port, ctl, self.keystore)
        return [
            f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{ctl}",
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]

    def prepare(self, cfg: Config, java: Path) -> None:
        assert self.region_cfg is not None
        self.home.mkdir(parents=True, exist_ok=True)
        from lakehouse.security import credentials

        auth = self.region_cfg.kafka.auth
        if auth is not None:
            from lakehouse.security import kafka_auth

            kafka_auth.ensure_material(auth)
            kafka_auth.broker_keystore(auth, self.host, self.keystore)
        # a secure broker's file holds the admin's SCRAM password: owner-only, like the secret files
        credentials.write_private(self.home / "server.properties", self._properties(cfg).encode())
        (self.home / "log4j2.properties").write_text(KAFKA_LOG4J2)
        if (self.data_dir / "meta.properties").exists():
            return
        id_file = self.cluster_id_file
        if not id_file.exists() or id_file.read_text().strip().startswith("-"):
            id_file.write_text(new_cluster_id())
        cmd = self._java(cfg, java, "kafka.tools.StorageTool")
        cmd += ["format", f"--cluster-id={id_file.read_text().strip()}", "-c", str(self.home / "server.properties")]
        if auth is not None:
            cmd += kafka_auth.scram_format_args(auth)  # the users exist from the first start on
        self._run_once(cmd, cfg, java, "format")

    def provision(self, cfg: Config) -> None:
        """Secure mode: the topics and the ACLs, created as the admin user once the broker is ready."""
        assert self.region_cfg is not None
        if self.region_cfg.kafka.auth is not None and self.node_id == 1:
            from lakehouse.security import kafka_auth

            kafka_auth.provision(self.region_cfg.kafka, cfg.topics)

    def _java(self, cfg: Config, java: Path, main: str) -> list[str]:
        assert self.region_cfg is not None and self.region_cfg.embedded is not None
        heap = self.region_cfg.embedded.kafka_heap
        return [
            str(java), f"-Xmx{heap}", "-Xms64m", *JVM_OPENS,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", jvm.classpath(cfg, "kafka"), main,
        ]  # fmt: skip

    def command(self, cfg: Config, java: Path) -> list[str]:
        return [*self._java(cfg, java, "kafka.Kafka"), str(self.home / "server.properties")]

    @property
    def jar_sets(self) -> tuple[str, ...]:
        return ("kafka",)

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        assert self.region_cfg is not None
        from lakehouse.security import kafka_auth

        try:
            settings = kafka_auth.client_kwargs(self.region_cfg.kafka, kafka_auth.ADMIN)
        except Exception as exc:  # noqa: BLE001 - LakehouseError: no credentials (yet) on this host
            return probes.Probe(False, f"no Kafka credentials: {exc}")
        # this node itself (one broker: the region's bootstrap, the same address)
        own = self.region_cfg.kafka.bootstrap if self.brokers == 1 else f"{self.host}:{self.port}"
        return probes.kafka(own, timeout_s, settings)


KAFKA_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
"""

HADOOP_LOG4J = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
"""


EMPTY_WEB_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="3.1"></web-app>
"""


def _hadoop_xml(props: dict[str, str]) -> str:
    body = "".join(f"  <property><name>{k}</name><value>{v}</value></property>\n" for k, v in props.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'


@dataclass(frozen=True)
class HdfsDaemon(Service):
    """The NameNode or a DataNode of one region's HDFS (WebHDFS on): one DataNode and replication 1 by default,
    DataNode ``index`` of ``embedded.datanodes`` at cluster shape (its ports 100 * (index - 1) above the first's)."""

    region_cfg: RegionConfig | None = None
    data_root: Path = Path()
    index: int = 1

    @property
    def data_dir(self) -> Path:
        """This DataNode's block storage (the first keeps the one-DataNode layout's folder)."""
        return self.data_root / ("data" if self.index == 1 else f"data-{self.index}")

    @property
    def conf_dir(self) -> Path:
        return self.home / "etc"

    def _site(self) -> tuple[dict[str, str], dict[str, str]]:
        assert self.region_cfg is not None and self.region_cfg.embedded is not None
        r, e = self.region_cfg, self.region_cfg.embedded
        nn_rpc, nn_http = _port(r.hdfs.namenode_uri), _port(r.hdfs.webhdfs_url)
        shift = 100 * (self.index - 1)
        core = {
            "fs.defaultFS": f"hdfs://{self.host}:{nn_rpc}",
            "hadoop.tmp.dir": str(self.home / "tmp"),
            "hadoop.http.staticuser.user": r.hdfs.user,
        }
        hdfs = {
            "dfs.namenode.name.dir": str(self.data_root / "name"),
            "dfs.datanode.data.dir": str(self.data_dir),
            "dfs.replication": str(r.hdfs.replication),
            "dfs.permissions.enabled": "true",  # the pipeline user owns the lakehouse; others read gold only
            "dfs.webhdfs.enabled": "true",
            "dfs.namenode.rpc-address": f"{self.host}:{nn_rpc}",
            "dfs.namenode.rpc-bind-host": self.host,
            "dfs.namenode.http-address": f"{self.host}:{nn_http}",
            "dfs.namenode.http-bind-host": self.host,
            "dfs.namenode.servicerpc-bind-host": self.host,
            "dfs.namenode.secondary.http-address": f"{self.host}:0",
            "dfs.datanode.address": f"{self.host}:{e.datanode_port + shift}",
            "dfs.datanode.http.address": f"{self.host}:{e.datanode_http_port + shift}",
            "dfs.datanode.ipc.address": f"{self.host}:{e.datanode_ipc_port + shift}",
            "dfs.datanode.hostname": self.host,
            "dfs.namenode.datanode.registration.ip-hostname-check": "false",
            "dfs.namenode.safemode.extension": "0",
            "dfs.namenode.safemode.min.datanodes": "0",
            "dfs.heartbeat.interval": "1",
            "dfs.namenode.heartbeat.recheck-interval": "10000",
            "dfs.datanode.du.reserved": "0",
            "dfs.namenode.resource.du.reserved": str(64 * 1024 * 1024),
        }
        return core, hdfs

    def prepare(self, cfg: Config, java: Path) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        core, hdfs = self._site()
        (self.conf_dir / "core-site.xml").write_text(_hadoop_xml(core))
        (self.conf_dir / "hdfs-site.xml").write_text(_hadoop_xml(hdfs))
        (self.conf_dir / "log4j.properties").write_text(HADOOP_LOG4J)
        # The Maven jars lack the web UI resources the daemons' HTTP servers look up on the classpath
        # (webapps/<name>); empty web apps suffice, since WebHDFS and /jmx are servlets of their own.
        for app in ("hdfs", "datanode", "secondary", "static"):
            web_inf = self.conf_dir / "webapps" / app / "WEB-INF"
            web_inf.mkdir(parents=True, exist_ok=True)
            (web_inf / "web.xml").write_text(EMPTY_WEB_XML)
        if self.kind == "hdfs-namenode" and not (self.data_root / "name" / "current" / "VERSION").exists():
            assert self.region_cfg is not None
            cmd = self._java(cfg, java, "org.apache.hadoop.hdfs.server.namenode.NameNode")
            cmd += ["-format", "-nonInteractive", "-force", "-clusterid", f"lakehouse-{self.region_cfg.name}"]
            self._run_once(cmd, cfg, java, "format")

    def _java(self, cfg: Config, java: Path, main: str) -> list[str]:
        assert self.region_cfg is not None and self.region_cfg.embedded is not None
        e = self.region_cfg.embedded
        heap = e.namenode_heap if self.kind == "hdfs-namenode" else e.datanode_heap
        return [
            str(java), f"-Xmx{heap}", "-Xms64m", *JVM_OPENS,
            f"-Dhadoop.log.dir={self.home / 'logs'}",
            f"-Dhadoop.home.dir={self.home}",
            f"-Dhadoop.id.str={self.name}",
            "-cp", jvm.classpath(cfg, "hadoop", self.conf_dir), main,
        ]  # fmt: skip

    @property
    def jar_sets(self) -> tuple[str, ...]:
        return ("hadoop",)

    def command(self, cfg: Config, java: Path) -> list[str]:
        main = {
            "hdfs-namenode": "org.apache.hadoop.hdfs.server.namenode.NameNode",
            "hdfs-datanode": "org.apache.hadoop.hdfs.server.datanode.DataNode",
        }[self.kind]
        return self._java(cfg, java, main)

    def env(self, cfg: Config, java: Path) -> dict[str, str]:
        env = super().env(cfg, java)
        env["HADOOP_CONF_DIR"] = str(self.conf_dir)
        env["HADOOP_USER_NAME"] = self.region_cfg.hdfs.user if self.region_cfg else "lakehouse"
        return env

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        assert self.region_cfg is not None
        h = self.region_cfg.hdfs
        if self.kind == "hdfs-namenode":
            return probes.hdfs_namenode(h.webhdfs_url, h.user, timeout_s)
        several = self.region_cfg.embedded is not None and self.region_cfg.embedded.datanodes > 1
        return probes.hdfs_datanode(h.webhdfs_url, h.user, timeout_s, f"{self.host}:{self.port}" if several else None)


@dataclass(frozen=True)
class MlflowServer(Service):
    """The MLflow tracking server: SQLite backend store, artifacts proxied to ``artifacts_uri``, and MLflow's
    basic-auth app in front (users and permissions in ``basic_auth.db``; the admin's password generated into
    the state folder's secrets, since MLflow ships no safe default; everyone else reads only what they are
    granted, READ by default), run as ``lakehouse-auth``, which also records each refused request."""

    @property
    def auth_config(self) -> Path:
        return self.home / "basic_auth.ini"

    @property
    def denials_file(self) -> Path:
        """The requests the server refused (401/403), one JSON line each (:mod:`lakehouse.security.mlflow_app`)."""
        return self.home / "logs" / "denials.jsonl"

    def prepare(self, cfg: Config, java: Path) -> None:
        from lakehouse.security import credentials

        self.home.mkdir(parents=True, exist_ok=True)
        art = urlparse(cfg.mlflow.artifacts_uri)
        if art.scheme in ("", "file"):
            Path(art.path).mkdir(parents=True, exist_ok=True)
        credentials.mlflow_password(cfg)  # generated now, before the server creates its admin from it
        self.auth_config.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{self.home / 'basic_auth.db'}\n"
            f"admin_username = {cfg.mlflow.username}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            f"auth_cache_ttl_seconds = {cfg.mlflow.auth_cache_ttl_s}\n",  # why: MlflowConfig.auth_cache_ttl_s
            encoding="utf-8",
        )

    def command(self, cfg: Config, java: Path) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server", "--app-name", "lakehouse-auth",
            "--host", self.host, "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.home / 'mlflow.db'}",
            "--artifacts-destination", cfg.mlflow.artifacts_uri,
        ]  # fmt: skip

    def env(self, cfg: Config, java: Path) -> dict[str, str]:
        from lakehouse.security import credentials
        from lakehouse.security.mlflow_app import DENIALS_ENV

        env = dict(os.environ)
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(self.auth_config)
        env[DENIALS_ENV] = str(self.denials_file)
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = credentials.secret(cfg, "mlflow-flask-secret-key")
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = credentials.mlflow_password(cfg)
        return env

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        from lakehouse.security import credentials

        try:
            auth = (cfg.mlflow.username, credentials.mlflow_password(cfg))
        except Exception as exc:  # noqa: BLE001 - LakehouseError: no password file on this host
            return probes.Probe(False, f"no MLflow credentials: {exc}")
        return probes.mlflow(cfg.mlflow.tracking_uri, timeout_s, auth)


@dataclass(frozen=True)
class DerbyMetastore(Service):
    """A region's persistent catalog (embedded): a Derby network server holding the region's Hive metastore
    database (and the sandbox databases of tests), which Spark's built-in Hive client reaches over JDBC."""

    region_cfg: RegionConfig | None = None

    @property
    def jar_sets(self) -> tuple[str, ...]:
        return ("metastore",)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def prepare(self, cfg: Config, java: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self, cfg: Config, java: Path) -> list[str]:
        assert self.region_cfg is not None and self.region_cfg.embedded is not None
        return [
            str(java), f"-Xmx{self.region_cfg.embedded.metastore_heap}", "-Xms32m", "-Djava.awt.headless=true",
            f"-Dderby.system.home={self.data_dir}",
            f"-Dderby.stream.error.file={self.home / 'logs' / 'derby.log'}",
            "-cp", jvm.classpath(cfg, "metastore"), "org.apache.derby.drda.NetworkServerControl",
            "start", "-h", self.host, "-p", str(self.port), "-noSecurityManager",
        ]  # fmt: skip

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        assert self.region_cfg is not None
        if self.region_cfg.metastore.uri is not None:
            return probes.hive_metastore(self.region_cfg.metastore.uri, timeout_s)
        java = str(jvm.java_binary(cfg))
        return probes.derby(java, jvm.classpath(cfg, "metastore"), self.host, self.port, timeout_s)


@dataclass(frozen=True)
class SparkConnectServer(Service):
    """A long-running Spark Connect server (gRPC) over one region's tables and persistent catalog, so an analyst's
    notebook needs only the thin client: ``SparkSession.builder.remote("sc://host:port")``."""

    region_cfg: RegionConfig | None = None

    @property
    def jar_sets(self) -> tuple[str, ...]:
        return ("spark", "metastore")

    def prepare(self, cfg: Config, java: Path) -> None:
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)

    def command(self, cfg: Config, java: Path) -> list[str]:
        from lakehouse import session

        assert self.region_cfg is not None
        conf = session.spark_conf(
            cfg,
            f"lakehouse-spark-connect-{self.region_cfg.name}",
            {
                **session.catalog_conf(cfg, self.region_cfg),
                "spark.driver.memory": "1g",
                "spark.local.dir": str(self.home / "tmp"),
                "spark.connect.grpc.binding.address": self.host,
                "spark.connect.grpc.binding.port": str(self.port),
            },
        )
        submit = jvm.spark_home() / "bin" / "spark-submit"
        args = [a for key, value in conf.items() for a in ("--conf", f"{key}={value}")]
        return [str(submit), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer", *args]

    def env(self, cfg: Config, java: Path) -> dict[str, str]:
        env = super().env(cfg, java)
        env["SPARK_HOME"] = str(jvm.spark_home())
        env["SPARK_LOCAL_IP"] = self.host
        env["HADOOP_USER_NAME"] = self.region_cfg.hdfs.user if self.region_cfg else "lakehouse"
        env["PYSPARK_PYTHON"] = sys.executable
        return env

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        return probes.spark_connect(cfg.spark_connect.url, timeout_s)


@dataclass(frozen=True)
class SparkStandalone(Service):
    """A Spark standalone master (``kind`` spark-master) or one of its workers (spark-worker), run by
    ``bin/spark-class`` of pyspark's own distribution: the cluster ``lakehouse submit`` sends jobs to
    (``spark_cluster`` in the profile). Worker ``index`` (from 1) offers ``worker_cores`` and ``worker_memory``."""

    index: int = 0
    web_port: int = 0

    @property
    def jar_sets(self) -> tuple[str, ...]:
        return ()

    @property
    def properties_file(self) -> Path:
        return self.home / "spark-defaults.conf"

    def prepare(self, cfg: Config, java: Path) -> None:
        (self.home / "work").mkdir(parents=True, exist_ok=True)
        lines = [
            "spark.master.rest.enabled false",
            # a finished application's executor folders (its jars, logs) go once it ends: the disk stays flat
            "spark.worker.cleanup.enabled true",
            "spark.worker.cleanup.appDataTtl 3600",
            f"spark.local.dir {self.home / 'work' / 'tmp'}",
        ]
        self.properties_file.write_text("\n".join(lines) + "\n")

    def command(self, cfg: Config, java: Path) -> list[str]:
        spark_class = str(jvm.spark_home() / "bin" / "spark-class")
        common = ["--host", self.host, "--port", str(self.port), "--webui-port", str(self.web_port),
                  "--properties-file", str(self.properties_file)]  # fmt: skip
        if self.kind == "spark-master":
            return [spark_class, "org.apache.spark.deploy.master.Master", *common]
        sc = cfg.spark_cluster
        assert sc is not None  # a worker exists only for a configured cluster
        return [
            spark_class, "org.apache.spark.deploy.worker.Worker", *common, "--cores", str(sc.worker_cores),
            "--memory", sc.worker_memory, "--work-dir", str(self.home / "work"), sc.master_url,
        ]  # fmt: skip

    def env(self, cfg: Config, java: Path) -> dict[str, str]:
        env = super().env(cfg, java)
        env["SPARK_HOME"] = str(jvm.spark_home())
        env["SPARK_LOCAL_IP"] = self.host
        env["SPARK_DAEMON_MEMORY"] = "256m"  # the daemons' own heap (executors get spark_cluster.executor_memory)
        env["SPARK_CONF_DIR"] = str(self.home)  # no spark-env.sh or log4j2 of somebody else's
        env["PYSPARK_PYTHON"] = sys.executable  # executors' Python workers: the project's interpreter
        return env

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        assert cfg.spark_cluster is not None
        web = cfg.spark_cluster.web_url
        if self.kind == "spark-master":
            return probes.spark_master(web, timeout_s)
        return probes.spark_worker(web, self.host, self.port, timeout_s)


def spark_cluster_services(cfg: Config) -> list[Service]:
    """The standalone master and its workers (optional: `lakehouse stack up --spark-cluster` starts them). On a
    cluster profile they are the platform's: only the master's health is checked."""
    sc = cfg.spark_cluster
    if sc is None:
        return []
    home = cfg.state_dir / "services"
    master_port, web_port = _port(sc.master_url), _port(sc.web_url)
    out: list[Service] = [
        SparkStandalone(
            name="spark-master", kind="spark-master", region=None, port=master_port,
            ports=(master_port, web_port) if sc.embedded else (), managed=sc.embedded, home=home / "spark-master",
            optional=True, web_port=web_port,
        )
    ]  # fmt: skip
    if not sc.embedded:
        return out
    for i in range(1, sc.workers + 1):
        out.append(
            SparkStandalone(
                name=f"spark-worker-{i}", kind="spark-worker", region=None, port=sc.worker_port + i,
                ports=(sc.worker_port + i, sc.worker_web_port + i), managed=True, home=home / f"spark-worker-{i}",
                optional=True, index=i, web_port=sc.worker_web_port + i,
            )
        )  # fmt: skip
    return out


def services(cfg: Config) -> list[Service]:
    """Every service of the profile, in start order (NameNodes before their DataNodes)."""
    out: list[Service] = []
    for region in cfg.regions.values():
        e = region.embedded
        managed = e is not None
        home = cfg.state_dir / "services"
        servers = region.kafka.bootstrap_servers if e else region.kafka.bootstrap_servers[:1]
        for i, server in enumerate(servers, 1):  # one broker: kafka-asia; three: kafka-asia-1, -2, -3
            name = f"kafka-{region.name}" if len(servers) == 1 else f"kafka-{region.name}-{i}"
            out.append(
                KafkaBroker(
                    name=name, kind="kafka", region=region.name, port=_port(server),
                    ports=(_port(server), e.kafka_controller_port + i - 1) if e else (),
                    managed=managed, home=home / name, region_cfg=region, node_id=i, brokers=len(servers),
                )
            )  # fmt: skip
        hdfs_root = cfg.state_dir / "hdfs" / region.name
        nn_ports = (_port(region.hdfs.namenode_uri), _port(region.hdfs.webhdfs_url))
        out.append(
            HdfsDaemon(
                name=f"hdfs-namenode-{region.name}", kind="hdfs-namenode", region=region.name,
                port=nn_ports[0], ports=nn_ports if e else (), managed=managed,
                home=home / f"hdfs-namenode-{region.name}", region_cfg=region, data_root=hdfs_root,
            )
        )  # fmt: skip
        count = e.datanodes if e else 1
        for i in range(1, count + 1):  # one DataNode: hdfs-datanode-asia; three: hdfs-datanode-asia-1, -2, -3
            name = f"hdfs-datanode-{region.name}" if count == 1 else f"hdfs-datanode-{region.name}-{i}"
            shift = 100 * (i - 1)
            out.append(
                HdfsDaemon(
                    name=name, kind="hdfs-datanode", region=region.name, port=e.datanode_port + shift if e else 0,
                    ports=tuple(p + shift for p in (e.datanode_port, e.datanode_http_port, e.datanode_ipc_port)) if e else (),
                    managed=managed, home=home / name, region_cfg=region, data_root=hdfs_root, index=i,
                )
            )  # fmt: skip
        meta = region.metastore
        meta_port = meta.derby_port if meta.derby_port is not None else _port(meta.uri or "")
        out.append(
            DerbyMetastore(
                name=f"metastore-{region.name}", kind="metastore", region=region.name, port=meta_port,
                ports=(meta_port,) if meta.derby_port is not None else (), managed=meta.derby_port is not None,
                home=home / f"metastore-{region.name}", region_cfg=region,
            )
        )  # fmt: skip
    mport = _port(cfg.mlflow.tracking_uri)
    out.append(
        MlflowServer(
            name="mlflow", kind="mlflow", region=None, port=mport,
            ports=(mport,) if cfg.mlflow.embedded else (), managed=cfg.mlflow.embedded,
            home=cfg.state_dir / "services" / "mlflow",
        )
    )  # fmt: skip
    sc = cfg.spark_connect
    sc_port = _port(sc.url)
    out.append(
        SparkConnectServer(
            name="spark-connect", kind="spark-connect", region=cfg.region(sc.region).name, port=sc_port,
            ports=(sc_port,) if sc.embedded else (), managed=sc.embedded, home=cfg.state_dir / "services" / "spark-connect",
            optional=not sc.autostart, region_cfg=cfg.region(sc.region),
        )
    )  # fmt: skip
    from lakehouse.observability.services import observability_services
    from lakehouse.orchestration.services import airflow_services

    return out + spark_cluster_services(cfg) + airflow_services(cfg) + observability_services(cfg)
