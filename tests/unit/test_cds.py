"""The class-data archive of Spark job JVMs (lakehouse.stack.cds): keyed by the exact JVM and jars, used only
when it exists, never on a cluster master."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from lakehouse.config import Config
from lakehouse.session import EXIT_ON_OOM, spark_conf
from lakehouse.stack import cds

LOGGING = ["-Xlog:disable", "-Xlog:all=warning:stderr"]  # JVM warnings never reach a command's stdout


def _profile(cfg: Config, tmp_path: Path, master: str = "local[2]") -> Config:
    (tmp_path / "spark").mkdir(exist_ok=True)
    (tmp_path / "metastore").mkdir(exist_ok=True)
    (tmp_path / "crypto").mkdir(exist_ok=True)
    for name in ("spark/delta-spark.jar", "spark/spark-sql-kafka.jar", "metastore/derbyclient-10.16.1.1.jar",
                 "crypto/healthlake-crypto.jar"):  # fmt: skip
        (tmp_path / name).write_bytes(b"jar")
    return replace(cfg, jars_dir=tmp_path, spark=replace(cfg.spark, master=master, java_options="-XX:+UseSerialGC"))


def test_the_archive_name_changes_with_any_jar(cfg: Config, tmp_path: Path) -> None:
    profile = _profile(cfg, tmp_path)
    first = cds.archive_path(profile)
    assert first.parent == tmp_path / "cds" and first == cds.archive_path(profile)
    jar = tmp_path / "spark" / "delta-spark.jar"
    os.utime(jar, ns=(jar.stat().st_atime_ns, jar.stat().st_mtime_ns + 1_000_000))
    assert cds.archive_path(profile) != first  # a replaced jar: the old archive no longer matches
    (tmp_path / "spark" / "extra.jar").write_bytes(b"jar")
    assert len({first, cds.archive_path(profile)}) == 2


def test_jobs_map_the_archive_only_when_it_exists(cfg: Config, tmp_path: Path) -> None:
    profile = _profile(cfg, tmp_path)
    assert cds.java_options(profile) == []
    assert spark_conf(profile, "t")["spark.driver.extraJavaOptions"] == f"{EXIT_ON_OOM} -XX:+UseSerialGC"
    path = cds.archive_path(profile)
    path.parent.mkdir()
    path.write_bytes(b"archive")
    assert cds.java_options(profile) == [*LOGGING, f"-XX:SharedArchiveFile={path}"]
    options = spark_conf(profile, "t")["spark.driver.extraJavaOptions"].split()
    assert options == [EXIT_ON_OOM, "-XX:+UseSerialGC", *LOGGING, f"-XX:SharedArchiveFile={path}"]
    # a cluster's drivers run other JVMs: never pointed at this machine's archive
    assert cds.java_options(_profile(cfg, tmp_path, "spark://master:7077")) == []
    assert cds.build(_profile(cfg, tmp_path, "spark://master:7077")) is None


def test_set_up_built_the_archive_of_this_machine(cfg: Config) -> None:
    """`make test` runs scripts/setup.sh first: the archive of the real JVM and jars exists and jobs use it."""
    path = cds.archive_path(cfg)
    assert path.is_file() and path.stat().st_size > 10 * 2**20, path
    assert f"-XX:SharedArchiveFile={path}" in spark_conf(cfg, "t")["spark.driver.extraJavaOptions"]


def test_ml_jobs_take_their_own_java_options_and_the_same_archive(cfg: Config, tmp_path: Path) -> None:
    from lakehouse.session import ml_overrides

    profile = _profile(cfg, tmp_path)
    profile = replace(profile, ml=replace(profile.ml, java_options="-XX:+UseParallelGC"))
    path = cds.archive_path(profile)
    path.parent.mkdir()
    path.write_bytes(b"archive")
    conf = spark_conf(profile, "t", ml_overrides(profile))
    assert conf["spark.driver.extraJavaOptions"].split() == [
        EXIT_ON_OOM,
        "-XX:+UseParallelGC",
        *LOGGING,
        f"-XX:SharedArchiveFile={path}",
    ]


def test_every_local_driver_has_the_classpath_the_archive_was_dumped_with(cfg: Config) -> None:
    """The JVM maps the archive only when its classpath starts with the dump's: with the persistent catalog
    (the Derby client for the metastore) or without it, a local driver's classpath is the same."""
    from lakehouse.session import catalog_conf

    plain = spark_conf(cfg, "t")
    with_catalog = spark_conf(cfg, "t", catalog_conf(cfg, cfg.primary))
    assert plain["spark.driver.extraClassPath"] == with_catalog["spark.driver.extraClassPath"]
    assert "derbyclient" in plain["spark.driver.extraClassPath"]


def test_a_job_with_the_catalog_classpath_maps_the_archive_and_prints_only_its_result(cfg: Config) -> None:
    """A fresh process with the catalog's settings: its JVM maps the archive (it does not report 'Unable to use
    shared archive') and stdout holds nothing but what the job printed (JVM warnings go to stderr)."""
    import subprocess
    import sys

    script = (
        "from lakehouse.config import load_config\n"
        "from lakehouse.session import build_spark, catalog_conf\n"
        "cfg = load_config()\n"
        "spark = build_spark(cfg, 'cds-probe', catalog_conf(cfg, cfg.primary), persistent_catalog=False)\n"
        "print(spark.range(3).count())\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == "3\n", run.stdout[:2000]
    assert "shared archive" not in run.stderr, run.stderr[-2000:]
