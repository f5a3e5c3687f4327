"""A class-data-sharing (AppCDS) archive for the JVM of every Spark job, built once at set-up.

A Spark job on two cores spends most of its first 30-40 s loading and verifying the ~20,000 classes of Spark,
Delta and Hadoop before it touches any data; every Airflow task, CLI command and test process pays that again.
The JVM can map classes it archived on an earlier run instead (JEP 350, dynamic archives, Java 13+): one warm-up
job exercises what the jobs load (a session, Delta writes, reads, MERGE, a streaming query, JSON parsing) and
dumps its classes at exit; every later job starts with ``-XX:SharedArchiveFile``.

The archive is only valid for the exact JVM and jars it was dumped with, so its file name carries a digest of
both (the java binary, the pyspark jars, the Spark and metastore jar sets, with sizes and modification times).
Every local driver has the same classpath (``session.derby_client_classpath`` included, catalog or not): the JVM
maps a dynamic archive only when its classpath starts with the one the archive was dumped with. After a JDK or
jar change no archive matches: jobs run without one (as before) until `scripts/setup.sh` builds the new one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lakehouse.config import Config
from lakehouse.errors import StackError
from lakehouse.stack import jvm

FORMAT = 2  # bump when the warm-up workload or the driver classpath changes, so an older archive is rebuilt


def _files_digest(digest: hashlib._Hash, files: list[Path]) -> None:
    for path in files:
        st = path.stat()
        digest.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())


def archive_path(cfg: Config) -> Path:
    """Where the archive of this profile's JVM and jars lives (it may not exist yet)."""
    import pyspark

    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    _files_digest(digest, [jvm.java_binary(cfg).resolve()])
    _files_digest(digest, sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar")))
    _files_digest(digest, jvm.jars(cfg, "spark"))
    _files_digest(digest, jvm.jars(cfg, "metastore"))  # the Derby client is on every local driver's classpath
    return cfg.jars_dir / "cds" / f"spark-{digest.hexdigest()[:16]}.jsa"


def java_options(cfg: Config) -> list[str]:
    """The driver JVM options that map the archive, or none when no archive matches this JVM and these jars."""
    if not cfg.spark.master.startswith("local"):
        return []  # a cluster's driver and executors run other JVMs and jars
    try:
        path = archive_path(cfg)
    except (OSError, StackError):  # jars or java missing: the job itself reports that
        return []
    # JVM warnings (e.g. an archive the JVM cannot map) go to stderr, never into a command's stdout (JSON, CSV)
    return ["-Xlog:disable", "-Xlog:all=warning:stderr", f"-XX:SharedArchiveFile={path}"] if path.is_file() else []


# the warm-up job, run in its own Python process; argv: the profile, the archive to write
WARM_UP = r"""
import sys, tempfile
from lakehouse.config import load_config
from lakehouse.session import build_spark
from pyspark.sql import functions as F

cfg = load_config(sys.argv[1])
spark = build_spark(cfg, "lakehouse-cds-warm-up", persistent_catalog=False,
                    overrides={"spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={sys.argv[2]}"})
spark.sparkContext.setLogLevel("ERROR")
from delta.tables import DeltaTable
with tempfile.TemporaryDirectory() as tmp:
    rows = spark.range(2000).select(
        F.col("id"), (F.col("id") % 7).cast("string").alias("k"), F.current_timestamp().alias("ts"),
        F.to_json(F.struct(F.col("id").alias("v"), F.lit("hr").alias("vital"))).alias("raw"),
    )
    rows.write.format("delta").partitionBy("k").option("delta.dataSkippingStatsColumns", "id,ts").save(f"{tmp}/a")
    parsed = spark.read.format("delta").load(f"{tmp}/a").select(
        "id", "k", "ts", F.from_json("raw", "v long, vital string").alias("m"))
    parsed.groupBy("k", F.window("ts", "1 minute")).agg(F.avg("m.v"), F.count("*")).collect()
    DeltaTable.forPath(spark, f"{tmp}/a").alias("t").merge(rows.limit(10).alias("s"), "t.id = s.id") \
        .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
    spark.sql(f"DESCRIBE HISTORY delta.`{tmp}/a`").collect()
    spark.sql(f"DESCRIBE DETAIL delta.`{tmp}/a`").collect()
    query = (spark.readStream.format("delta").load(f"{tmp}/a").writeStream.format("delta")
             .option("checkpointLocation", f"{tmp}/cp").trigger(availableNow=True).start(f"{tmp}/b"))
    query.awaitTermination()
    spark.read.format("delta").load(f"{tmp}/b").toPandas()
proc = spark.sparkContext._gateway.proc
try:
    spark._jvm.java.lang.System.exit(0)  # the archive is written as the JVM exits
except Exception:
    pass
sys.exit(proc.wait(timeout=600))
"""


def build(cfg: Config, progress: Callable[[str], None] = print) -> Path | None:
    """Build the archive of this profile's JVM and jars unless it exists; returns it (None off the local master).

    Older archives of other JVMs or jars are removed. A failed build leaves no archive: jobs then run without one.
    """
    if not cfg.spark.master.startswith("local"):
        return None
    path = archive_path(cfg)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    progress(f"cds: building the class-data archive of Spark jobs ({path.name}; about a minute) ...")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".jsa", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the JVM creates it
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        result = subprocess.run(
            [sys.executable, "-c", WARM_UP, str(cfg.source), str(tmp)],
            capture_output=True, text=True, timeout=900, env=env, check=False,
        )  # fmt: skip
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise StackError(
                f"the class-data archive was not written (warm-up exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-800:]}",
                fix="jobs run without it (slower start); re-run `scripts/setup.sh` to retry",
            )
        for old in path.parent.glob("spark-*.jsa"):
            old.unlink()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    progress(f"cds: archive ready ({path.stat().st_size // 2**20} MiB) in {time.monotonic() - t0:.0f}s")
    return path


def main() -> int:
    from lakehouse.config import load_config

    cfg = load_config()
    try:
        build(cfg, progress=lambda m: print(m, flush=True))
    except StackError as exc:
        print(f"cds: {exc} ({exc.fix})", file=sys.stderr)  # not fatal: jobs start without the archive
    return 0


if __name__ == "__main__":
    sys.exit(main())
