"""Table maintenance: compact small files (OPTIMIZE) and remove unreferenced ones (VACUUM) safely.

Streaming micro-batches leave many small files; OPTIMIZE rewrites them into fewer large ones. VACUUM
deletes files no version within the retention period references; a retention below the configured
floor (``pipeline.vacuum_min_retention_hours``) is refused, since it would break time travel and any
reader or stream still on an older version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io.tables import check_table_names
from lakehouse.tables import SPECS, uri


@dataclass(frozen=True)
class MaintenanceResult:
    """What maintenance did to one table."""

    table: str
    files_before: int
    files_after: int
    files_removed_by_optimize: int
    files_added_by_optimize: int
    vacuumed: bool


def check_retention(hours: float, floor_hours: int) -> None:
    """Refuse a VACUUM retention below the floor (or a negative one)."""
    if hours < 0 or hours < floor_hours:
        raise LakehouseError(
            f"refusing VACUUM with retention {hours:g} h: below the floor of {floor_hours} h",
            fix=f"use --retention-hours >= {floor_hours} (pipeline.vacuum_min_retention_hours in the profile)",
        )


def _files(spark: SparkSession, location: str) -> int:
    row = spark.sql(f"DESCRIBE DETAIL delta.`{location}`").select("numFiles").first()
    return int(row["numFiles"]) if row else 0


def maintain(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    tables: Iterable[str] | None = None,
    retention_hours: float | None = None,
    vacuum: bool = True,
    progress: Callable[[str], None] = print,
) -> list[MaintenanceResult]:
    """OPTIMIZE (and VACUUM, unless ``vacuum`` is False) the region's tables."""
    hours = float(cfg.pipeline.vacuum_min_retention_hours if retention_hours is None else retention_hours)
    check_retention(hours, cfg.pipeline.vacuum_min_retention_hours)
    names = list(tables or SPECS)
    check_table_names(names, SPECS)
    results = []
    for name in names:
        location = uri(region, name)
        if not DeltaTable.isDeltaTable(spark, location):
            progress(f"  {name:<26} does not exist yet; skipped")
            continue
        table = DeltaTable.forPath(spark, location)
        before = _files(spark, location)
        metrics = table.optimize().executeCompaction().first()
        m = metrics["metrics"] if metrics else None
        removed = int(m["numFilesRemoved"]) if m else 0
        added = int(m["numFilesAdded"]) if m else 0
        if vacuum:
            table.vacuum(hours)
        after = _files(spark, location)
        progress(
            f"  {name:<26} files {before:>5} -> {after:>5} (optimize -{removed} +{added}{', vacuumed' if vacuum else ''})"
        )
        results.append(MaintenanceResult(name, before, after, removed, added, vacuum))
    return results
