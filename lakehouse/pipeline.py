"""`lakehouse pipeline start | stop | run [--once]`: the region's streaming queries as one Spark application.

Queries, in dependency order: Kafka -> gold.news2 + alerts.news2 (real time, per-patient state);
alerts.news2 -> gold.alerts; Kafka -> bronze.telemetry; bronze -> silver.*; silver -> gold.vitals_minute;
silver -> gold.vitals_hourly. ``run --once`` drains each in turn
(availableNow) for schedulers; ``run`` keeps them all going on processing-time triggers until SIGTERM, the
queries that read Kafka (real time, bronze) in its own process and the rest in a child at a lower CPU priority
(lakehouse.tiers);
``start``/``stop`` do that in the background, supervised like the stack's services.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse import audit, tiers
from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.ingest import alerts_job, bronze, gold_job, news2_job, silver_job
from lakehouse.io import kafka
from lakehouse.observability import exporter, listener
from lakehouse.replication import fencing, handover
from lakehouse.session import without_gateway
from lakehouse.stack import manager, process
from lakehouse.tables import SPECS, ensure_all, register_existing, uri

Starter = Callable[[SparkSession, Config, RegionConfig, bool], StreamingQuery]
Progress = Callable[[str], None]
STANDBY_RESCAN_S = 10.0  # a waiting standby looks for replicas that arrived since its last look this often

STARTERS: tuple[tuple[str, Starter], ...] = (
    ("gold.news2", news2_job.start_news2),
    ("gold.alerts", alerts_job.start_alerts),
    ("bronze.telemetry", bronze.start_bronze),
    ("silver.vitals", silver_job.start_silver),
    ("gold.vitals_minute", lambda s, c, r, o: gold_job.start_window_stream(s, c, r, "gold.vitals_minute", o)),
    ("gold.vitals_hourly", lambda s, c, r, o: gold_job.start_window_stream(s, c, r, "gold.vitals_hourly", o)),
)

# the catch-up order: a query reads only what the stages before its own wrote (news2 and bronze read Kafka,
# alerts the topic news2 publishes to, silver bronze, the window tables silver)
CATCH_UP_STAGES: tuple[tuple[str, ...], ...] = (
    ("gold.news2", "bronze.telemetry"),
    ("gold.alerts", "silver.vitals"),
    ("gold.vitals_minute", "gold.vitals_hourly"),
)


def start_front(
    spark: SparkSession, cfg: Config, region: RegionConfig, starters: tuple[tuple[str, Starter], ...] = STARTERS
) -> dict[str, StreamingQuery]:
    """Start the front tier's queries (continuous) in this process (the background tier's run in its child)."""
    return {name: start(spark, cfg, region, False) for name, start in starters if name in tiers.FRONT}


@dataclass(frozen=True)
class Reconciliation:
    """Message counts over every silver batch so far: records == accepted + quarantined + duplicate."""

    bronze_rows: int
    records: int
    accepted: int
    quarantined: int
    duplicate: int
    measurements_accepted: int
    measurements_quarantined: int

    @property
    def balanced(self) -> bool:
        return self.records == self.bronze_rows == self.accepted + self.quarantined + self.duplicate


def prepare(spark: SparkSession, cfg: Config, region: RegionConfig, registered: Collection[str] = ()) -> fencing.Guard:
    """Topics and tables of the region exist (idempotent); ``registered`` tables (a standby's) are not revisited.
    Returns the process's fence (the epoch it runs under)."""
    manager.require(cfg, "kafka", "hdfs-namenode", "hdfs-datanode", "metastore", region=region.name)
    guard = fencing.install(cfg, region)  # only the primary of the epoch in force runs; a newer epoch stops it
    request = handover.read_stop(region, confirm=True)
    if handover.holds(request, guard.epoch):
        assert request is not None
        raise LakehouseError(
            f"a failover stopped the pipeline of {region.name} at epoch {guard.epoch} ({request.by}, requested "
            f"{request.requested}); it does not start again under that epoch",
            fix=f"wait for the failover to finish, or run `lakehouse pipeline run --region {region.name} --standby`",
        )
    other = handover.other_running(region)
    if other is not None:
        raise LakehouseError(
            f"a pipeline already runs in {region.name} ({other.where()}, epoch {other.epoch}, reported "
            f"{other.age_s():.0f}s ago)",
            fix=f"`lakehouse pipeline status --region {region.name}`; stop that one first",
        )
    kafka.ensure_topic(region, cfg.topics.telemetry, cfg.topics)
    kafka.ensure_topic(region, cfg.topics.alerts, cfg.topics)
    ensure_all(spark, region, skip=registered)
    listener.install(spark, region.name)
    return guard


def await_promotion(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    progress: Progress = print,
    poll_s: float = 1.0,
    rescan_s: float = STANDBY_RESCAN_S,
    check: Callable[[], None] = lambda: None,
) -> set[str]:
    """Warm standby: with Spark up, put the replicas the region holds in its catalog (no table is created or
    altered: a replica's versions come from its primary alone), then wait until the region is the primary: its
    own fencing state names it (a failover wrote it there; a lost primary is never asked; none: the configured
    primary at epoch 0), the state in force among the regions that answer agrees (a primary back from a disaster
    waits), and no failover's stop request holds for that epoch (lakehouse.replication.handover). So a deployment
    runs ``pipeline run --standby`` in every region and each one runs when its region is the primary. Replicas that
    arrive while it waits (a table replicated for the first time) join the catalog within ``rescan_s``, so a
    promotion finds every replica registered. Its status (``standby``) goes to the region's HDFS every few
    seconds, where a failover finds it. ``check`` runs at each look (it raises to end the wait: the background
    tier died). Returns the tables registered."""
    manager.require(cfg, "hdfs-namenode", "hdfs-datanode", "metastore", region=region.name)
    heartbeat = handover.Heartbeat(region, progress)
    try:  # said at once: a failover that comes while the catalog fills finds the standby (and promotes it)
        heartbeat.beat("standby", fencing.in_force([fencing.read_region(region)], cfg.primary.name).epoch)
    except Exception as exc:  # noqa: BLE001 -- the loop below says it and retries
        progress(f"pipeline ({region.name}): standby cannot read its fencing state yet ({exc})")
    registered = set(register_existing(spark, region))
    spark.range(10_000).selectExpr("sum(id)").collect()  # the executor's first task, before it counts
    names = "".join(f" {n}," for n in sorted(registered))
    progress(
        f"pipeline ({region.name}): standby, {len(registered)} replicas in the catalog:{names} waiting for promotion"
    )
    scanned = time.monotonic()
    said = ""
    while True:
        check()
        try:
            own = fencing.in_force([fencing.read_region(region)], cfg.primary.name)
            waiting = _why_waiting(cfg, region, own)
        except Exception as exc:  # noqa: BLE001 -- the region's own HDFS blinked: keep waiting, say so
            own, waiting = None, f"cannot read its fencing state ({exc}); retrying"
        if waiting is None:
            assert own is not None
            progress(f"pipeline ({region.name}): promoted at epoch {own.epoch}; starting the queries")
            return registered
        if waiting != said:
            progress(f"pipeline ({region.name}): standby, {waiting}")
            said = waiting
        heartbeat.beat("standby", own.epoch if own is not None else -1)
        if time.monotonic() - scanned >= rescan_s:
            try:
                arrived = register_existing(spark, region, skip=registered)
            except Exception as exc:  # noqa: BLE001 -- the next scan (or the promotion's ensure_all) catches up
                progress(f"pipeline ({region.name}): standby could not look for new replicas ({exc}); retrying")
                arrived = []
            if arrived:
                registered |= set(arrived)
                progress(f"pipeline ({region.name}): standby, {len(arrived)} new replicas in the catalog: "
                         + ", ".join(sorted(arrived)))  # fmt: skip
            scanned = time.monotonic()
        time.sleep(poll_s)


def _why_waiting(cfg: Config, region: RegionConfig, own: fencing.RegionState) -> str | None:
    """Why a standby in ``region`` whose own fencing state is ``own`` keeps waiting (None: it is promoted)."""
    if own.primary != region.name:
        return f"epoch {own.epoch}: {own.primary} is the primary"
    state, _ = fencing.current(cfg)  # its own state says so: the other regions' must not say otherwise
    if state.primary != region.name:
        return f"epoch {state.epoch} in force: {state.primary} is the primary"
    request = handover.read_stop(region)
    if handover.holds(request, state.epoch):
        assert request is not None
        return f"held by a failover's stop request at epoch {state.epoch} ({request.by})"
    other = handover.other_running(region)
    if other is not None:
        return f"a pipeline already runs in {region.name} ({other.where()})"
    return None


def run_once(spark: SparkSession, cfg: Config, region: RegionConfig, progress: Progress = print) -> dict[str, int]:
    """One catch-up pass: each query drains what is available; rows read per query.

    The queries run in ``CATCH_UP_STAGES``: a stage's queries read only what earlier stages wrote, so they
    run at once (one's planning and commits overlap the other's computing) and the next stage starts when
    all of them are done. A failed query stops its stage and raises."""
    t_run = time.monotonic()
    prepare(spark, cfg, region)
    read: dict[str, int] = {}
    try:
        _catch_up(spark, cfg, region, read, progress)
    except fencing.Fenced:
        raise  # recorded as a denied write in the primary's log by the fence
    except Exception as exc:
        audit.try_record(region, audit.entry("pipeline.run", "once", region.name, "failed",
                                             {"rows_read": read, "error": str(exc)[:2000]}))  # fmt: skip
        raise
    seconds = time.monotonic() - t_run
    audit.record(region, audit.entry("pipeline.run", "once", region.name, "succeeded",
                                     {"rows_read": read, "seconds": round(seconds, 1)}))  # fmt: skip
    exporter.finish_batch_job(cfg, "pipeline", region.name, seconds)
    return read


def _catch_up(spark: SparkSession, cfg: Config, region: RegionConfig, read: dict[str, int], progress: Progress) -> None:
    starters = dict(STARTERS)
    for stage in CATCH_UP_STAGES:
        t0 = time.monotonic()
        queries: dict[str, StreamingQuery] = {}
        try:
            for name in stage:
                queries[name] = starters[name](spark, cfg, region, True)
            for query in queries.values():
                query.awaitTermination()
        finally:
            for query in queries.values():
                query.stop()
        for name, query in queries.items():
            if query.exception() is not None:
                raise LakehouseError(f"query {name} failed: {query.exception()}")
            read[name] = sum(int(p.get("numInputRows", 0)) for p in query.recentProgress)
            progress(f"  {name:<20} read {read[name]:>8} rows (stage of {len(stage)}: {time.monotonic() - t0:5.1f}s)")


def run_continuous(
    spark: SparkSession, cfg: Config, region: RegionConfig, progress: Progress = print, standby: bool = False
) -> None:
    """Run every query on its processing-time trigger until SIGTERM/SIGINT, a failover's stop request
    (lakehouse.replication.handover) or a failed query; with ``standby``, first wait as a warm standby until the
    region is the primary (:func:`await_promotion`). The front tier's queries (real time, bronze) run here, the
    others in the background tier's child (lakehouse.tiers), which warms up beside a standby and starts its
    queries after this process's checks. The process's status (``running``, then ``stopped``) goes to the region's HDFS."""
    background = tiers.Background.spawn(cfg, region, progress)
    try:
        _run_tiers(spark, cfg, region, background, progress, standby)
    finally:
        code = background.stop()  # before an acknowledgement: the background's commits have all landed
        progress(f"pipeline ({region.name}): background tier ended (exit {code})")


def _run_tiers(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    background: tiers.Background,
    progress: Progress,
    standby: bool,
) -> None:
    registered = await_promotion(spark, cfg, region, progress, check=background.require_alive) if standby else set()
    guard = prepare(spark, cfg, region, registered)
    exporter.serve_pipeline_metrics(cfg, region, tiers.MergedRegistry(background.metrics))
    queries = list(start_front(spark, cfg, region).values())
    heartbeat = handover.Heartbeat(region, progress)
    heartbeat.beat("running", guard.epoch)  # the front tier runs; fresh while the background tier starts too
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        progress(f"pipeline ({region.name}): signal {signum}, stopping queries")
        for q in queries:
            try:
                q.stop()
            except Exception:  # noqa: BLE001 -- `pipeline stop` signals the whole group: the JVM may be gone already
                break

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    names = [name for name, _ in STARTERS]
    # recorded when the status says running (the front tier runs): the background tier's start, seconds at its lower
    # priority on a loaded machine, follows; if it fails, the trail says so (below)
    audit.try_record(region, audit.entry("pipeline.run", "continuous", region.name, "started",
                                         {"queries": names, "standby": standby}))  # fmt: skip
    requested: handover.StopRequest | None = None
    try:
        background.go(guard.epoch, tick=lambda: heartbeat.beat("running", guard.epoch))
        progress(f"pipeline ({region.name}): {len(names)} queries running: " + ", ".join(
            f"{name} ({'front' if name in tiers.FRONT else 'background'})" for name in names))  # fmt: skip
        requested = _supervise(queries, background, region, guard, heartbeat, progress, lambda: stopping)
    except fencing.Fenced:
        background.stop()
        heartbeat.beat("stopped", guard.epoch)
        raise  # the fence recorded the denial in the primary's log; this region's own log is a replica now
    except Exception as exc:
        if not stopping:
            background.stop()
            audit.try_record(region, audit.entry("pipeline.run", "continuous", region.name, "failed",
                                                 {"error": str(exc)[:2000]}))  # fmt: skip
            heartbeat.beat("stopped", guard.epoch)
            raise
        progress(f"pipeline ({region.name}): the JVM stopped with the signal ({exc})")  # its shutdown stops queries
    background.stop()  # its queries' last commits land before the audit row and the acknowledgement
    detail: dict[str, object] = {"queries": names}
    if requested is not None:
        detail["stop_request"] = {"id": requested.id, "by": requested.by}
    # the audit row first, the acknowledgement after it: a failover's final pass, which waits for the
    # acknowledgement, then carries this last commit of the region too
    audit.try_record(region, audit.entry("pipeline.run", "continuous", region.name, "stopped", detail))
    heartbeat.beat("stopped", guard.epoch, requested.id if requested is not None else None)
    if requested is not None:
        progress(f"pipeline ({region.name}): stopped for {requested.by}; acknowledged")


def _supervise(
    queries: list[StreamingQuery],
    background: tiers.Background,
    region: RegionConfig,
    guard: fencing.Guard,
    heartbeat: handover.Heartbeat,
    progress: Progress,
    stopping: Callable[[], bool],
) -> handover.StopRequest | None:
    """Until ``stopping()``: check the fence, a failover's stop request and that every query and the background
    tier are alive, once a second, and keep the process's status fresh. Returns the stop request it stopped the
    queries for (the background tier's too), if any."""
    while not stopping():
        try:
            fencing.check()
        except fencing.Fenced as exc:
            progress(f"pipeline ({region.name}): {exc.message}")
            for q in queries:
                q.stop()
            raise
        try:
            request = handover.read_stop(region, timeout_s=5.0)
        except Exception as exc:  # noqa: BLE001 -- the region's HDFS blinked: the next look (a second later) asks again
            progress(f"pipeline ({region.name}): cannot look for a stop request ({exc})")
            request = None
        if handover.holds(request, guard.epoch):
            assert request is not None
            progress(f"pipeline ({region.name}): stop requested by {request.by}; stopping queries")
            for q in queries:
                q.stop()
            background.stop()
            return request
        for q in queries:
            if not stopping() and not q.isActive:
                raise LakehouseError(f"query {q.name} stopped: {q.exception()}", fix="read the pipeline log")
        if not stopping():
            background.require_alive()
        heartbeat.beat("running", guard.epoch)
        time.sleep(1.0)
    return None


def reconcile(spark: SparkSession, region: RegionConfig) -> Reconciliation:
    """Sum ``ops.ingest_batches`` and compare with the bronze row count."""
    totals = (
        spark.read.format("delta")
        .load(uri(region, "ops.ingest_batches"))
        .filter(F.col("region") == region.name)
        .agg(*[F.coalesce(F.sum(c), F.lit(0)).alias(c) for c in (
            "records", "messages_accepted", "messages_quarantined", "messages_duplicate",
            "measurements_accepted", "measurements_quarantined")])
        .first()
    )  # fmt: skip
    assert totals is not None
    return Reconciliation(
        bronze_rows=spark.read.format("delta").load(uri(region, "bronze.telemetry")).count(),
        records=int(totals["records"]),
        accepted=int(totals["messages_accepted"]),
        quarantined=int(totals["messages_quarantined"]),
        duplicate=int(totals["messages_duplicate"]),
        measurements_accepted=int(totals["measurements_accepted"]),
        measurements_quarantined=int(totals["measurements_quarantined"]),
    )


def table_counts(spark: SparkSession, region: RegionConfig) -> dict[str, int]:
    """Rows in every table of the region."""
    return {name: spark.read.format("delta").load(uri(region, name)).count() for name in SPECS}


# --------------------------------------------------------------------------- background supervision


def _files(cfg: Config, region: RegionConfig) -> tuple[Path, Path]:
    folder = cfg.state_dir / "pipeline" / region.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "pipeline.pid", folder / "pipeline.log"


def running_pid(cfg: Config, region: RegionConfig) -> int | None:
    """Pid of the region's background pipeline, or None."""
    pid_file, _ = _files(cfg, region)
    pid = process.read_pid(pid_file)
    return pid if process.is_ours(pid, f"--region {region.name}") and process.is_ours(pid, "pipeline") else None


def start_background(cfg: Config, region: RegionConfig, standby: bool = False) -> int:
    """Start ``lakehouse pipeline run --region R [--standby]`` detached (idempotent: a running pipeline or
    standby of the region is kept); returns its pid."""
    pid = running_pid(cfg, region)
    if pid is not None:
        return pid
    manager.require(cfg, "kafka", "hdfs-namenode", "hdfs-datanode", "metastore", region=region.name)
    pid_file, log_file = _files(cfg, region)
    return process.spawn(
        [sys.executable, "-m", "lakehouse", "pipeline", "run", "--region", region.name] + (["--standby"] * standby),
        env=without_gateway(os.environ),
        log_file=log_file, pid_file=pid_file, cwd=cfg.state_dir,
    )  # fmt: skip


def stop_background(cfg: Config, region: RegionConfig, timeout_s: float = 60.0) -> int | None:
    """Stop the region's background pipeline (SIGTERM, queries stop cleanly); returns the pid it stopped."""
    pid = running_pid(cfg, region)
    pid_file, _ = _files(cfg, region)
    if pid is not None:
        process.stop(pid, timeout_s)
    pid_file.unlink(missing_ok=True)
    return pid
