"""The whole medallion on the real local stack: exact reconciliation with injected bad data, idempotent
reruns, poison messages, kill -9 mid-run, alerts on Kafka, maintenance (the catalog: test_analyst.py).

The tests work in sandboxes (own lakehouse root and topics on the shared stack, a copy of the local profile),
so they never see another module's data: the filled sandbox of tests/conftest.py (shared with test_interop.py,
which only reads it) and the kill test's own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import audit, maintenance, pipeline
from lakehouse.config import CONF_DIR, Config, load_config, write_sandbox_profile
from lakehouse.devices import physionet, simulator
from lakehouse.errors import LakehouseError
from lakehouse.ingest import bronze, contract
from lakehouse.io import kafka
from lakehouse.stack import process
from lakehouse.tables import uri
from tests.conftest import Filled

pytestmark = pytest.mark.integration
CATALOGUE = contract.load_catalogue()


def isolated_profile(folder: Path, name: str) -> Path:
    """conf/local.yaml with its own lakehouse root and topic names (same services)."""
    return write_sandbox_profile(CONF_DIR / "local.yaml", folder, name)


def table(spark: SparkSession, cfg: Config, name: str) -> object:
    return spark.read.format("delta").load(uri(cfg.primary, name))


def replay_expectation(records: list[physionet.PatientRecord]) -> tuple[int, Counter[str]]:
    """Measurements the replayed rows must yield: (accepted, rejected by reason), computed without Spark."""
    accepted, rejected = 0, Counter[str]()
    for record in records:
        for row in record.rows:
            for m in physionet.measurements(row):
                vital, rule = CATALOGUE.vitals[m["vital"]], CATALOGUE.units[m["unit"]]
                value = round(m["value"] * rule.factor + rule.offset, 3)
                if vital.low <= value <= vital.high:
                    accepted += 1
                else:
                    rejected["implausible_value"] += 1
    return accepted, rejected


def test_counts_reconcile_exactly_with_injected_bad_data(spark: SparkSession, filled: Filled) -> None:
    cfg, records, replayed, sent = filled.cfg, filled.records, filled.replayed, filled.sent
    region = cfg.primary
    e = filled.sim.expected
    assert set(e.bad_kinds) == set(simulator.BAD_KINDS)

    rec = pipeline.reconcile(spark, region)
    assert rec.bronze_rows == replayed.messages + sent
    assert rec.balanced
    assert rec.duplicate == e.messages_duplicate
    assert rec.quarantined == e.messages_quarantined
    assert rec.accepted == replayed.messages + e.messages_accepted

    replay_ok, replay_bad = replay_expectation(records)
    quarantine = table(spark, cfg, "silver.quarantine")
    by_level = Counter((r["level"], r["reason"]) for r in quarantine.select("level", "reason").collect())  # type: ignore[attr-defined]
    assert {k[1]: v for k, v in by_level.items() if k[0] == "message"} == e.message_rejects
    assert {k[1]: v for k, v in by_level.items() if k[0] == "measurement"} == e.measurement_rejects + replay_bad
    vitals = table(spark, cfg, "silver.vitals")
    assert vitals.count() == e.measurements_accepted + replay_ok  # type: ignore[attr-defined]
    assert vitals.filter(F.col("ward").isNull()).count() == 0  # every device was registered  # type: ignore[attr-defined]
    keys = ["kafka_topic", "kafka_partition", "kafka_offset", "measurement_index"]
    assert vitals.select(*keys).distinct().count() == vitals.count()  # type: ignore[attr-defined]

    # a second pass finds nothing new and changes nothing
    before = pipeline.table_counts(spark, region)
    pipeline.run_once(spark, cfg, region, progress=lambda _: None)
    after = pipeline.table_counts(spark, region)
    assert after.pop(audit.TABLE) == before.pop(audit.TABLE) + 1  # the run itself is recorded in ops.audit_log
    assert after == before
    assert pipeline.reconcile(spark, region) == rec

    for name in ("gold.news2", "gold.vitals_minute", "gold.vitals_hourly"):
        assert before[name] > 0, name
    news2 = table(spark, cfg, "gold.news2")
    assert news2.select("patient_ref", "observation_time").distinct().count() == news2.count()  # type: ignore[attr-defined]
    assert news2.filter("news2_total < 0 OR news2_total > 20").count() == 0  # type: ignore[attr-defined]


def test_no_patient_or_device_identifier_reaches_a_delta_log(spark: SparkSession, filled: Filled) -> None:
    """The filled sandbox's _delta_log on HDFS (commits and checksum files of every table): file statistics keep
    data skipping (event time, values) but hold no patient reference or device id of the data."""
    from lakehouse.io.hdfs import Hdfs
    from lakehouse.tables import SPECS

    cfg = filled.cfg
    vitals = table(spark, cfg, "silver.vitals")
    ids = {v for r in vitals.select("patient_ref", "device_id").distinct().collect() for v in r if v}  # type: ignore[attr-defined]
    ids |= {r.patient_id for r in filled.records}  # the raw references too (restricted.patient_identities)
    assert len(ids) > 20
    hdfs, logs, ranged = Hdfs(cfg.primary), 0, set()
    for name in SPECS:
        folder = f"{hdfs.table_path(name)}/_delta_log"
        for file in (f for f in hdfs.list(folder) if f.endswith((".json", ".crc"))):
            text = hdfs.read(f"{folder}/{file}").decode()
            leaked = sorted(i for i in ids if i in text)
            assert not leaked, f"{name}: {file} holds {leaked[:3]}"
            logs += 1
            if name == "silver.vitals" and file.endswith(".json"):
                adds = [json.loads(a["add"]["stats"]) for a in map(json.loads, text.splitlines()) if "add" in a]
                ranged |= {c for st in adds for c in st.get("minValues", {})}
    assert logs > 2 * len(SPECS)
    assert {"event_time", "value", "vital"} <= ranged and "patient_ref" not in ranged  # data skipping kept


def test_raw_patient_references_stop_at_the_silver_boundary(spark: SparkSession, filled: Filled) -> None:
    """Silver and gold name patients by pseudonym (HMAC under the site's key, from the secret file); the raw
    references are in bronze, on the clinical alert topic and in restricted.patient_identities, whose folder
    only the pipeline user may enter and whose files are encrypted."""
    from hdfs import HdfsError, InsecureClient

    from lakehouse.io.hdfs import Hdfs
    from lakehouse.security import pseudonyms

    cfg = filled.cfg
    key = pseudonyms.patient_key(cfg)
    identities = {r["pseudonym"]: r["patient_ref"] for r in table(spark, cfg, pseudonyms.IDENTITIES_TABLE).collect()}  # type: ignore[attr-defined]
    assert all(p == pseudonyms.pseudonym(raw, key) for p, raw in identities.items())
    raw = set(identities.values())
    assert {r.patient_id for r in filled.records} <= raw and len(raw) == len(identities)
    tables = ("silver.vitals", "silver.accepted_messages", "silver.device_registry", "gold.news2", "gold.alerts",
              "gold.vitals_minute", "gold.vitals_hourly")  # fmt: skip
    for name in tables:
        named = {r[0] for r in table(spark, cfg, name).select("patient_ref").distinct().collect()}  # type: ignore[attr-defined]
        assert named and named <= set(identities), f"{name}: {sorted(named - set(identities))[:3]}"
        assert not named & raw
    # bronze keeps what devices sent; the alert topic carries the raw reference clinical systems act on
    received = table(spark, cfg, "bronze.telemetry").select(F.col("value").cast("string").alias("v"))  # type: ignore[attr-defined]
    assert received.where(F.col("v").contains(filled.records[0].patient_id)).count() > 0
    published = kafka.read_kafka(spark, cfg.primary, cfg.topics.alerts, streaming=False).select(
        F.get_json_object(F.col("value").cast("string"), "$.patient_ref").alias("p")
    )
    on_topic = {r[0] for r in published.distinct().collect()}
    assert on_topic and on_topic <= raw
    # the restricted folder: the pipeline user's alone
    region = cfg.primary
    owner = Hdfs(region)
    status = dict(owner.client.list(owner.root, status=True))["restricted"]
    assert (status["owner"], status["permission"]) == (region.hdfs.user, "700")
    analyst = InsecureClient(region.hdfs.webhdfs_url, user="analyst", timeout=30)
    with pytest.raises(HdfsError, match="Permission denied"):
        analyst.list(owner.table_path(pseudonyms.IDENTITIES_TABLE))
    # and encrypted at rest (Parquet modular encryption), as are the raw payloads of bronze and the quarantine
    # (written by the streaming jobs): no raw reference in any data file's bytes, so a copy of the folders or
    # of HDFS's block files is not a list of patients; the identities' footers are encrypted too
    magic = {pseudonyms.IDENTITIES_TABLE: b"PARE", "bronze.telemetry": b"PAR1", "silver.quarantine": b"PAR1"}
    for name, expected in magic.items():
        walked = owner.client.walk(owner.table_path(name))
        parts = [f"{root}/{f}" for root, _, files in walked if "_delta_log" not in root for f in files if f.endswith(".parquet")]  # fmt: skip
        assert parts, name
        for path in parts:
            with owner.client.read(path) as reader:
                data = reader.read()
            assert data[:4] == data[-4:] == expected and not any(r.encode() in data for r in raw), path


def test_alerts_are_deduplicated_and_published_to_kafka(spark: SparkSession, filled: Filled) -> None:
    cfg = filled.cfg
    alerts = table(spark, cfg, "gold.alerts")
    assert alerts.count() > 0  # type: ignore[attr-defined]
    per_patient = alerts.filter("status = 'open'").groupBy("patient_ref", "level").count()  # type: ignore[attr-defined]
    assert per_patient.filter("count > 1").count() == 0
    published = kafka.read_kafka(spark, cfg.primary, cfg.topics.alerts, streaming=False).select(
        F.get_json_object(F.col("value").cast("string"), "$.alert_id").alias("alert_id"),
        F.get_json_object(F.col("value").cast("string"), "$.status").alias("status"),
    )
    stored = {r["alert_id"] for r in alerts.select("alert_id").collect()}  # type: ignore[attr-defined]
    assert stored <= {r["alert_id"] for r in published.filter("status = 'open'").collect()}
    # every merged batch passed the gold.alerts suite first (conf/quality/gold.alerts.yaml), one result row per check
    checked = table(spark, cfg, "dq.results").filter("table_name = 'gold.alerts'")
    assert checked.filter("scope NOT LIKE 'stream batch %' OR NOT run_id LIKE 'gold.alerts:asia:%'").count() == 0  # type: ignore[attr-defined]
    per_check = {r["expectation"]: r for r in checked.groupBy("expectation").agg(  # type: ignore[attr-defined]
        F.count(F.lit(1)).alias("n"), F.sum(F.col("success").cast("int")).alias("ok"),
        F.sum("rows_checked").alias("rows")).collect()}  # fmt: skip
    assert set(per_check) == {"alert_id_unique", "one_open_alert_per_patient_and_level", "alert_level_known",
                              "alert_news2_range"}  # fmt: skip
    assert len({r["n"] for r in per_check.values()}) == 1 and all(r["ok"] == r["n"] for r in per_check.values())
    assert per_check["alert_id_unique"]["rows"] >= len(stored)  # each stored alert was in a checked batch


def test_poison_messages_never_stop_the_stream(spark: SparkSession, filled: Filled) -> None:
    cfg = filled.cfg
    region = cfg.primary
    before = pipeline.reconcile(spark, region)
    deep = "[" * 5000 + "]" * 5000
    poison = [
        b"\x00" * 64,
        b'{"contract": "vitals.v1", "measurements": ' + deep.encode() + b"}",
        json.dumps({"contract": "vitals.v1", "message_id": "x" * 400_000}).encode(),
        b'{"contract": "vitals.v1", "seq": 1e400, "event_time": NaN}',
        b"null",
        b'"just a string"',
        json.dumps(
            {
                "contract": "vitals.v1",
                "message_id": "p",
                "device_id": "../../etc/passwd",
                "device_type": "x",
                "patient_ref": "p",
                "event_time": "2026-01-01T00:00:00Z",
                "seq": 1,
                "measurements": [{"vital": {"nested": 1}, "value": [1, 2], "unit": None}],
            }
        ).encode(),
    ]
    kafka.produce(region, cfg.topics.telemetry, [(None, p) for p in poison])
    pipeline.run_once(spark, cfg, region, progress=lambda _: None)
    after = pipeline.reconcile(spark, region)
    assert after.balanced
    assert after.records - before.records == len(poison)
    assert after.quarantined - before.quarantined == len(poison)


def committed_versions(cfg: Config, table: str) -> int:
    """Commits in a table's _delta_log, read through WebHDFS (no Spark job competing with the pipeline)."""
    from hdfs import InsecureClient

    region = cfg.primary
    client = InsecureClient(region.hdfs.webhdfs_url, user=region.hdfs.user)
    log = "/" + uri(region, table).split("://", 1)[1].split("/", 1)[1] + "/_delta_log"
    if client.status(log, strict=False) is None:
        return 0
    return sum(1 for name in client.list(log) if name.endswith(".json"))


@pytest.mark.timeout(1800)
def test_kill_minus_9_mid_run_then_restart_loses_and_duplicates_nothing(
    spark: SparkSession, stack: Config, tmp_path: Path
) -> None:
    path = isolated_profile(tmp_path, "kill")
    # its /metrics on a port of its own: the region's regular endpoint belongs to test_observability's pipeline,
    # which the other lane may be running right now
    data = yaml.safe_load(path.read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    data["observability"]["pipeline_metrics"] = dict.fromkeys(data["regions"], f"127.0.0.1:{free}")
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(str(path))
    region = cfg.primary
    env = {**os.environ, "LAKEHOUSE_ENV": str(path)}
    first, _ = simulator.simulate(
        cfg, 20, rate=50, seconds=40, seed=1, realtime=False, prefix="k1", progress=lambda _: None
    )
    log = (tmp_path / "pipeline.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakehouse", "pipeline", "run"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    second = None
    try:
        deadline = time.monotonic() + 1200  # a cold first micro-batch is slow on 2 shared cores
        while time.monotonic() < deadline:  # until the first silver batch is committed (version 1 of ops)
            assert proc.poll() is None, (tmp_path / "pipeline.log").read_text()[-3000:]
            if committed_versions(cfg, "ops.ingest_batches") >= 2:
                break
            time.sleep(2)
        else:
            pytest.fail("the pipeline committed no batch in time")
        second, _ = simulator.simulate(
            cfg, 20, rate=50, seconds=40, seed=2, realtime=False, prefix="k2", progress=lambda _: None
        )
        time.sleep(4)  # let the next micro-batches start, then pull the plug
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    deadline = time.monotonic() + 30  # SIGKILL is delivered at once, but a big process takes a moment to exit
    while process.group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.group_members(proc.pid) == []

    pipeline.run_once(spark, cfg, region, progress=lambda _: None)
    expected = first.expected.measurements_accepted + second.expected.measurements_accepted
    vitals = spark.read.format("delta").load(uri(region, "silver.vitals"))
    keys = ["kafka_topic", "kafka_partition", "kafka_offset", "measurement_index"]
    assert vitals.count() == expected
    assert vitals.select(*keys).distinct().count() == expected
    rec = pipeline.reconcile(spark, region)
    assert rec.balanced and rec.accepted == first.expected.messages + second.expected.messages
    news2 = spark.read.format("delta").load(uri(region, "gold.news2"))
    assert news2.select("patient_ref", "observation_time").distinct().count() == news2.count()
    minute = spark.read.format("delta").load(uri(region, "gold.vitals_minute"))
    assert minute.select("patient_ref", "vital", "window_start").distinct().count() == minute.count()
    assert minute.agg(F.sum("n")).first()[0] <= expected  # type: ignore[index]


def test_maintenance_compacts_and_refuses_unsafe_vacuum(spark: SparkSession, filled: Filled) -> None:
    cfg = filled.cfg
    with pytest.raises(LakehouseError, match="below the floor of 168 h"):
        maintenance.maintain(spark, cfg, cfg.primary, ["silver.vitals"], retention_hours=1)
    location = uri(cfg.primary, "silver.vitals")
    rows = spark.read.format("delta").load(location).count()
    [result] = maintenance.maintain(spark, cfg, cfg.primary, ["silver.vitals"], progress=lambda _: None)
    assert result.files_after <= result.files_before
    assert spark.read.format("delta").load(location).count() == rows


def test_a_large_bronze_batch_is_read_in_tasks_of_at_most_the_configured_records(
    stack: Config, spark: SparkSession, tmp_path: Path
) -> None:
    """``pipeline.bronze_max_records_per_task`` reaches Spark's Kafka source: one bronze batch of ~5,000 records
    (three Kafka partitions of ~1,700) under a bound of 1,000 per task lands as files of at most 1,000 records,
    one per task, with every record once."""
    path = isolated_profile(tmp_path, "bronze-tasks")
    data = yaml.safe_load(path.read_text())
    data["pipeline"]["bronze_max_records_per_task"] = 1000
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(str(path))
    region = cfg.primary
    pipeline.prepare(spark, cfg, region)
    _, sent = simulator.simulate(cfg, 50, rate=5000 / 60, seconds=60, realtime=False, progress=lambda _: None)
    assert sent >= 4000

    query = bronze.start_bronze(spark, cfg, region, True)
    query.awaitTermination()
    batches = [p for p in query.recentProgress if int(p["numInputRows"]) > 0]
    assert len(batches) == 1, "the whole backlog in one batch (max_offsets_per_trigger is 1,000,000)"
    files = table(spark, cfg, "bronze.telemetry").groupBy("_metadata.file_path").count().collect()  # type: ignore[attr-defined]
    per_file = sorted(int(r["count"]) for r in files)
    assert sum(per_file) == sent and max(per_file) <= 1000, per_file
    assert len(per_file) >= sent / 1000 and len(per_file) > cfg.topics.partitions, per_file
