"""`lakehouse bench encryption`: what Parquet modular encryption of the raw payload costs bronze, beside the same
rows written and read without it, in the same Spark session on the same HDFS.

Rows shaped like ``bronze.telemetry`` (device JSON of ~200 bytes with a patient reference, 200 devices) are
appended to two tables created from bronze's spec, one with its encryption properties and one without, and
then read back whole (every payload byte decoded). A first round of each warms the JVM up and is not counted;
the measured rounds alternate the order and their medians are reported.
Everything is written under ``<lakehouse root>/_bench/`` of the primary region and deleted at the end.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from lakehouse.config import Config
from lakehouse.io.delta import ensure_table
from lakehouse.io.hdfs import Hdfs

Progress = Callable[[str], None]
ENCRYPTION_KEYS = ("parquet.encryption.",)


def run(cfg: Config, rows: int = 400_000, rounds: int = 5, progress: Progress = print) -> dict[str, Any]:
    """Median append and full-read seconds of ``rows`` bronze rows, encrypted and plaintext, over ``rounds``
    (after one warm-up round of each)."""
    from pyspark.sql import functions as F

    from lakehouse import bench
    from lakehouse.session import build_spark
    from lakehouse.tables import SPECS

    spark = build_spark(cfg, "lakehouse-bench-encryption", persistent_catalog=False)
    region = cfg.primary
    hdfs = Hdfs(region)
    folder = f"{hdfs.root}/_bench/encryption-{uuid.uuid4().hex[:8]}"
    encrypted_spec = SPECS["bronze.telemetry"]
    plain_spec = dataclasses.replace(
        encrypted_spec, properties=tuple(p for p in encrypted_spec.properties if not p[0].startswith(ENCRYPTION_KEYS))
    )
    measurement = F.struct(
        F.lit("heart_rate").alias("vital"), (60 + F.col("id") % 60).alias("value"), F.lit("/min").alias("unit")
    )
    payload = F.to_json(
        F.struct(
            F.format_string("msg-%012d", F.col("id")).alias("message_id"),
            F.format_string("dev-%03d", F.col("id") % 200).alias("device_id"),
            F.format_string("MRN-%06d", F.col("id") % 5000).alias("patient_ref"),
            F.lit("2026-12-03T08:00:00Z").alias("event_time"),
            (F.col("id") % 100_000).alias("seq"),
            F.array(measurement).alias("measurements"),
        )
    )
    source = (
        spark.range(rows)
        .select(
            F.format_string("dev-%03d", F.col("id") % 200).alias("key"),
            F.encode(payload, "UTF-8").alias("value"),
            F.lit("telemetry.vitals").alias("topic"),
            (F.col("id") % 12).cast("int").alias("partition"),
            F.col("id").alias("offset"),
            F.current_timestamp().alias("kafka_timestamp"),
            F.current_timestamp().alias("ingest_time"),
            F.current_date().alias("ingest_date"),
        )
        .localCheckpoint()  # generated once, outside the timings
    )
    payload_bytes = int(source.select(F.sum(F.length("value"))).first()[0])  # type: ignore[index]
    timings: dict[str, dict[str, list[float]]] = {m: {"write_s": [], "read_s": []} for m in ("plain", "encrypted")}
    try:
        for n in range(-1, rounds):  # round -1: warm-up
            order = ("plain", "encrypted") if n % 2 == 0 else ("encrypted", "plain")
            for mode in order:
                uri = f"{region.warehouse_uri}/_bench/{folder.rsplit('/', 1)[1]}/{mode}-{n}"
                ensure_table(spark, uri, encrypted_spec if mode == "encrypted" else plain_spec)
                t0 = time.perf_counter()
                source.write.format("delta").mode("append").save(uri)
                t1 = time.perf_counter()
                back = spark.read.format("delta").load(uri).select(F.sum(F.length("value")), F.count("*")).first()
                t2 = time.perf_counter()
                if back is None or (back[0], back[1]) != (payload_bytes, rows):
                    raise RuntimeError(f"{mode} round {n}: read back {back}, wrote {rows} rows / {payload_bytes} B")
                if n >= 0:
                    timings[mode]["write_s"].append(t1 - t0)
                    timings[mode]["read_s"].append(t2 - t1)
                label = "warm-up" if n < 0 else f"round {n + 1}/{rounds}"
                progress(f"encryption bench {label} {mode}: write {t1 - t0:.2f} s, read {t2 - t1:.2f} s")
    finally:
        hdfs.delete(folder, recursive=True)
    medians = {m: {k: round(statistics.median(v), 3) for k, v in t.items()} for m, t in timings.items()}
    return {
        "benchmark": "encryption",
        "machine": bench.machine(),
        "rows": rows,
        "payload_bytes": payload_bytes,
        "rounds": rounds,
        "plain": medians["plain"],
        "encrypted": medians["encrypted"],
        "write_ratio": round(medians["encrypted"]["write_s"] / medians["plain"]["write_s"], 3),
        "read_ratio": round(medians["encrypted"]["read_s"] / medians["plain"]["read_s"], 3),
    }
