"""Proof that a replica is the source, version by version: every commit byte-identical, and for the latest
versions the same row count and content checksum read through Spark on both sides, plus the replica read
through an independent Delta client (the ``deltalake`` package, delta-rs) at the same version.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import RegionConfig
from lakehouse.io import tables
from lakehouse.io.hdfs import Hdfs
from lakehouse.replication import deltalog


@dataclass
class VersionCheck:
    """One version read on both sides: row count and order-independent content checksum."""

    version: int
    rows_source: int
    rows_replica: int
    checksum_source: str
    checksum_replica: str

    @property
    def ok(self) -> bool:
        """Same rows and same content."""
        return self.rows_source == self.rows_replica and self.checksum_source == self.checksum_replica


@dataclass
class TableVerification:
    """The verification of one table's replica."""

    table: str
    source_version: int
    replica_version: int
    log_versions_compared: int = 0
    checks: list[VersionCheck] = field(default_factory=list)
    deltalake_rows: int | None = None
    deltalake_error: str | None = None  # the replica is unreadable by deltalake (a problem)
    deltalake_unsupported: str | None = None  # deltalake cannot read this table in the source either (its limit)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def line(self) -> str:
        """One human line."""
        head = f"{self.table:26} source v{self.source_version}, replica v{self.replica_version}"
        if self.replica_version < 0:
            return f"{head}: no replica"
        independent = (
            f"deltalake read {self.deltalake_rows} rows"
            if self.deltalake_unsupported is None
            else f"deltalake cannot read this table, source included ({self.deltalake_unsupported})"
        )
        body = (
            f"{self.log_versions_compared} commits identical, {len(self.checks)} versions checked "
            f"(rows + checksum), {independent}"
        )
        return f"{head}: " + ("OK, " + body if self.ok else "FAILED: " + "; ".join(self.problems))


def checksum(df: DataFrame) -> tuple[int, str]:
    """(rows, checksum): the sum of a 64-bit hash of every row, so row order and file layout do not matter."""
    row = df.select(
        F.count(F.lit(1)).alias("n"),
        F.coalesce(F.sum(F.xxhash64(*[F.col(f"`{c}`") for c in df.columns]).cast("decimal(38,0)")), F.lit(0)).alias(
            "h"
        ),
    ).first()
    assert row is not None
    return int(row["n"]), str(row["h"])


def verify_table(
    spark: SparkSession, source: RegionConfig, target: RegionConfig, table: str, data_versions: int | None = 5
) -> TableVerification:
    """Compare ``table`` in ``target`` with ``source``: every commit the replica holds byte for byte, the last
    ``data_versions`` versions (None: all) by rows and checksum, the latest through ``deltalake``."""
    src, dst = Hdfs(source), Hdfs(target)
    src_log = posixpath.join(src.table_path(table), "_delta_log")
    dst_log = posixpath.join(dst.table_path(table), "_delta_log")
    src_versions = deltalog.versions(src.list(src_log))
    dst_versions = deltalog.versions(dst.list(dst_log))
    out = TableVerification(table, src_versions[-1] if src_versions else -1, dst_versions[-1] if dst_versions else -1)
    if out.replica_version < 0:
        if out.source_version >= 0:
            out.problems.append("the source has the table, the target has no replica")
        return out
    for v in dst_versions:
        name = deltalog.commit_name(v)
        if v not in src_versions:
            if v > out.source_version:
                out.problems.append(f"v{v} exists only in the replica (it diverged)")
            continue  # the source cleaned up its old log; the replica keeps what it was given
        if src.read(posixpath.join(src_log, name)) != dst.read(posixpath.join(dst_log, name)):
            out.problems.append(f"commit v{v} differs")
        out.log_versions_compared += 1
    src_uri, dst_uri = tables.table_uri(source, table), tables.table_uri(target, table)
    chosen = dst_versions if data_versions is None else dst_versions[-data_versions:]
    for v in chosen:
        try:
            n_s, h_s = checksum(spark.read.format("delta").option("versionAsOf", v).load(src_uri))
        except Exception:  # noqa: BLE001, S112 - a version the source can no longer read (vacuumed files, cleaned log)
            continue
        try:
            n_r, h_r = checksum(spark.read.format("delta").option("versionAsOf", v).load(dst_uri))
        except Exception as exc:  # noqa: BLE001 - reported, never raised: verify lists every problem
            out.problems.append(f"v{v} unreadable in the replica: {str(exc).splitlines()[0][:200]}")
            continue
        check = VersionCheck(v, n_s, n_r, h_s, h_r)
        out.checks.append(check)
        if not check.ok:
            out.problems.append(f"v{v}: source {n_s} rows / checksum {h_s}, replica {n_r} rows / checksum {h_r}")
    try:
        from deltalake import DeltaTable

        dt = DeltaTable(dst_uri, version=out.replica_version)
        out.deltalake_rows = dt.to_pyarrow_dataset().count_rows()
        latest = next((c for c in out.checks if c.version == out.replica_version), None)
        if latest is not None and out.deltalake_rows != latest.rows_source:
            out.problems.append(f"deltalake reads {out.deltalake_rows} rows, the source has {latest.rows_source}")
    except Exception as exc:  # noqa: BLE001 - delta-rs raises its own error types (unsupported features, ...)
        message = str(exc).splitlines()[0][:300]
        if _deltalake_fails_on(src_uri, out.replica_version):
            out.deltalake_unsupported = message  # a limit of the client, the source is no different
        else:
            out.deltalake_error = message
            out.problems.append(f"deltalake cannot read the replica: {message}")
    return out


def _deltalake_fails_on(uri: str, version: int) -> bool:
    from deltalake import DeltaTable

    try:
        DeltaTable(uri, version=version).to_pyarrow_dataset().count_rows()
    except Exception:  # noqa: BLE001
        return True
    return False
