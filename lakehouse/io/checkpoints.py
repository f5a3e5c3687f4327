"""Streaming checkpoints: where they live, and the identity of the writer that owns each one."""

from __future__ import annotations

import uuid

from pyspark.sql import SparkSession

from lakehouse.errors import ConfigError


def _kept(spark: SparkSession, checkpoint: str, name: str, value: str, before: str | None = None) -> str:
    """The value of file ``name`` inside ``checkpoint``; when there is none yet, ``value``, written there first
    (or ``before``, not written, when the query already ran from it: it started before the file existed)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(f"{checkpoint.rstrip('/')}/{name}")
    fs = path.getFileSystem(conf)
    offsets = jvm.org.apache.hadoop.fs.Path(f"{checkpoint.rstrip('/')}/offsets")  # the query ran from it
    if before is not None and not fs.exists(path) and fs.exists(offsets):
        return before
    if fs.exists(path):
        stream = fs.open(path)
        try:
            reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
            return str(reader.readLine()).strip()
        finally:
            stream.close()
    out = fs.create(path, False)
    try:
        out.write(value.encode("utf-8"))
    finally:
        out.close()
    return value


def writer_id(spark: SparkSession, checkpoint: str, query: str) -> str:
    """A stable id for the query that owns ``checkpoint``, kept in a file inside it.

    It marks the writer's commits (``delta.BatchAppender``): a restart from the same checkpoint
    reuses it, so a retried batch is recognised; a fresh checkpoint gets a fresh id, so its batch
    numbers (which start again at 0) are never mistaken for ones already written.
    """
    return _kept(spark, checkpoint, "_lakehouse_writer_id", f"{query}-{uuid.uuid4()}")


def require_setting(spark: SparkSession, checkpoint: str, setting: str, value: int) -> None:
    """Pin a setting that the query's state depends on (e.g. how state rows are keyed) to its checkpoint: the first
    start records ``value``, later starts must give the same one (ConfigError naming both otherwise)."""
    kept = _kept(spark, checkpoint, f"_lakehouse_{setting.replace('.', '_')}", str(value))
    if kept != str(value):
        raise ConfigError(
            f"{setting} is {value}, but the checkpoint {checkpoint} was started with {kept}: its state is keyed by it",
            fix=f"set {setting}: {kept} again, or start the query from a new checkpoint (its state starts empty)",
        )


UNRECORDED = "unrecorded"  # the state layout of a checkpoint a query ran from before layouts were recorded


def require_state_layout(spark: SparkSession, checkpoint: str, query: str, layout: int) -> None:
    """Refuse a checkpoint whose state rows this code cannot read: the first start records the code's ``layout``
    (the version of its state schema); a checkpoint the query ran from without one was written by an earlier
    version. Spark's own state schema check would refuse it too, mid-start and without saying what to do."""
    kept = _kept(spark, checkpoint, "_lakehouse_state_layout", str(layout), before=UNRECORDED)
    if kept != str(layout):
        held = "a layout of an earlier version (not recorded)" if kept == UNRECORDED else f"layout {kept}"
        raise ConfigError(
            f"the checkpoint {checkpoint} holds the state of {query} in {held}; this version reads layout {layout}",
            fix="start the query from a new checkpoint (docs/pipeline.md, 'Exactly once': what that re-reads)",
        )
