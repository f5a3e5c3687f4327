"""`lakehouse bench replication`: replication throughput beside a raw HDFS copy of the same bytes between the
same two regions in the same run, and replica lag (p50/p95) under steady ingest.

The source table is written with the ``deltalake`` package (no JVM) under a sandbox root of the source
region; everything the benchmark writes is deleted at the end.
"""

from __future__ import annotations

import dataclasses
import posixpath
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from lakehouse.config import Config
from lakehouse.io.hdfs import Hdfs, copy_file
from lakehouse.replication import deltalog
from lakehouse.replication.replicator import Replicator

TABLE = "bench.replication"


def _batch(rows: int, seed: int) -> pa.Table:
    import random

    rng = random.Random(seed)
    return pa.table(
        {
            "id": pa.array(range(seed * rows, seed * rows + rows), pa.int64()),
            "patient_ref": pa.array([f"p-{rng.randrange(10_000):05d}" for _ in range(rows)]),
            "value": pa.array([rng.random() * 200 for _ in range(rows)], pa.float64()),
            "payload": pa.array([uuid.UUID(int=rng.getrandbits(128)).hex * 4 for _ in range(rows)]),
        }
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(
    cfg: Config,
    source: str,
    target: str,
    versions: int = 12,
    rows_per_version: int = 100_000,
    ingest_seconds: float = 60.0,
    ingest_every_s: float = 1.0,
    interval_s: float | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure and return the figures as one JSON-able dict."""
    from deltalake import write_deltalake

    src_region, dst_region = cfg.region(source), cfg.region(target)
    tag = uuid.uuid4().hex[:8]
    root = f"/bench/replication-{tag}"
    src_region = dataclasses.replace(src_region, lakehouse_root=root)
    dst_region = dataclasses.replace(dst_region, lakehouse_root=root)
    src, dst = Hdfs(src_region), Hdfs(dst_region)
    uri = f"{src_region.warehouse_uri}/{TABLE.replace('.', '/')}"
    interval = interval_s if interval_s is not None else cfg.replication.interval_s
    try:
        progress(f"writing {versions} versions of {rows_per_version} rows to {uri} ...")
        for v in range(versions):
            write_deltalake(uri, _batch(rows_per_version, v), mode="append")
        rep = Replicator(src_region, dst_region, {TABLE: "allowed"}, cfg.replication.parallelism, progress)
        files = src.walk_files(src.table_path(TABLE))

        def raw_copy(run: int) -> tuple[int, float]:
            """The same files (data + log) copied between the same regions, same parallelism, no Delta logic."""
            t0 = time.monotonic()
            with ThreadPoolExecutor(cfg.replication.parallelism) as pool:
                copied = sum(
                    pool.map(
                        lambda rel: copy_file(
                            src,
                            posixpath.join(src.table_path(TABLE), rel),
                            dst,
                            posixpath.join(f"{root}/raw{run}", rel),
                        ),
                        list(files),
                    )
                )
            seconds = time.monotonic() - t0
            progress(f"raw copy {run}: {copied / 1e6:.1f} MB in {seconds:.2f}s")
            return copied, seconds

        # raw before and after replication (caches and neighbours' load change during a run): their mean
        raw_bytes, raw_s1 = raw_copy(1)
        t0 = time.monotonic()
        result = rep.replicate_table(TABLE)
        repl_s = time.monotonic() - t0
        repl_bytes = result.bytes
        progress(f"replication: {repl_bytes / 1e6:.1f} MB in {repl_s:.2f}s")
        _, raw_s2 = raw_copy(2)
        raw_s = (raw_s1 + raw_s2) / 2

        lags = _lag_under_ingest(uri, rep, src, dst, ingest_seconds, ingest_every_s, interval, progress)
        repl_mbs, raw_mbs = repl_bytes / 1e6 / repl_s, raw_bytes / 1e6 / raw_s
        return {
            "benchmark": "replication",
            "source": source,
            "target": target,
            "parallelism": cfg.replication.parallelism,
            "table": {"versions": versions, "files": len(files), "bytes": raw_bytes},
            "replication": {"bytes": repl_bytes, "seconds": round(repl_s, 3), "mb_per_s": round(repl_mbs, 2)},
            "raw_hdfs_copy": {
                "bytes": raw_bytes,
                "seconds": round(raw_s, 3),
                "mb_per_s": round(raw_mbs, 2),
                "runs_s": [round(raw_s1, 3), round(raw_s2, 3)],
            },
            "replication_vs_raw": round(repl_mbs / raw_mbs, 3),
            "target_ratio": 0.7,
            "lag_under_ingest": {
                "ingest_every_s": ingest_every_s,
                "replication_interval_s": interval,
                "seconds": ingest_seconds,
                "versions": len(lags),
                "p50_s": round(_percentile(lags, 0.5), 3),
                "p95_s": round(_percentile(lags, 0.95), 3),
                "max_s": round(max(lags), 3) if lags else None,
            },
        }
    finally:
        for hdfs in (src, dst):
            try:
                hdfs.delete(root, recursive=True)
            except Exception:  # noqa: BLE001 - cleanup must not hide the result
                progress(f"could not delete {root} in {hdfs.region.name}")


def _lag_under_ingest(
    uri: str,
    rep: Replicator,
    src: Hdfs,
    dst: Hdfs,
    seconds: float,
    every_s: float,
    interval_s: float,
    progress: Callable[[str], None],
) -> list[float]:
    """Append a small version every ``every_s`` while replicating every ``interval_s``; for each version,
    the time from its commit on the source to its commit appearing in the replica."""
    from deltalake import write_deltalake

    stop = threading.Event()
    committed: dict[int, float] = {}
    arrived: dict[int, float] = {}
    src_log = posixpath.join(src.table_path(TABLE), "_delta_log")
    dst_log = posixpath.join(dst.table_path(TABLE), "_delta_log")

    def ingest() -> None:
        seed = 10_000
        while not stop.is_set():
            write_deltalake(uri, _batch(2_000, seed), mode="append")
            committed_at = time.time()
            latest = deltalog.versions(src.list(src_log))[-1]
            committed.setdefault(latest, committed_at)
            seed += 1
            stop.wait(every_s)

    def replicate() -> None:
        while not stop.is_set():
            started = time.monotonic()
            rep.replicate_table(TABLE)
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))

    progress(f"steady ingest for {seconds:g}s (a version every {every_s:g}s, replication every {interval_s:g}s) ...")
    threads = [threading.Thread(target=ingest, daemon=True), threading.Thread(target=replicate, daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = time.time()
        for v in deltalog.versions(dst.list(dst_log)):
            arrived.setdefault(v, now)
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(120)
    rep.replicate_table(TABLE)  # drain: every committed version arrives
    now = time.time()
    for v in deltalog.versions(dst.list(dst_log)):
        arrived.setdefault(v, now)
    return [arrived[v] - committed[v] for v in committed if v in arrived]
