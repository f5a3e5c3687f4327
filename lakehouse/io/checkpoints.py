"""Streaming checkpoints: where they live, and the identity of the writer that owns each one."""

from __future__ import annotations

import uuid

from pyspark.sql import SparkSession


def writer_id(spark: SparkSession, checkpoint: str, query: str) -> str:
    """A stable id for the query that owns ``checkpoint``, kept in a file inside it.

    It marks the writer's commits (``delta.BatchAppender``): a restart from the same checkpoint
    reuses it, so a retried batch is recognised; a fresh checkpoint gets a fresh id, so its batch
    numbers (which start again at 0) are never mistaken for ones already written.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(f"{checkpoint.rstrip('/')}/_lakehouse_writer_id")
    fs = path.getFileSystem(conf)
    if fs.exists(path):
        stream = fs.open(path)
        try:
            reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
            return str(reader.readLine()).strip()
        finally:
            stream.close()
    value = f"{query}-{uuid.uuid4()}"
    out = fs.create(path, False)
    try:
        out.write(value.encode("utf-8"))
    finally:
        out.close()
    return value
