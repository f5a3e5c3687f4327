"""`make demo` / `lakehouse demo`: PhysioNet ICU replay and simulated devices through the whole medallion.

Replays the committed PhysioNet 2019 sample and a simulated ward (monitors and wearables in their own
dialects, with a share of bad messages), runs one catch-up pass of the pipeline, and prints what
reached each table, how the counts reconcile, and the NEWS2 alerts raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from lakehouse.config import Config
from lakehouse.devices import physionet, simulator
from lakehouse.errors import LakehouseError
from lakehouse.ingest.registry import register_assignments
from lakehouse.stack import manager


@dataclass(frozen=True)
class DemoSummary:
    """What the demo sent, what reached each table, whether the counts reconcile, which alerts opened."""

    region: str
    replayed: int
    simulated: int
    expected_simulated: dict[str, object]
    tables: dict[str, int]
    reconciliation: dict[str, int]
    balanced: bool
    quarantine_reasons: dict[str, int]
    alerts: list[tuple[str, str, str, int, str]]
    seconds: float

    def render(self) -> str:
        lines = [
            f"demo summary ({self.region}, {self.seconds:.0f}s)",
            f"  sent to Kafka: {self.replayed} PhysioNet replay messages + {self.simulated} simulated device messages",
            "  tables:",
            *(f"    {name:<26} {rows:>9} rows" for name, rows in self.tables.items()),
            "  reconciliation (messages): "
            + ", ".join(f"{k} {v}" for k, v in self.reconciliation.items())
            + f" -> {'balanced' if self.balanced else 'NOT BALANCED'}",
            "  quarantined by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(self.quarantine_reasons.items())),
            f"  open NEWS2 alerts: {len(self.alerts)} (first 10)",
            *(
                f"    {lvl:<17} {pt:<22} {ward:<7} NEWS2 {total:>2}  at {at}"
                for pt, lvl, ward, total, at in self.alerts[:10]
            ),
        ]
        return "\n".join(lines)


def run(
    cfg: Config,
    patients: int = 300,
    devices: int = 40,
    messages: int = 4000,
    bad_fraction: float = 0.05,
    region: str | None = None,
    archive: Path = physionet.SAMPLE_ARCHIVE,
    progress: Callable[[str], None] = print,
) -> DemoSummary:
    """Send the demo data, run one pipeline pass, and summarise the region's tables."""
    if patients < 1 or devices < 1 or messages < 1:
        raise LakehouseError("--patients, --devices and --messages must be at least 1")
    reg = cfg.region(region)
    manager.require(cfg, "kafka", "hdfs-namenode", "hdfs-datanode", region=reg.name)
    t0 = time.monotonic()
    from pyspark.sql import functions as F

    from lakehouse import pipeline
    from lakehouse.session import build_spark
    from lakehouse.tables import uri

    records = list(physionet.iter_patients(archive, patients))
    origin = physionet.default_origin(records)
    progress("registering devices ...")
    sim_fleet = simulator.make_fleet(devices, seed=7, prefix="demo")
    register_assignments(
        cfg,
        reg,
        physionet.assignments(records, origin - timedelta(hours=1), reg.name)
        + simulator.fleet_assignments(sim_fleet, origin, reg.name),
    )
    replay = physionet.replay(cfg, archive, patients, speed=0, region=reg.name, progress=progress)
    sim, sent = simulator.simulate(
        cfg, devices, rate=messages / 60.0, seconds=60.0, region=reg.name, bad_fraction=bad_fraction,
        realtime=False, prefix="demo", progress=progress,
    )  # fmt: skip

    spark = build_spark(cfg, "lakehouse-demo")
    progress("pipeline: one catch-up pass (availableNow) through bronze, silver, gold ...")
    pipeline.run_once(spark, cfg, reg, progress)
    rec = pipeline.reconcile(spark, reg)
    reasons = {
        r["reason"]: int(r["count"])
        for r in spark.read.format("delta").load(uri(reg, "silver.quarantine")).groupBy("reason").count().collect()
    }
    alerts = (
        spark.read.format("delta")
        .load(uri(reg, "gold.alerts"))
        .filter("status = 'open'")
        .orderBy(F.col("latest_total").desc(), "patient_ref")
        .select("patient_ref", "level", "ward", "latest_total", F.col("opened_observation_time").cast("string"))
        .collect()
    )
    return DemoSummary(
        region=reg.name,
        replayed=replay.messages,
        simulated=sent,
        expected_simulated=sim.expected.as_dict(),
        tables=pipeline.table_counts(spark, reg),
        reconciliation={
            "bronze": rec.bronze_rows,
            "accepted": rec.accepted,
            "quarantined": rec.quarantined,
            "duplicates": rec.duplicate,
        },
        balanced=rec.balanced,
        quarantine_reasons=reasons,
        alerts=[(a[0], a[1], a[2] or "-", int(a[3] or 0), a[4]) for a in alerts],
        seconds=time.monotonic() - t0,
    )
