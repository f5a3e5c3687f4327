"""Delta I/O on local tables: the idempotent batch appender (a run's first batch skips what was committed), the
bounded streaming read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.errors import ConfigError
from lakehouse.io import checkpoints
from lakehouse.io.delta import BatchAppender, read_stream


def test_a_retried_first_batch_is_skipped_and_later_batches_append(spark: SparkSession, tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    rows = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    spark.createDataFrame([], "id int, v string").write.format("delta").save(uri)

    run1 = BatchAppender(spark, "writer-1")
    assert run1.append(rows, uri, 5) and run1.append(rows, uri, 6)
    # the process dies after committing batch 6 but before the checkpoint records it: batch 6 runs again
    run2 = BatchAppender(spark, "writer-1")
    assert not run2.append(rows, uri, 6)
    assert run2.append(rows, uri, 7)
    # a fresh checkpoint (new writer id) starts again at batch 0 and is never mistaken for writer-1's
    assert BatchAppender(spark, "writer-2").append(rows, uri, 5)
    assert spark.read.format("delta").load(uri).count() == 2 * 4
    marks = [r[0] for r in spark.sql(f"DESCRIBE HISTORY delta.`{uri}`").select("userMetadata").collect()]
    assert marks.count("writer-1:6") == 1 and "writer-2:5" in marks


def test_a_checkpoint_keeps_its_writer_id_and_refuses_a_changed_state_setting(
    spark: SparkSession, tmp_path: Path
) -> None:
    checkpoint = str(tmp_path / "checkpoint")
    first = checkpoints.writer_id(spark, checkpoint, "gold.news2")
    assert first.startswith("gold.news2-") and checkpoints.writer_id(spark, checkpoint, "gold.news2") == first
    assert checkpoints.writer_id(spark, str(tmp_path / "other"), "gold.news2") != first
    checkpoints.require_setting(spark, checkpoint, "pipeline.news2_state_buckets", 1024)
    checkpoints.require_setting(spark, checkpoint, "pipeline.news2_state_buckets", 1024)  # the same: fine
    with pytest.raises(ConfigError, match="news2_state_buckets is 512, but the checkpoint .* was started with 1024"):
        checkpoints.require_setting(spark, checkpoint, "pipeline.news2_state_buckets", 512)
    # the state layout: recorded by the first start, refused once it changed; a checkpoint a query ran from before
    # layouts were recorded (it has offsets) is refused as an earlier version's
    checkpoints.require_state_layout(spark, checkpoint, "gold.news2", 3)
    checkpoints.require_state_layout(spark, checkpoint, "gold.news2", 3)
    with pytest.raises(ConfigError, match="holds the state of gold.news2 in layout 3; this version reads layout 4"):
        checkpoints.require_state_layout(spark, checkpoint, "gold.news2", 4)
    older = tmp_path / "older"
    (older / "offsets").mkdir(parents=True)
    (older / "offsets" / "0").write_text("v1\n")
    with pytest.raises(
        ConfigError, match=r"in a layout of an earlier version \(not recorded\); this version reads layout 3"
    ) as err:
        checkpoints.require_state_layout(spark, str(older), "gold.news2", 3)
    assert "new checkpoint" in str(err.value.fix)
    assert not (older / "_lakehouse_state_layout").exists()  # refused: nothing recorded


def test_a_bounded_stream_reads_a_backlog_in_batches_under_its_byte_bound(spark: SparkSession, tmp_path: Path) -> None:
    """Five commits of ~1.5 MiB each (incompressible payloads), a backlog as silver finds bronze after a stop: with a
    1 MiB bound the stream reads them in one batch per file, every row once; with 64 MiB, or no bound, in one."""
    bronze = str(tmp_path / "bronze")
    for commit in range(5):
        rows = [(commit, i, os.urandom(3000)) for i in range(500)]  # ~1.5 MB a file
        frame = spark.createDataFrame(rows, "commit int, i int, value binary").coalesce(1)
        frame.write.format("delta").mode("append").save(bronze)

    def batches(max_mib: int | None) -> list[int]:
        seen: list[int] = []
        query = (
            read_stream(spark, bronze, max_mib)
            .writeStream.foreachBatch(lambda df, _: seen.append(df.count()))
            .option("checkpointLocation", str(tmp_path / f"checkpoint-{max_mib}"))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
        return seen

    assert batches(1) == [500] * 5
    assert batches(64) == [2500]
    assert batches(None) == [2500]
