"""The one SparkSession factory: Delta extensions, the region's persistent catalog, local jars, master from config."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from lakehouse.config import CONF_DIR, PROJECT_ROOT, Config, RegionConfig
from lakehouse.errors import ConfigError
from lakehouse.security import encryption
from lakehouse.stack import cds, jvm

DERBY_CLIENT_JARS = ("derbyclient",)  # the metastore client driver; derby, derbyshared, derbytools ship with pyspark
SUBMITTED_VAR = "PYSPARK_GATEWAY_PORT"  # set by spark-submit for the Python driver it launched (never by pyspark's
# own in-process launch): that driver's JVM already runs with the submit command's master and driver settings
ML_JOBS = ("build_features", "train", "score", "validate_features")  # submitted with ml_overrides


def submitted() -> bool:
    """Whether this process is a Python driver that spark-submit launched (`lakehouse submit`, or a platform's
    own spark-submit): its master is the submit command's, not the profile's."""
    return SUBMITTED_VAR in os.environ


def without_gateway(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the gateway variables of a submitted driver (:func:`submitted`): a process started from
    it launches a JVM of its own instead of talking to this driver's."""
    return {k: v for k, v in env.items() if not k.startswith("PYSPARK_GATEWAY_")}


def loopback_master(master: str) -> bool:
    """Whether a job on ``master`` runs on this machine's loopback only (local mode, or a cluster on 127.0.0.1):
    its driver then binds to 127.0.0.1, where the executors reach it."""
    if master.startswith("local"):
        return True
    return urlparse(master).hostname in ("127.0.0.1", "localhost")


def catalog_conf(cfg: Config, region: RegionConfig) -> dict[str, str]:
    """Spark settings that make the session's catalog the region's persistent Hive metastore.

    Embedded: Spark's built-in Hive 2.3 metastore client talks straight to the metastore database on the
    stack's Derby network server (the schema is created on first use); several processes share it safely.
    Cluster: the region's external Thrift metastore.
    """
    meta = region.metastore
    conf = {
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.hive.metastore.schema.verification": "false",
    }
    if meta.uri is not None:
        conf["spark.hadoop.hive.metastore.uris"] = meta.uri
        return conf
    conf.update(
        {
            "spark.hadoop.javax.jdo.option.ConnectionURL": meta.jdbc_url,
            "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.ClientDriver",
            "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
            # on the driver's system classpath, where DataNucleus looks the JDBC driver up
            "spark.driver.extraClassPath": derby_client_classpath(cfg),
        }
    )
    return conf


def derby_client_classpath(cfg: Config) -> str:
    """The Derby network client jars of the embedded metastores. Every local driver has them on its classpath,
    with or without the persistent catalog: the class-data archive (:mod:`lakehouse.stack.cds`) is only mapped
    by a JVM whose classpath starts with the one it was dumped with."""
    client = [p for p in jvm.jars(cfg, "metastore") if p.name.startswith(tuple(f"{n}-" for n in DERBY_CLIENT_JARS))]
    return os.pathsep.join(str(p) for p in client)


def spark_conf(cfg: Config, app_name: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every Spark setting a lakehouse job runs with (config values first, then ``overrides``)."""
    jar_list = ",".join(str(p) for p in (*jvm.jars(cfg, "spark"), *jvm.jars(cfg, "crypto")))
    conf = {
        "spark.app.name": app_name,
        "spark.master": cfg.spark.master,
        "spark.driver.memory": cfg.spark.driver_memory,
        "spark.jars": jar_list,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
        "spark.ui.enabled": str(cfg.spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.local.dir": str(cfg.state_dir / "spark" / "tmp"),
        "spark.sql.warehouse.dir": str(cfg.state_dir / "spark" / "warehouse"),
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        # queries share the cores fairly; the real-time NEWS2 query's pool is served first (conf/spark/)
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(CONF_DIR / "spark" / "fairscheduler.xml"),
        # HDFS client: a file's close asks the NameNode to complete it and, when the DataNode's block
        # report is a few ms behind, sleeps 400 ms before asking again; every Delta commit and checkpoint
        # file pays that. Retry after 10 ms (doubling) instead.
        "spark.hadoop.dfs.client.block.write.locateFollowingBlock.initial.delay.ms": "10",
        # the copies a written block gets (the client decides, not the NameNode): the primary region's replication
        "spark.hadoop.dfs.replication": str(cfg.primary.hdfs.replication),
        # pyspark's Arrow serializer concatenates frames with all-null columns (news2_job's alert-only rows);
        # pandas warns about a future change that does not affect those typed columns
        "spark.executorEnv.PYTHONWARNINGS": "ignore::FutureWarning:pyspark.sql.pandas.serializers",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Parquet modular encryption of the tables that opt in (their PHI columns), keys from the KMS client
        **encryption.spark_conf(cfg),
    }
    if loopback_master(cfg.spark.master):
        # the embedded profile stays on loopback
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        if any(r.metastore.uri is None for r in cfg.regions.values()):
            conf["spark.driver.extraClassPath"] = derby_client_classpath(cfg)
    conf.update(cfg.spark.conf)
    if java := driver_java_options(cfg, cfg.spark.java_options):
        conf["spark.driver.extraJavaOptions"] = java
    conf.update(overrides or {})
    return conf


EXIT_ON_OOM = "-XX:+ExitOnOutOfMemoryError"


def driver_java_options(cfg: Config, options: str) -> str:
    """The driver JVM's options: the profile's Spark conf, ``options`` (``spark.java_options``, or
    ``ml.java_options`` for the ML jobs), then the class-data archive of these jars when set-up built one.

    A driver out of heap exits (``EXIT_ON_OOM``): an ``OutOfMemoryError`` can kill one of Spark's own threads
    (e.g. the scheduler's), after which the job would wait forever; exiting fails it, and a streaming query resumes
    from its checkpoint when started again."""
    extra = cfg.spark.conf.get("spark.driver.extraJavaOptions", "")
    return " ".join(o for o in (EXIT_ON_OOM, extra, options, *cds.java_options(cfg)) if o)


def ml_overrides(cfg: Config) -> dict[str, str]:
    """Spark settings of the ML jobs (features, training, scoring, evaluation, CV, the training benchmark):
    their own driver heap and shuffle partitions (``ml.driver_memory``, ``ml.shuffle_partitions``). The
    streaming pipeline keeps ``spark.shuffle_partitions`` = cores for its state stores; a feature build of
    training set A needs smaller tasks and more heap than that (2 partitions in a 2 GiB driver run out of heap).
    Their extra driver JVM options are ``ml.java_options``."""
    return {
        "spark.driver.memory": cfg.ml.driver_memory,
        "spark.sql.shuffle.partitions": str(cfg.ml.shuffle_partitions),
        "spark.driver.extraJavaOptions": driver_java_options(cfg, cfg.ml.java_options),
    }


def session_conf(cfg: Config, app_name: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """What :func:`build_spark` sets on the session: :func:`spark_conf`, but in a driver that spark-submit
    launched (:func:`submitted`) without the master: the submit command's ``--master`` decides where its
    executors run."""
    conf = spark_conf(cfg, app_name, overrides)
    if submitted():
        conf.pop("spark.master")
    return conf


def build_spark(
    cfg: Config,
    app_name: str,
    overrides: Mapping[str, str] | None = None,
    catalog_region: str | None = None,
    persistent_catalog: bool = True,
    register_tables: bool | None = None,
) -> SparkSession:
    """Get or create the process's SparkSession for ``cfg`` (jars are local files; nothing is downloaded).

    With ``persistent_catalog`` the session's catalog is the Hive metastore of ``catalog_region`` (default:
    the primary), where `lakehouse.tables.ensure_all` created the databases and tables once, so SQL such as
    ``SELECT * FROM gold.news2`` works in every new process. Without it the catalog lives in memory, for
    sessions that must not touch the shared catalog (the test session). ``register_tables`` is the old name
    of ``persistent_catalog``, kept for callers written before the persistent catalog.
    """
    if register_tables is not None:
        persistent_catalog = register_tables
    os.environ.setdefault("JAVA_HOME", str(jvm.java_home(cfg)))
    os.environ.setdefault("HADOOP_USER_NAME", cfg.primary.hdfs.user)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if cfg.spark.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    (cfg.state_dir / "spark" / "tmp").mkdir(parents=True, exist_ok=True)
    catalog = catalog_conf(cfg, cfg.region(catalog_region)) if persistent_catalog else {}
    builder = SparkSession.builder
    for key, value in session_conf(cfg, app_name, {**catalog, **(overrides or {})}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def resolve_master(cfg: Config, master: str | None) -> str:
    """The master a job is submitted to: ``None`` is the profile's ``spark.master``, ``cluster`` its standalone
    cluster (``spark_cluster.master_url``); anything else (``spark://``, ``k8s://``, ``local[...]``) as given."""
    if master is None:
        return cfg.spark.master
    if master == "cluster":
        if cfg.spark_cluster is None:
            raise ConfigError(
                f"--master cluster: the profile {cfg.source} has no spark_cluster section",
                fix="add one (see conf/local.yaml) or give the master URL, e.g. --master spark://host:7077",
            )
        return cfg.spark_cluster.master_url
    if not master.startswith(("spark://", "k8s://", "local", "yarn")):
        raise ConfigError(
            f"--master {master!r} is not a Spark master",
            fix="cluster, spark://host:port, k8s://https://host:port, local[N] or yarn",
        )
    return master


def job_script(job: str) -> Path:
    """``jobs/<job>.py``, the spark-submit entry point of ``job``."""
    script = PROJECT_ROOT / "jobs" / f"{job}.py"
    if not script.is_file():
        known = sorted(p.stem for p in (PROJECT_ROOT / "jobs").glob("*.py"))
        raise ConfigError(f"no job {job!r} in {PROJECT_ROOT / 'jobs'}", fix=f"choose from: {', '.join(known)}")
    return script


def submit_command(cfg: Config, job: str, args: Sequence[str], master: str | None = None) -> list[str]:
    """The spark-submit command that runs ``jobs/<job>.py args`` in client mode on ``master`` (see
    :func:`resolve_master`) with every setting the job's own session would have (:func:`spark_conf`, with the
    ML jobs' driver settings for those): the driver's JVM is launched by spark-submit, so its memory, class
    path and options must be on this command line. On the profile's standalone cluster each executor gets
    ``spark_cluster.executor_memory``."""
    url = resolve_master(cfg, master)
    overrides: dict[str, str] = {"spark.master": url, "spark.pyspark.python": sys.executable,
                                 "spark.pyspark.driver.python": sys.executable}  # fmt: skip
    if job in ML_JOBS:
        overrides.update(ml_overrides(cfg))
    if cfg.spark_cluster is not None and url == cfg.spark_cluster.master_url:
        overrides["spark.executor.memory"] = cfg.spark_cluster.executor_memory
    conf = spark_conf(cfg, f"lakehouse-{job}", overrides)
    if loopback_master(url):
        conf.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
    master_url = conf.pop("spark.master")
    submit = jvm.spark_home() / "bin" / "spark-submit"
    options = [a for key, value in conf.items() for a in ("--conf", f"{key}={value}")]
    return [str(submit), "--master", master_url, "--deploy-mode", "client", *options, str(job_script(job)), *args]


def submit_env(cfg: Config) -> dict[str, str]:
    """The environment of a submitted job: pyspark's Spark home and Java, the HDFS user, the project's Python."""
    env = without_gateway(os.environ)
    env.update(
        {
            "SPARK_HOME": str(jvm.spark_home()),
            "JAVA_HOME": str(jvm.java_home(cfg)),
            "HADOOP_USER_NAME": cfg.primary.hdfs.user,
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }
    )
    return env
