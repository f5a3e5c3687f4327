"""`lakehouse bench ingest | latency --json`: pipeline performance beside same-run baselines.

Every benchmark runs in its own lakehouse root and topics on the running stack, so it measures a
clean pipeline and leaves the regular tables alone. Numbers go to stdout as one JSON object.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lakehouse.config import Config, load_config, write_sandbox_profile
from lakehouse.devices import simulator
from lakehouse.io import kafka
from lakehouse.security import kafka_auth
from lakehouse.stack import jvm, manager

Progress = Callable[[str], None]


def isolated_config(cfg: Config, name: str) -> Config:
    """``cfg`` with a fresh lakehouse root and topic names (same services), written beside the state."""
    return load_config(str(write_sandbox_profile(cfg.source, cfg.state_dir / "bench", f"bench-{name}")))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    mem_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {"cpus": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1), "python": platform.python_version(),
            "platform": platform.platform()}  # fmt: skip


def kafka_consumer_perf(cfg: Config, topic: str, messages: int) -> dict[str, float]:
    """Kafka's own consumer perf tool (ConsumerPerformance) on ``topic``: the raw consume rate."""
    region = cfg.primary
    cmd = [
        str(jvm.java_binary(cfg)), "-Xmx512m", "-cp", jvm.classpath(cfg, "kafka"), "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server", region.kafka.bootstrap, "--topic", topic, "--messages", str(messages),
        "--timeout", "60000", "--hide-header",
    ]  # fmt: skip
    settings = kafka_auth.java_client_properties(region.kafka, kafka_auth.PIPELINE)
    with tempfile.TemporaryDirectory() as tmp:  # secure mode: the pipeline's credentials, never on the command line
        if settings:
            props = Path(tmp) / "client.properties"
            props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), encoding="utf-8")
            cmd += ["--consumer.config", str(props)]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    out = run.stdout.strip().splitlines()
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms,
    # fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    fields = [f.strip() for f in out[-1].split(",")]
    numbers = [float(f) for f in fields[2:] if re.fullmatch(r"-?[\d.]+", f)]
    return {"mb": numbers[0], "mb_per_s": numbers[1], "messages": numbers[2], "msgs_per_s": numbers[3],
            "fetch_msgs_per_s": numbers[-1]}  # fmt: skip


def _drain(spark: Any, start: Callable[..., Any], bench: Config, region: Any) -> dict[str, Any]:
    """Run one query with availableNow until it has read everything.

    ``events_per_s`` is rows over the wall time of the whole run (query start and every commit
    included); ``steady_events_per_s`` leaves out the first micro-batch (planning, opening the
    checkpoint), i.e. the rate once the query runs.
    """
    t0 = time.monotonic()
    query = start(spark, bench, region, True)
    query.awaitTermination()
    seconds = time.monotonic() - t0
    progress = [p for p in query.recentProgress if int(p.get("numInputRows", 0)) > 0]
    rows = sum(int(p["numInputRows"]) for p in progress)
    later = progress[1:]
    later_rows = sum(int(p["numInputRows"]) for p in later)
    later_s = sum(float(p["durationMs"]["triggerExecution"]) / 1000 for p in later)
    operators = (query.recentProgress[-1].get("stateOperators") or []) if query.recentProgress else []
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "events_per_s": round(rows / seconds, 1),
        "batches": len(progress),
        "batch_seconds": [round(float(p["durationMs"]["triggerExecution"]) / 1000, 2) for p in progress],
        "steady_events_per_s": round(later_rows / later_s, 1) if later_s else None,
        # what a stateful query keeps between batches (dedup keys, open windows) once it has read everything
        "state_rows": sum(int(op.get("numRowsTotal", 0)) for op in operators),
        "state_bytes": sum(int(op.get("memoryUsedBytes", 0)) for op in operators),
    }


def ingest(
    cfg: Config, messages: int = 400_000, devices: int = 200, progress: Progress = print, dq: str = "on"
) -> dict[str, Any]:
    """Sustained Kafka -> bronze, bronze -> silver and Kafka -> gold.news2 events/s beside Kafka's raw consume rate.

    ``dq``: the data-quality checks (conf/quality) on, off, or both: then the whole run is made twice, each in
    its own sandbox on the same generated load, checks off first, and the silver rate with checks on is
    reported as a ratio of the rate with them off (target >= 0.80)."""
    if dq not in ("on", "off", "both"):
        raise ValueError(f"dq must be on, off or both, got {dq!r}")
    if dq != "both":
        return {**_ingest_once(cfg, messages, devices, progress, checks=dq == "on"), "dq": dq}
    off = _ingest_once(cfg, messages, devices, progress, checks=False)
    on = _ingest_once(cfg, messages, devices, progress, checks=True)

    def ratio(key: str) -> float | None:
        a, b = on["bronze_to_silver"][key], off["bronze_to_silver"][key]
        return round(a / b, 4) if a and b else None

    return {
        "benchmark": "ingest",
        "machine": machine(),
        "messages": messages,
        "dq": "both",
        "checks_off": off,
        "checks_on": on,
        "silver_ratio_checks_on_to_off": ratio("events_per_s"),
        "silver_steady_ratio_checks_on_to_off": ratio("steady_events_per_s"),
        "target_dq_ratio": 0.80,
    }


STAGES = ("kafka_to_bronze", "bronze_to_silver", "kafka_to_gold_news2")


def scaling(
    cfg: Config, devices: Sequence[int] = (1_000, 10_000, 100_000), messages: int = 200_000, progress: Progress = print
) -> dict[str, Any]:
    """The ingest benchmark at each fleet size in ``devices`` (the same number of messages spread over more
    devices, data-quality checks on): events/s of each stage beside Kafka's raw rate, and the state each stage
    keeps. Throughput should stay flat as the fleet grows, and state grow at most linearly with it."""
    points = []
    for n in devices:
        progress(f"bench scaling: {n} devices, {messages} messages")
        run = _ingest_once(cfg, messages, n, progress, checks=True)
        points.append({
            "devices": n,
            "raw_msgs_per_s": run["baseline_kafka_consumer_perf"]["msgs_per_s"],
            **{stage: {k: run[stage][k] for k in ("events_per_s", "state_rows", "state_bytes")} for stage in STAGES},
            **{f"{stage}_ratio_to_raw": run[f"{stage}_ratio_to_raw"] for stage in STAGES},
        })  # fmt: skip
    first, last = points[0], points[-1]
    growth = last["devices"] / first["devices"]
    return {
        "benchmark": "scaling",
        "machine": machine(),
        "messages": messages,
        "points": points,
        # throughput at the largest fleet over the smallest (flat: about 1), and state growth (bytes: the real-time
        # stage keeps its patients in a fixed number of rows) over fleet growth (linear or better: at most about 1)
        "throughput_largest_to_smallest": {
            stage: round(last[stage]["events_per_s"] / first[stage]["events_per_s"], 3) for stage in STAGES
        },
        "state_growth_per_fleet_growth": {
            stage: round(last[stage]["state_bytes"] / first[stage]["state_bytes"] / growth, 3)
            for stage in STAGES
            if first[stage]["state_bytes"]
        },
    }


def _ingest_once(cfg: Config, messages: int, devices: int, progress: Progress, checks: bool) -> dict[str, Any]:
    """One sandboxed ingest run with the data-quality checks on or off."""
    from lakehouse import pipeline
    from lakehouse.ingest import bronze, news2_job, silver_job
    from lakehouse.session import build_spark

    manager.require(cfg, "kafka", "hdfs-namenode", "hdfs-datanode", region=cfg.primary.name)
    bench = isolated_config(cfg, f"ingest-dq-{'on' if checks else 'off'}")
    bench = dataclasses.replace(bench, quality=dataclasses.replace(bench.quality, enabled=checks))
    # the profile's own batch sizes (bronze: pipeline.max_offsets_per_trigger, 1,000,000 locally, in tasks of
    # bronze_max_records_per_task; the real-time query: realtime_max_offsets_per_trigger, 20,000; silver:
    # silver_max_mib_per_trigger of bronze files)
    region = bench.primary
    spark = build_spark(bench, "lakehouse-bench-ingest", register_tables=False)
    pipeline.prepare(spark, bench, region)
    stages = (("kafka_to_bronze", bronze.start_bronze), ("bronze_to_silver", silver_job.start_silver),
              ("kafka_to_gold_news2", news2_job.start_news2))  # fmt: skip
    warm = max(2000, messages // 10)
    progress(f"bench ingest: data-quality checks {'on' if checks else 'off'}")
    progress(f"bench ingest: warm-up pass over {warm} messages (JIT, first-batch planning; not measured)")
    simulator.simulate(
        bench, devices, rate=warm / 60, seconds=60, realtime=False, prefix="warm", progress=lambda _: None
    )
    for _, warm_start in stages:
        warm_start(spark, bench, region, True).awaitTermination()
    progress(f"bench ingest: producing {messages} simulated messages to {bench.topics.telemetry}")
    simulator.simulate(
        bench, devices, rate=messages / 60, seconds=60, realtime=False, prefix="bench", progress=lambda _: None
    )
    progress("bench ingest: baseline, Kafka ConsumerPerformance on the same topic (all its messages)")
    raw = kafka_consumer_perf(bench, bench.topics.telemetry, messages + warm)
    results: dict[str, Any] = {}
    for name, start in stages:
        progress(f"bench ingest: {name} (availableNow)")
        results[name] = _drain(spark, start, bench, region)
    progress("bench ingest: Spark's own ceiling on the same topic (its Kafka source alone, then into a Delta table)")
    ceiling = spark_ceiling(spark, bench, region)
    raw_rate = raw["msgs_per_s"]
    return {
        "benchmark": "ingest",
        "machine": machine(),
        "messages": messages,
        "warm_up_messages": warm,
        "baseline_kafka_consumer_perf": raw,
        **results,
        **{f"{name}_ratio_to_raw": round(results[name]["events_per_s"] / raw_rate, 4) for name, _ in stages},
        "spark_ceiling": {
            name: {**run, "ratio_to_raw": round(run["events_per_s"] / raw_rate, 4)} for name, run in ceiling.items()
        },
        "target_ratio": 0.40,
    }


CEILING_TABLE = "_bench/spark_ceiling"  # under the sandbox's lakehouse root: a scratch table no stage reads


def spark_ceiling(spark: Any, bench: Config, region: Any, rounds: int = 3) -> dict[str, dict[str, Any]]:
    """What Spark alone does with the whole topic in the same driver, with no pipeline logic: its Kafka source read
    into nothing (``noop``), and the same read written as bronze rows to a scratch Delta table, each as one batch
    job: one round to warm these code paths (not measured), then the best of ``rounds``. No Spark design of the
    Kafka stages does less work than these, so up to run-to-run noise they bound what one can reach on this machine:
    bronze's rate the second, every stage the first."""
    from lakehouse.ingest import bronze
    from lakehouse.io import kafka

    def source() -> Any:
        fetch = bench.pipeline.bronze_fetch_mib << 20
        return kafka.read_kafka(spark, region, bench.topics.telemetry, streaming=False, partition_fetch_bytes=fetch)

    target = f"{region.warehouse_uri}/{CEILING_TABLE}"
    jobs = {
        "kafka_read": lambda: source().write.format("noop").mode("overwrite").save(),
        "kafka_to_delta": lambda: bronze.to_bronze(source()).write.format("delta").mode("overwrite").save(target),
    }
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for measured in (False, *([True] * rounds)):
        for name, job in jobs.items():
            t0 = time.monotonic()
            job()
            if measured:
                times[name].append(round(time.monotonic() - t0, 2))
    rows = spark.read.format("delta").load(target).count()  # from the Delta log's file statistics
    return {
        name: {"rows": rows, "seconds": min(t), "round_seconds": t, "events_per_s": round(rows / min(t), 1)}
        for name, t in times.items()
    }


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None}
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {"n": len(values), "p50": round(q[49], 3), "p95": round(q[94], 3), "p99": round(q[98], 3)}


def _wait_idle(queries: dict[str, Any], timeout_s: float, triggers: int = 3) -> None:
    """Until every query's last ``triggers`` batches read nothing (or ``timeout_s`` passes); a failed query raises."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, q in queries.items():
            if q.exception() is not None:
                raise RuntimeError(f"query {name} failed during the benchmark: {q.exception()}")
        recent = [q.recentProgress[-triggers:] for q in queries.values()]
        if all(len(r) == triggers and all(int(p.get("numInputRows", 0)) == 0 for p in r) for r in recent):
            return
        time.sleep(1)


WARM_UP_CHUNK_S = 30.0  # bench latency warms up in chunks of this much load
JIT_SETTLED = 0.25  # JIT compile seconds per second (a quarter of a core) under which a warm-up chunk counts as settled


@dataclasses.dataclass(frozen=True)
class WarmUp:
    """How long the load ran before the measured one, and the JIT's share of a core in its last chunk."""

    seconds: float
    jit_rate: float
    settled: bool


def jit_seconds(spark: Any) -> float:
    """Seconds the driver JVM's JIT compilers have spent so far (JMX's CompilationMXBean)."""
    bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getCompilationMXBean()
    return float(bean.getTotalCompilationTime()) / 1000.0


def warm_up(
    load: Callable[[float], object],
    jit: Callable[[], float],
    minimum_s: float,
    maximum_s: float,
    progress: Progress = print,
    chunk_s: float = WARM_UP_CHUNK_S,
) -> WarmUp:
    """Run ``load(seconds)`` in chunks of ``chunk_s`` for at least ``minimum_s`` and until a chunk's JIT compile
    time (``jit()``, cumulative seconds) is under :data:`JIT_SETTLED` per second of it, or ``maximum_s`` ran."""
    ran, rate = 0.0, float("inf")
    while ran < maximum_s:
        part = min(chunk_s, maximum_s - ran)
        before, t0 = jit(), time.monotonic()
        load(part)
        ran += part
        rate = (jit() - before) / max(time.monotonic() - t0, 1e-9)
        progress(f"bench latency: warm-up {ran:g}s, JIT {rate:.2f} of a core")
        if ran >= minimum_s and rate < JIT_SETTLED:
            return WarmUp(ran, round(rate, 3), True)
    return WarmUp(ran, round(rate, 3), False)


def latency(
    cfg: Config,
    seconds: float = 90.0,
    devices: int = 40,
    rate: float = 40.0,
    progress: Progress = print,
    warm_up_s: float = 60.0,
    max_warm_up_s: float = 600.0,
) -> dict[str, Any]:
    """Device event -> gold.news2 row and -> alerts.news2 message latency with the whole continuous pipeline running.

    ``gold.news2``: the commit time of the Delta version that made the row visible (its change-data-feed
    ``_commit_timestamp``) minus the observation's event time. Alerts: the Kafka timestamp of the open
    event minus the event time of the observation that opened it.
    """
    import threading

    from pyspark.sql import functions as F

    from lakehouse import pipeline, tiers
    from lakehouse.ingest import news2_job
    from lakehouse.session import build_spark
    from lakehouse.tables import uri

    manager.require(cfg, "kafka", "hdfs-namenode", "hdfs-datanode", region=cfg.primary.name)
    bench = isolated_config(cfg, "latency")
    region = bench.primary
    spark = build_spark(bench, "lakehouse-bench-latency", register_tables=False)
    background = tiers.Background.spawn(bench, region, progress=progress)  # its few lines: start, running, an error
    guard = pipeline.prepare(spark, bench, region)
    # as `pipeline run` runs them: the front tier here (real time, bronze), the others in the background tier's process
    queries = pipeline.start_front(spark, bench, region)
    background.go(guard.epoch)
    realtime = queries["gold.news2"]
    progress(f"bench latency: pipeline running ({len(pipeline.STARTERS)} queries, {len(queries)} in the front tier); "
             f"warming up (at least {warm_up_s:g}s, until the JIT settles), then {seconds:g}s of {rate:g} msg/s "
             f"from {devices} devices")  # fmt: skip
    warmed = warm_up(
        lambda s: simulator.simulate(
            bench, devices, rate=rate, seconds=s, realtime=True, prefix="warm", progress=lambda _: None
        ),
        lambda: jit_seconds(spark),
        warm_up_s,
        max(warm_up_s, max_warm_up_s),
        progress,
    )
    background.require_alive()  # its lines above say why it ended: no point measuring without it
    # cold first batches (plan, code generation, JIT) are not part of the measure: every query has read
    # the warm-up data, and the real-time one is idle again
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all(
        any(int(p.get("numInputRows", 0)) > 0 for p in q.recentProgress) for q in queries.values()
    ):
        time.sleep(1)
    _wait_idle({"gold.news2": realtime}, 120)
    t_start = time.time()
    jit_before = jit_seconds(spark)
    first_batch = max((b.batch_id for b in news2_job.RECENT_BATCHES), default=-1) + 1
    sender = threading.Thread(
        target=simulator.simulate,
        kwargs={"cfg": bench, "devices": devices, "rate": rate, "seconds": seconds, "realtime": True, "prefix": "lat",
                "progress": lambda _: None},
    )  # fmt: skip
    sender.start()
    sender.join()
    _wait_idle({"gold.news2": realtime}, 120)
    jit_measured = (jit_seconds(spark) - jit_before) / (time.time() - t_start)
    batches = {
        name: _percentiles([float(p["durationMs"]["triggerExecution"]) / 1000 for p in q.recentProgress
                            if int(p.get("numInputRows", 0)) > 0])
        for name, q in queries.items()
    }  # fmt: skip
    measured = [p for p in realtime.recentProgress if int(p.get("numInputRows", 0)) > 0 and p["batchId"] >= first_batch]
    # where the real-time query's micro-batches go: Spark's own phases, and inside addBatch (our foreachBatch) ours
    phases = {
        f"spark_{k}": _percentiles([float(p["durationMs"].get(k, 0)) / 1000 for p in measured])
        for k in ("latestOffset", "queryPlanning", "addBatch", "walCommit", "commitOffsets", "triggerExecution")
    }
    ours = [b for b in news2_job.RECENT_BATCHES if b.batch_id >= first_batch]
    phases |= {f"foreach_{k}": _percentiles([getattr(b, k) for b in ours])
               for k in ("compute_s", "checks_s", "append_s")}  # fmt: skip
    for q in reversed(list(queries.values())):
        q.stop()
    try:
        background.require_alive()  # a measure without the background tier's load is not the pipeline's
    finally:
        background.stop()
    batches |= {name: _percentiles(durations) for name, durations in background.report.items()}
    # the measured load's observations: gold names patients by pseudonym (no "lat-" prefix left to filter on),
    # and every warm-up event is older than t_start
    news2 = (
        spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0)
        .load(uri(region, "gold.news2"))
        .filter(F.col("observation_time") >= F.lit(t_start).cast("timestamp"))
        .select((F.col("_commit_timestamp").cast("double") - F.col("observation_time").cast("double")).alias("s"))
    )  # fmt: skip
    news2_lat = [float(r["s"]) for r in news2.collect()]
    alerts = (
        kafka.read_kafka(spark, region, bench.topics.alerts, streaming=False)
        .select(
            F.col("timestamp").cast("double").alias("received"),
            F.get_json_object(F.col("value").cast("string"), "$.opened_event_time").alias("event"),
            F.get_json_object(F.col("value").cast("string"), "$.status").alias("status"),
            F.get_json_object(F.col("value").cast("string"), "$.patient_ref").alias("patient"),
        )
        .filter("status = 'open' AND patient LIKE 'lat-%'")
    )
    alert_lat = [
        float(r["received"]) - float(r["event_ts"])
        for r in alerts.select("received", F.to_timestamp("event").cast("double").alias("event_ts")).collect()
    ]
    return {
        "benchmark": "latency",
        "machine": machine(),
        "load": {
            "devices": devices,
            "msgs_per_s": rate,
            "seconds": seconds,
            "started": t_start,
        },
        # the load before the measured one, until the front process's JIT compilers settled (a fresh JVM compiles
        # Spark's planner for minutes, a core's worth at first), and their share of a core while measuring
        "warm_up": {
            "seconds": warmed.seconds,
            "settled": warmed.settled,
            "jit_cores_at_end": warmed.jit_rate,
            "jit_cores_measured": round(jit_measured, 3),
        },
        "event_to_gold_news2_s": _percentiles(news2_lat),
        "event_to_alert_on_kafka_s": _percentiles(alert_lat),
        "batch_duration_s": batches,
        "realtime_batch_phases_s": phases,
        "settings": {
            "realtime_trigger_ms": bench.pipeline.realtime_trigger_ms,
            "news2_hold_ms": bench.pipeline.news2_hold_ms,
            "trigger_interval_s": bench.pipeline.trigger_interval_s,
            "silver_trigger_interval_s": bench.pipeline.silver_trigger_interval_s,
            "background_nice": bench.pipeline.background_nice,
        },
        "targets": {"alert_p95_s": 2.0, "gold_p95_s": 5.0},
    }
