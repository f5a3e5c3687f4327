"""Cross-region replication on the real stack: tables of a real pipeline pass plus a table put through every
kind of commit are replicated asia -> europe, then verified version by version (Spark on both sides and the
independent deltalake reader); a kill -9 mid-pass then a rerun converges; residency policies are enforced;
verify catches a tampered replica."""

from __future__ import annotations

import json
import os
import posixpath
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import audit, pipeline
from lakehouse.config import PROJECT_ROOT, PSEUDONYMOUS_PROPERTY, Config, load_config, write_sandbox_profile
from lakehouse.devices import simulator
from lakehouse.ingest.registry import register_assignments
from lakehouse.io.hdfs import Hdfs
from lakehouse.io.tables import table_uri
from lakehouse.replication import deltalog, state
from lakehouse.replication.lock import HEARTBEAT_S, LockBusy, PassLock
from lakehouse.replication.replicator import replicator
from lakehouse.replication.verify import verify_table

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]  # the module fixture runs a pipeline pass

KINDS = "ops.repl_kinds"  # a table put through every kind of commit
FORBIDDEN = "ops.repl_forbidden"
PSEUDO = "ops.repl_pseudo"
PIPELINE_TABLES = ("bronze.telemetry", "silver.vitals", "silver.device_registry", "gold.news2", "ops.ingest_batches")


@dataclass(frozen=True)
class Sandbox:
    path: Path
    cfg: Config


def sandbox_profile(stack: Config, folder: Path) -> Path:
    """The stack's profile with its own lakehouse root and topics, replicating a few pipeline tables and the test's."""
    path = write_sandbox_profile(stack.source, folder, "repl")
    data = yaml.safe_load(path.read_text())
    data["replication"]["tables"] = {
        **{t: "allowed" for t in PIPELINE_TABLES}, KINDS: "allowed", FORBIDDEN: "forbidden", PSEUDO: "pseudonymous",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    return path


def every_commit_kind(spark: SparkSession, uri: str) -> None:
    """Create, append, MERGE (deletion vectors, change data), DELETE, OPTIMIZE, schema change, checkpoints."""
    spark.sql(
        f"CREATE TABLE delta.`{uri}` (id BIGINT, v STRING) USING delta TBLPROPERTIES ("
        "'delta.enableDeletionVectors'='true', 'delta.enableChangeDataFeed'='true', 'delta.checkpointInterval'='3')"
    )
    for i in range(3):
        spark.range(i * 100, i * 100 + 100).select("id", F.concat(F.lit("r"), F.col("id")).alias("v")).write.format(
            "delta"
        ).mode("append").save(uri)
    spark.range(50, 150).select("id", F.lit("merged").alias("v")).createOrReplaceTempView("repl_updates")
    spark.sql(
        f"MERGE INTO delta.`{uri}` t USING repl_updates s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT *"
    )
    spark.sql(f"DELETE FROM delta.`{uri}` WHERE id % 7 = 0")
    spark.sql(f"OPTIMIZE delta.`{uri}`")
    spark.sql(f"ALTER TABLE delta.`{uri}` ADD COLUMNS (note STRING)")
    spark.sql(f"INSERT INTO delta.`{uri}` VALUES (1000, 'late', 'after schema change')")


def vacuum(spark: SparkSession, uri: str) -> None:
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        spark.sql(f"VACUUM delta.`{uri}` RETAIN 0 HOURS")
    finally:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")


def data_files(hdfs: Hdfs, table: str) -> dict[str, int]:
    return {
        p: st.length
        for p, st in hdfs.walk_files(hdfs.table_path(table), skip_dirs=("_delta_log",)).items()
        if not posixpath.basename(p).startswith(".")
    }


def log_files(hdfs: Hdfs, table: str) -> set[str]:
    return {n for n in hdfs.list(posixpath.join(hdfs.table_path(table), "_delta_log")) if not n.startswith(".")}


@pytest.fixture(scope="module")
def sandbox(stack: Config, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    path = sandbox_profile(stack, tmp_path_factory.mktemp("profiles"))
    cfg = load_config(str(path))
    region = cfg.primary
    fleet = simulator.make_fleet(6, seed=5, prefix="rp")
    register_assignments(
        cfg, region, simulator.fleet_assignments(fleet, datetime.now(UTC) - timedelta(hours=2), "asia")
    )
    simulator.simulate(cfg, 6, rate=10, seconds=30, seed=5, realtime=False, prefix="rp", progress=lambda _: None)
    pipeline.run_once(spark, cfg, region, progress=lambda _: None)
    every_commit_kind(spark, table_uri(region, KINDS))
    for name in (FORBIDDEN, PSEUDO):
        spark.range(10).write.format("delta").save(table_uri(region, name))
    yield Sandbox(path, cfg)


def test_replica_is_version_identical_for_every_commit_kind(spark: SparkSession, sandbox: Sandbox) -> None:
    cfg = sandbox.cfg
    asia, europe = Hdfs(cfg.regions["asia"]), Hdfs(cfg.regions["europe"])
    lines: list[str] = []
    result = replicator(cfg, "asia", "europe", progress=lines.append).run_pass()
    by_table = {t.table: t for t in result.tables}
    for table in (*PIPELINE_TABLES, KINDS):
        assert by_table[table].status == "replicated", by_table[table]
        assert by_table[table].replicated_version == by_table[table].source_version
        assert log_files(europe, table) >= {n for n in log_files(asia, table) if not n.endswith(".crc")}
    assert any(n.endswith(".checkpoint.parquet") for n in log_files(europe, KINDS))
    assert any(n.endswith("_last_checkpoint") for n in log_files(europe, KINDS))
    assert len(lines) == len(cfg.replication.tables)
    kinds = verify_table(spark, cfg.regions["asia"], cfg.regions["europe"], KINDS, data_versions=None)
    assert kinds.ok, kinds.problems
    assert len(kinds.checks) == kinds.source_version + 1  # every version, create to the post-schema-change insert
    # deltalake (delta-rs) reads no table with deletion vectors: verify reports it as the client's limit
    assert "deletionVectors" in (kinds.deltalake_unsupported or ""), kinds
    for table in ("bronze.telemetry", "gold.news2"):  # the others are replicated alike; Spark reads cost minutes
        v = verify_table(spark, cfg.regions["asia"], cfg.regions["europe"], table, data_versions=1)
        assert v.ok, (table, v.problems)
        assert v.deltalake_rows == v.checks[-1].rows_source, (table, v.deltalake_unsupported)

    # VACUUM on the primary: the replica follows, then drops what the primary dropped
    vacuum(spark, table_uri(cfg.primary, KINDS))
    again = {t.table: t for t in replicator(cfg, "asia", "europe").run_pass().tables}
    assert again[KINDS].status == "replicated" and again[KINDS].pruned > 0
    assert data_files(europe, KINDS) == data_files(asia, KINDS)
    assert all(again[t].status == "up_to_date" and again[t].bytes == 0 for t in PIPELINE_TABLES)

    rows = {r["table"]: r for r in state.read(cfg.regions["europe"])}
    assert rows[KINDS]["replicated_version"] == again[KINDS].source_version
    assert rows[KINDS]["lag_versions"] == 0 and rows[FORBIDDEN]["status"] == "refused"


def test_residency_policy_is_enforced(spark: SparkSession, sandbox: Sandbox) -> None:
    cfg = sandbox.cfg
    europe = Hdfs(cfg.regions["europe"])
    result = {t.table: t for t in replicator(cfg, "asia", "europe").run_pass([FORBIDDEN, PSEUDO]).tables}
    assert result[FORBIDDEN].status == "refused" and "forbidden" in (result[FORBIDDEN].detail or "")
    assert result[PSEUDO].status == "refused" and PSEUDONYMOUS_PROPERTY in (result[PSEUDO].detail or "")
    for table in (FORBIDDEN, PSEUDO):
        assert europe.status(europe.table_path(table)) is None, f"{table} left its region"
    spark.sql(
        f"ALTER TABLE delta.`{table_uri(cfg.primary, PSEUDO)}` SET TBLPROPERTIES ('{PSEUDONYMOUS_PROPERTY}'='pseudonymous')"
    )
    after = replicator(cfg, "asia", "europe").run_pass([PSEUDO]).tables[0]
    # the versions before the declaration still hold identifiers not declared pseudonymous: still refused
    assert after.status == "refused" and "version 0" in (after.detail or "")
    denied = audit.read(cfg.primary, "replication.residency")  # each denial recorded in the primary's log
    assert [r["target"] for r in denied[-3:]] == [FORBIDDEN, PSEUDO, PSEUDO], denied
    assert all(r["outcome"] == "denied" and json.loads(r["detail"])["target"] == "europe" for r in denied[-3:])
    assert "version 0" in json.loads(denied[-1]["detail"])["reason"]


def test_job_runs_and_replication_passes_are_in_the_audit_log(sandbox: Sandbox) -> None:
    """ops.audit_log of the primary: the fixture's pipeline run and every pass that copied (who, what, outcome)."""
    cfg = sandbox.cfg
    runs = audit.read(cfg.primary, "pipeline.run")
    assert runs and runs[0]["outcome"] == "succeeded" and runs[0]["region"] == "asia", runs
    assert json.loads(runs[0]["detail"])["rows_read"]["bronze.telemetry"] > 0
    assert runs[0]["actor"].startswith(("user:", "uid:"))
    passes = audit.read(cfg.primary, "replication.pass")
    assert passes and all(p["target"] == "asia -> europe" for p in passes), passes
    first = json.loads(passes[0]["detail"])
    assert first[KINDS]["status"] == "replicated" and first[FORBIDDEN]["status"] == "refused"
    idle = replicator(cfg, "asia", "europe").run_pass(list(PIPELINE_TABLES))  # nothing new: nothing recorded
    assert all(t.status == "up_to_date" for t in idle.tables)
    assert len(audit.read(cfg.primary, "replication.pass")) == len(passes)


def test_kill_minus_9_mid_pass_then_rerun_converges(spark: SparkSession, sandbox: Sandbox) -> None:
    cfg = sandbox.cfg
    asia, europe = Hdfs(cfg.regions["asia"]), Hdfs(cfg.regions["europe"])
    uri = table_uri(cfg.primary, KINDS)
    for i in range(6):  # a backlog of versions with many files each
        spark.range(5000 + i * 1000, 6000 + i * 1000, numPartitions=8).select(
            "id", F.lit("bulk").alias("v"), F.lit(None).cast("string").alias("note")
        ).write.format("delta").mode("append").save(uri)
    env = {**os.environ, "LAKEHOUSE_ENV": str(sandbox.path)}
    cmd = [sys.executable, "-m", "lakehouse", "replicate", "--source", "asia", "--target", "europe", "--once"]
    cmd += ["--table", KINDS]  # the sandbox's refused tables would fail the pass
    before = data_files(europe, KINDS)
    proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(data_files(europe, KINDS)) < len(before) + 10:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    partial = deltalog.versions(log_files(europe, KINDS))
    assert partial[-1] < deltalog.versions(log_files(asia, KINDS))[-1], "the kill came too late to test anything"
    # a reader of the interrupted replica sees a whole version
    assert spark.read.format("delta").load(table_uri(cfg.regions["europe"], KINDS)).count() >= 0
    rerun = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert KINDS in rerun.stdout
    assert "is gone; taking it over" in rerun.stdout  # the killed pass's lock: its pid is dead
    # every replica file is the primary's (same name, same size); the primary may hold more: files no version
    # references (orphans until a VACUUM), which replication never copies
    assert data_files(europe, KINDS).items() <= data_files(asia, KINDS).items()
    assert not [p for p in europe.walk_files(europe.table_path(KINDS)) if ".replicating" in p]
    v = verify_table(spark, cfg.regions["asia"], cfg.regions["europe"], KINDS, data_versions=7)
    assert v.ok, v.problems


def test_one_pass_into_a_region_at_a_time(sandbox: Sandbox) -> None:
    """A pass holds the target's replication lock: another waits for it (a second replicator in the same
    process gives up after its timeout), runs once it is released, and the lock is refreshed while held."""
    cfg = sandbox.cfg
    europe = Hdfs(cfg.regions["europe"])
    held = PassLock(europe)
    held.acquire()
    try:
        with pytest.raises(LockBusy, match="holds"):
            PassLock(Hdfs(cfg.regions["europe"])).acquire(timeout_s=1.0)
        stamped = europe.status(held.path)
        assert stamped is not None
        env = {**os.environ, "LAKEHOUSE_ENV": str(sandbox.path)}
        cmd = [sys.executable, "-m", "lakehouse", "replicate", "--target", "europe", "--once", "--table", KINDS]
        waiting = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)  # fmt: skip
        time.sleep(HEARTBEAT_S + 3)  # the other pass waits meanwhile
        assert waiting.poll() is None, waiting.communicate()[0]
        refreshed = europe.status(held.path)
        assert refreshed is not None and refreshed.mtime_ms > stamped.mtime_ms  # the holder's heartbeat
    finally:
        held.release()
    out, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 0 and "waiting for the pass of" in out, out
    assert europe.status(held.path) is None  # released by its holder


def test_passes_that_start_at_once_each_take_the_lock_in_turn(sandbox: Sandbox) -> None:
    """Six passes racing for the lock at the same moment (as a continuous replicator and a failover's final pass
    do): each takes it in turn and none fails on the other's write (each stages its own temporary: with a shared
    one, a writer that overwrote it pulled the file from under another's write, which HDFS refused)."""
    import threading

    cfg = sandbox.cfg
    start = threading.Barrier(6)
    failures: list[str] = []
    order: list[int] = []

    def one_pass(n: int) -> None:
        lock = PassLock(Hdfs(cfg.regions["europe"]))
        start.wait()
        try:
            lock.acquire(timeout_s=120)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(f"{n}: {type(exc).__name__}: {exc}")
            return
        try:
            order.append(n)
            time.sleep(0.2)
        finally:
            lock.release()

    threads = [threading.Thread(target=one_pass, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert failures == [] and sorted(order) == list(range(6)), (failures, order)
    assert Hdfs(cfg.regions["europe"]).status(PassLock(Hdfs(cfg.regions["europe"])).path) is None


# the lock's liveness rule in seconds instead of minutes (a heartbeat every 0.25 s, hung after 2 s without progress,
# lapsed 3 s after the last refresh), on the real HDFS of the target region
LIVENESS = {"heartbeat_s": 0.25, "max_stall_s": 2.0, "ttl_s": 3.0}


def _lock_age_ms(hdfs: Hdfs, path: str) -> float:
    status = hdfs.status(path)
    assert status is not None, f"{path} is gone"
    return time.time() * 1000 - status.mtime_ms


def _wait_for(said: list[str], text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(text in line for line in said):
        assert time.monotonic() < deadline, f"no {text!r} in {timeout_s:.0f} s: {said}"
        time.sleep(0.1)


def test_a_progressing_pass_keeps_its_lock_and_a_stalled_one_lets_it_lapse(sandbox: Sandbox) -> None:
    europe = Hdfs(sandbox.cfg.regions["europe"])
    said: list[str] = []
    holder = PassLock(europe, said.append, **LIVENESS)
    holder.acquire()
    try:
        ages = []
        for _ in range(8):  # 4 s of copying: twice the stall limit, refreshed all along
            time.sleep(0.5)
            holder.progressed()
            ages.append(_lock_age_ms(europe, holder.path))
        assert not said and max(ages) < LIVENESS["ttl_s"] * 1000, (said, ages)
        _wait_for(said, "no progress for 2s, so this pass looks hung", timeout_s=15)  # stalled from now on
        stopped = europe.status(holder.path)
        time.sleep(1.0)  # four heartbeats
        assert europe.status(holder.path) == stopped, "a stalled holder keeps refreshing its lock"
        taken: list[str] = []
        other = PassLock(Hdfs(sandbox.cfg.regions["europe"]), taken.append, **LIVENESS)
        other.owner["host"] = "another-host"  # not a dead pid of this host: only the lapse lets it in
        other.acquire(timeout_s=30)
        try:
            assert any("is gone; taking it over" in line for line in taken), taken
            assert _lock_age_ms(europe, holder.path) < LIVENESS["ttl_s"] * 1000, "the lock is the new holder's, fresh"
        finally:
            other.release()
    finally:
        holder.release()  # the hung pass ends later: it deletes nothing that is not its own
    assert europe.status(holder.path) is None


def test_a_waiter_outwaits_a_hung_pass_and_takes_its_lock_over(sandbox: Sandbox) -> None:
    """A planned failover's final pass waits with the default: a replicator's pass hung in a storage call (CI,
    2026-12-05) must not make it give up before that pass's lock lapses."""
    timing = {**LIVENESS, "heartbeat_s": 1.0}  # the default wait's margin is two heartbeats: 2 s, not 0.5 s
    hung = PassLock(Hdfs(sandbox.cfg.regions["europe"]), **timing)
    hung.acquire()  # and never progresses
    try:
        taken: list[str] = []
        waiter = PassLock(Hdfs(sandbox.cfg.regions["europe"]), taken.append, **timing)
        waiter.owner["host"] = "another-host"  # only the lapse lets it in
        waiter.acquire()  # the default wait: max_stall_s + ttl_s + 2 heartbeats
        waiter.release()
        assert any("waiting for the pass of" in line for line in taken), taken
        assert any("is gone; taking it over" in line for line in taken), taken
    finally:
        hung.release()


def test_a_lock_held_by_a_live_refreshing_pass_is_not_taken(sandbox: Sandbox) -> None:
    holder = PassLock(Hdfs(sandbox.cfg.regions["europe"]), **{**LIVENESS, "max_stall_s": 60.0})
    holder.acquire()
    try:
        other = PassLock(Hdfs(sandbox.cfg.regions["europe"]), **LIVENESS)
        other.owner["host"] = "another-host"
        with pytest.raises(LockBusy):
            other.acquire(timeout_s=2.5 * LIVENESS["ttl_s"])  # the heartbeat keeps it fresh all along
    finally:
        holder.release()


def test_verify_detects_a_tampered_replica(spark: SparkSession, sandbox: Sandbox) -> None:
    cfg = sandbox.cfg
    europe = Hdfs(cfg.regions["europe"])
    env = {**os.environ, "LAKEHOUSE_ENV": str(sandbox.path)}
    cmd = [sys.executable, "-m", "lakehouse", "replicate", "verify", "--source", "asia", "--target", "europe"]
    cmd += ["--versions", "1"]  # the victim is a file of the latest version (every commit is compared regardless)
    ok = subprocess.run([*cmd, "--table", KINDS], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    table = europe.table_path(KINDS)
    # a data file the latest version reads (a change-data file is not read by verify's row checksums)
    live = sorted(
        p.split(table + "/", 1)[1]
        for p in spark.read.format("delta").load(table_uri(cfg.regions["europe"], KINDS)).inputFiles()
    )
    victim, donor = live[0], live[-1]
    europe.publish(posixpath.join(table, victim), europe.read(posixpath.join(table, donor)))
    bad = subprocess.run([*cmd, "--table", KINDS], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode != 0
    assert "FAILED" in bad.stdout and KINDS in bad.stdout


def test_hdfs_permissions_let_other_users_read_gold_only(stack: Config, sandbox: Sandbox) -> None:
    """Permissions are on in both regions' NameNodes: the pipeline user owns the lakehouse folders; another
    user (an analyst) reads gold, is refused bronze, silver and ops, and cannot write gold, in asia and in the
    europe replica; the NameNode's audit log records each refusal, and the lakehouse exporter appends it to
    the region's ops.audit_log."""
    from hdfs import HdfsError, InsecureClient

    from lakehouse.stack.services import services

    cfg = sandbox.cfg
    replicator(cfg, "asia", "europe").run_pass(
        ["bronze.telemetry", "silver.vitals", "gold.news2", "ops.ingest_batches"]
    )
    for region in (cfg.regions["asia"], cfg.regions["europe"]):
        owner = Hdfs(region)
        analyst = InsecureClient(region.hdfs.webhdfs_url, user="analyst", timeout=30)
        news2 = owner.table_path("gold.news2")
        commit = f"{news2}/_delta_log/{min(n for n in analyst.list(f'{news2}/_delta_log') if n.endswith('.json'))}"
        with analyst.read(commit) as fh:
            assert b'"commitInfo"' in fh.read()  # readable: the first commit of the table
        for table in ("bronze.telemetry", "silver.vitals", "ops.ingest_batches"):
            path = owner.table_path(table)
            assert owner.client.list(path), f"the pipeline user lists {path}"
            with pytest.raises(HdfsError, match="Permission denied"):
                analyst.list(path)
        with pytest.raises(HdfsError, match="Permission denied"):
            analyst.write(f"{news2}/_delta_log/99999999999999999999.json", data=b"{}")
        listing = {name: status for name, status in owner.client.list(owner.root, status=True)}
        assert {n: (listing[n]["owner"], listing[n]["permission"]) for n in ("bronze", "silver", "gold", "ops")} == {
            "bronze": (region.hdfs.user, "750"), "silver": (region.hdfs.user, "750"),
            "gold": (region.hdfs.user, "755"), "ops": (region.hdfs.user, "750"),
        }  # fmt: skip

    # the NameNode audits every refusal: who, what, where
    namenode = next(s for s in services(cfg) if s.name == "hdfs-namenode-asia")
    with namenode.log_file.open("rb") as fh:
        fh.seek(max(0, namenode.log_file.stat().st_size - (8 << 20)))
        tail = fh.read().decode("utf-8", errors="replace")
    silver = Hdfs(cfg.regions["asia"]).table_path("silver.vitals")
    assert any(
        "allowed=false" in line and "ugi=analyst" in line and "cmd=listStatus" in line and f"src={silver}\t" in line
        for line in tail.splitlines()
    ), "the NameNode's audit log has no refusal of the analyst's listing of silver.vitals"
    # both regions' refusals go to the ops.audit_log of the primary in force (europe's is a replica)
    deadline, recorded = time.monotonic() + 90, []
    while time.monotonic() < deadline and len(recorded) < 2:
        recorded = [
            r for r in audit.read(stack.primary, "hdfs.access")
            if r["target"] == silver and r["actor"] == "hdfs:analyst" and json.loads(r["detail"])["cmd"] == "listStatus"
        ]  # fmt: skip
        time.sleep(3)
    assert sorted(r["region"] for r in recorded) == ["asia", "europe"], recorded
    assert {r["outcome"] for r in recorded} == {"denied"}


def test_a_stop_request_and_the_pipelines_acknowledgement_round_trip_through_the_regions_hdfs(
    sandbox: Sandbox,
) -> None:
    """What a planned failover and a pipeline on other hosts say to each other (lakehouse.replication.handover),
    through the sandbox region's real HDFS: the request, the wait for the acknowledgement, the withdrawal."""
    from lakehouse.replication import handover

    region = sandbox.cfg.regions["europe"]
    heartbeat = handover.Heartbeat(region, print)
    heartbeat.beat("running", 7)
    status = handover.read_status(region)
    assert status is not None and (status.state, status.epoch, status.pid) == ("running", 7, os.getpid())
    assert handover.running(status)

    request = handover.request_stop(region, 7, "planned failover europe -> asia")
    assert handover.read_stop(region) == request and handover.holds(handover.read_stop(region), 7)
    stopped, seen = handover.await_stopped(region, request, timeout_s=1.0, poll_s=0.2)
    assert not stopped and seen is not None and seen.state == "running", "no acknowledgement: still running"
    heartbeat.beat("stopped", 7, request.id)
    stopped, seen = handover.await_stopped(region, request, timeout_s=5.0)
    assert stopped and seen is not None and seen.stop_request == request.id

    newer = handover.request_stop(region, 8, "planned failover europe -> asia, again")
    assert not handover.withdraw_stop(region, request), "a later request is not withdrawn by an older one's owner"
    assert handover.withdraw_stop(region, newer) and handover.read_stop(region, confirm=True) is None
