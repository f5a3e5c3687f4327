"""Region failover and failback, timed: RPO (what the new primary lacks) and RTO (trigger to data flowing).

planned:  stop the primary's pipeline (a stop request in its region's HDFS, acknowledged by the pipeline on
          whatever host it runs: lakehouse.replication.handover), final replication pass (RPO 0), fence (new
          epoch), promote the target's warm standby (or start a pipeline there) on its own Kafka, wait until it
          commits.
disaster: the primary is unreachable: fence (new epoch, written where it can be), promote with what was
          replicated; the RPO per table comes from the last pass's ``ops.replication_state`` in the target.
failback: fence the old primary's HDFS, move its commits that never reached the new primary into an
          archive (reported, never dropped), resynchronise it from the new primary, then a planned
          failover back to it.

Every ``deltalake`` call of a failover or failback (the replication state it reads, the audit entry it writes)
runs in the process's isolated storage child (:mod:`lakehouse.io.isolated`), killed and tried again in a new one
when it hangs: a read of ``ops.replication_state`` in a fresh failover process once never came back (CI,
2026-12-06: the disaster drill's failover failed after 60 s with europe's HDFS answering everything else).
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakehouse import audit, pipeline
from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io import isolated
from lakehouse.io.hdfs import Hdfs, copy_file
from lakehouse.replication import deltalog, fencing, handover, models, state
from lakehouse.replication.lock import PassLock
from lakehouse.replication.replicator import Replicator

Progress = Callable[[str], None]
STOP_TIMEOUT_S = 120.0  # a planned failover waits this long for the primary's pipeline to acknowledge its stop
STATE_READ_ATTEMPTS = 3  # a read may run twice; a retry right after a hang hung too, once in two (isolated.py)
AUDIT_ATTEMPTS = 2  # a retried append writes the same event_id: at worst one entry twice, never none


@dataclass
class TableRpo:
    """What the promoted region lacks of one table."""

    table: str
    versions_lost: int
    seconds_lost: float  # bound: the table's lag at its last pass plus the time from that pass's start to the failover
    # disaster, when the replicator recorded the source's outage after that pass: the lag plus the time from the
    # pass's start to the outage (the loss if the primary died when it stopped answering; None: no outage known)
    seconds_lost_to_outage: float | None = None


@dataclass
class FailoverReport:
    """The outcome of a failover (or the switch-back of a failback)."""

    mode: str
    source: str
    target: str
    epoch: int
    rpo: list[TableRpo] = field(default_factory=list)
    rto_s: float = 0.0
    flowing: bool = False
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @property
    def rpo_versions(self) -> int:
        """Versions lost over every table."""
        return sum(r.versions_lost for r in self.rpo)

    @property
    def rpo_seconds(self) -> float:
        """Worst seconds lost over every table."""
        return max((r.seconds_lost for r in self.rpo), default=0.0)

    @property
    def rpo_outage_seconds(self) -> float | None:
        """Worst seconds lost over every table if the primary died when the replicator lost it (None: unknown)."""
        known = [r.seconds_lost_to_outage for r in self.rpo if r.seconds_lost_to_outage is not None]
        return max(known) if known else None


def _step(report: FailoverReport, progress: Progress, started: float, text: str) -> None:
    line = f"[{time.monotonic() - started:6.1f}s] {text}"
    report.steps.append(line)
    progress(line)


def _replicator(cfg: Config, source: RegionConfig, target: RegionConfig, progress: Progress) -> Replicator:
    return Replicator(source, target, dict(cfg.replication.tables), cfg.replication.parallelism, progress)


def _committed_versions(region: RegionConfig, table: str) -> int:
    hdfs = Hdfs(region)
    names = hdfs.list(posixpath.join(hdfs.table_path(table), "_delta_log"))
    found = deltalog.versions(names)
    return found[-1] if found else -1


def _streamed_since(region: RegionConfig, table: str, after: int) -> bool:
    """Whether a commit of ``table`` after version ``after`` added data files (the table's creation, a metadata
    change or an OPTIMIZE say nothing about data flowing)."""
    hdfs = Hdfs(region)
    log = posixpath.join(hdfs.table_path(table), "_delta_log")
    for version in [v for v in deltalog.versions(hdfs.list(log)) if v > after]:
        commit = deltalog.parse_commit(version, hdfs.read(posixpath.join(log, deltalog.commit_name(version))))
        if commit.files and commit.operation != "OPTIMIZE":
            return True
    return False


def wait_flowing(
    cfg: Config, region: RegionConfig, baseline: dict[str, int], timeout_s: float, table: str = "bronze.telemetry"
) -> bool:
    """Whether the pipeline in ``region`` commits a micro-batch with data to ``table`` past ``baseline`` within
    ``timeout_s`` (the pipeline is flowing)."""
    deadline = time.monotonic() + timeout_s
    after = baseline.get(table, -1)
    while time.monotonic() < deadline:
        if _committed_versions(region, table) > after and _streamed_since(region, table, after):
            return True
        time.sleep(0.5)
    return False


def failover(
    cfg: Config,
    target_name: str,
    mode: str,
    start_pipeline: bool = True,
    flowing_timeout_s: float = 120.0,
    progress: Progress = print,
) -> FailoverReport:
    """Make ``target_name`` the primary (``mode`` planned or disaster) and report RPO and RTO."""
    started = time.monotonic()
    if mode not in ("planned", "disaster"):
        raise LakehouseError(f"unknown failover mode {mode!r}", fix="use --mode planned or --mode disaster")
    current, reached = fencing.current(cfg)
    target = cfg.region(target_name)
    source = cfg.region(current.primary)
    if target.name == source.name:
        raise LakehouseError(f"{target.name} already is the primary (epoch {current.epoch})")
    if not reached.get(target.name):
        raise LakehouseError(f"the target region {target.name} does not answer: it cannot be promoted")
    report = FailoverReport(mode, source.name, target.name, current.epoch + 1)
    _step(
        report,
        progress,
        started,
        f"{mode} failover {source.name} -> {target.name} (epoch {current.epoch} -> {current.epoch + 1})",
    )
    tables = list(cfg.replication.tables)
    held: PassLock | None = None  # the target's replication lock, from the final pass until the new epoch is written
    stop: handover.StopRequest | None = None  # the primary's pipeline stopped, until the new epoch is written
    try:
        if mode == "planned":
            if not reached.get(source.name):
                raise LakehouseError(
                    f"the primary {source.name} does not answer: a planned failover needs it",
                    fix=f"lakehouse failover --target-region {target.name} --mode disaster",
                )
            # no pipeline commits in the source from the acknowledgement on, so the final pass leaves nothing behind
            was = handover.read_status(source)
            stop = handover.request_stop(source, current.epoch, f"planned failover {source.name} -> {target.name}")
            stopped, status = handover.await_stopped(source, stop, STOP_TIMEOUT_S)
            if not stopped:
                where = status.where() if status is not None else "?"
                raise LakehouseError(
                    f"the primary's pipeline ({where}) did not stop within {STOP_TIMEOUT_S:.0f}s of the request;"
                    " not promoting",
                    fix=f"read that pipeline's log; `lakehouse pipeline stop --region {source.name}` on its host",
                )
            _step(report, progress, started, f"primary pipeline stopped ({status.where()})"
                  if handover.running(was) and status is not None else "no primary pipeline ran")  # fmt: skip
            rep = _replicator(cfg, source, target, lambda _m: None)
            # held until the new epoch is written: a continuous replicator's pass cannot slip in between
            held = rep.lock
            held.acquire()
            final = rep.run_pass()
            if not final.ok:
                bad = [t.line() for t in final.tables if t.status not in ("replicated", "up_to_date", "absent")]
                raise LakehouseError("final replication pass failed; not promoting:\n  " + "\n  ".join(bad))
            report.rpo = [
                TableRpo(t.table, t.lag_versions, t.lag_seconds) for t in final.tables if t.status != "absent"
            ]
            if cfg.replication.models and models.registry_answers(cfg):  # the champion, so the new primary scores
                _step(report, progress, started, models.replicate_champion(cfg, target).line())
            _step(
                report,
                progress,
                started,
                f"final replication pass: {final.bytes / 1e6:.1f} MB, RPO {report.rpo_versions} versions",
            )
        else:
            held_state = isolated.SHARED.call(f"ops.replication_state of {target.name}", state.read, target,
                                              attempts=STATE_READ_ATTEMPTS)  # fmt: skip
            rows = {str(r["table"]): r for r in held_state if r["source"] == source.name}
            outage = state.read_outage(Hdfs(target), source.name)
            now = datetime.now(UTC)
            for table in tables:
                row = rows.get(table)
                if row is None or row["status"] == "absent":
                    continue
                passed = row["pass_time"]
                since = (now - passed).total_seconds() if isinstance(passed, datetime) else 0.0
                lag_s = float(str(row["lag_seconds"]))
                versions = int(str(row["lag_versions"]))
                # commits after the last pass are lost too: bounded by the time since that pass
                rpo = TableRpo(table, versions, (lag_s + since) if versions or since else 0.0)
                if outage is not None and isinstance(passed, datetime) and outage.since > passed:
                    rpo.seconds_lost_to_outage = lag_s + (outage.since - passed).total_seconds()
                report.rpo.append(rpo)
            detected = report.rpo_outage_seconds
            _step(report, progress, started, f"promoting with what was replicated: RPO up to {report.rpo_seconds:.1f}s"
                  + ("" if outage is None or detected is None else f" to now; {source.name} stopped answering the"
                     f" replicator at {outage.since:%H:%M:%S} UTC: up to {detected:.1f}s lost if it died then"))  # fmt: skip
        new = current.advanced(target.name, f"{mode} failover from {source.name}")
        written = fencing.write(cfg, new)
        stop = None  # spent: no pipeline runs in the source under the new epoch anyway
        _step(report, progress, started, f"fenced: epoch {new.epoch} written to {', '.join(written)}")
    except BaseException:
        if stop is not None:  # not promoted: the source's standby (a deployment's pipeline) resumes at once
            try:
                handover.withdraw_stop(source, stop)
                _step(report, progress, started, f"not promoted: the stop request in {source.name} is withdrawn")
            except Exception as exc:  # noqa: BLE001 -- the failover's own error is the one to raise
                _step(report, progress, started, f"not promoted; could not withdraw the stop request ({exc})")
        raise
    finally:
        if held is not None:
            held.release()
    if start_pipeline:
        baseline = {"bronze.telemetry": _committed_versions(target, "bronze.telemetry")}
        waiting = handover.read_status(target)  # a warm standby (any host) starts its queries on the new epoch
        if waiting is not None and waiting.state == "standby" and waiting.alive():
            how = f"standby pipeline promoted in {target.name} ({waiting.where()})"
        else:
            how = f"pipeline started in {target.name} (pid {pipeline.start_background(cfg, target)})"
        _step(report, progress, started, f"{how} on its Kafka")
        report.flowing = wait_flowing(cfg, target, baseline, flowing_timeout_s)
        _step(report, progress, started, "data flowing in the new primary" if report.flowing else "NOT flowing yet")
    report.rto_s = time.monotonic() - started
    if mode == "disaster" and cfg.replication.models and not models.registry_answers(cfg):  # after the RTO
        _step(report, progress, started, f"the MLflow registry at {cfg.mlflow.tracking_uri} does not answer: scorers"
              f" in {target.name} serve the champion replicated there; give the region a registry with `lakehouse"
              f" replicate restore-model --target {target.name}` (docs/dr.md)")  # fmt: skip
    _audit(target, audit.entry("region.failover", f"{source.name} -> {target.name}", target.name, "promoted",
                               report.as_dict()))  # fmt: skip
    return report


def _audit(region: RegionConfig, row: dict[str, Any]) -> None:
    """Append ``row`` to ``region``'s audit log from the isolated storage child (tried again in a new child when
    the append hangs). ``audit.record`` retries a stuck append itself too, after 60 s in a thread; a failover
    cannot wait that long, and the child's 20 s deadline kills the stuck call instead of leaving it in this
    process."""
    isolated.SHARED.call(f"ops.audit_log of {region.name}", audit.record, region, row, attempts=AUDIT_ATTEMPTS)


@dataclass
class ArchivedTable:
    """Commits of the old primary that never reached the new one, moved into the archive."""

    table: str
    common_version: int
    archived_versions: list[int]
    rows_added: int
    archive: str
    first_commit: str | None = None  # when the oldest of them was committed (commitInfo, ISO UTC), if it says
    last_commit: str | None = None  # when the newest was: the old primary's writes lost between these two


@dataclass
class FailbackReport:
    """The outcome of a failback."""

    archived: list[ArchivedTable]
    switch: FailoverReport | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def _common_version(old: Hdfs, new: Hdfs, table: str) -> tuple[int, list[int]]:
    """(highest version identical in both, versions of the old primary after it)."""
    old_log = posixpath.join(old.table_path(table), "_delta_log")
    new_log = posixpath.join(new.table_path(table), "_delta_log")
    old_versions, new_versions = deltalog.versions(old.list(old_log)), set(deltalog.versions(new.list(new_log)))
    common = -1
    for v in reversed(old_versions):
        if v in new_versions and old.read(posixpath.join(old_log, deltalog.commit_name(v))) == new.read(
            posixpath.join(new_log, deltalog.commit_name(v))
        ):
            common = v
            break
    return common, [v for v in old_versions if v > common]


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def archive_diverged(
    cfg: Config, old: RegionConfig, new: RegionConfig, epoch: int, progress: Progress
) -> list[ArchivedTable]:
    """Move the old primary's commits after the last one the new primary has into
    ``<root>/_dr/archive/epoch=<n>/<layer>/<table>/`` (commits and the files they added), so the table is a
    prefix of the new primary's again; returns what was archived."""
    import json

    src, dst = Hdfs(old), Hdfs(new)
    out: list[ArchivedTable] = []
    for table in cfg.replication.tables:
        common, extra = _common_version(src, dst, table)
        if not extra:
            continue
        table_path = src.table_path(table)
        log = posixpath.join(table_path, "_delta_log")
        archive = f"{src.root}/_dr/archive/epoch={epoch}/{table.replace('.', '/')}"
        rows, stamps = 0, []
        for v in extra:
            name = deltalog.commit_name(v)
            raw = src.read(posixpath.join(log, name))
            commit = deltalog.parse_commit(v, raw)
            if commit.timestamp_ms is not None:
                stamps.append(commit.timestamp_ms)
            for line in raw.decode().splitlines():
                action = json.loads(line) if line.strip() else {}
                stats = (action.get("add") or {}).get("stats")
                if stats:
                    rows += int(json.loads(stats).get("numRecords", 0))
            for rel in commit.files:
                if src.status(posixpath.join(table_path, rel)) is not None:
                    copy_file(src, posixpath.join(table_path, rel), src, posixpath.join(archive, rel))
            src.publish(posixpath.join(archive, "_delta_log", name), raw)
        # the table becomes a prefix of the new primary's: drop the diverged log entries (newest first)
        listing = src.list(log)
        for v in reversed(extra):
            for n in [deltalog.commit_name(v), f"{v:020d}.crc", *deltalog.checkpoint_files(listing, v)]:
                if n in listing:
                    src.delete(posixpath.join(log, n))
        last = posixpath.join(log, deltalog.LAST_CHECKPOINT)
        if src.status(last) is not None and deltalog.last_checkpoint_version(src.read(last)) > common:
            src.delete(last)
        oldest = _iso_ms(min(stamps)) if stamps else None
        newest = _iso_ms(max(stamps)) if stamps else None
        out.append(ArchivedTable(table, common, extra, rows, archive, oldest, newest))
        span = f", committed {oldest} .. {newest}" if oldest else ""
        progress(f"  {table}: {len(extra)} unreplicated commits (v{extra[0]}..v{extra[-1]}, {rows} rows{span})"
                 f" -> {archive}")  # fmt: skip
    return out


def failback(cfg: Config, start_pipeline: bool = True, progress: Progress = print) -> FailbackReport:
    """Return to the configured primary: fence it, archive its unreplicated commits, resynchronise it from the
    current primary, then a planned failover back to it."""
    current, reached = fencing.current(cfg)
    home = cfg.primary
    if current.primary == home.name:
        raise LakehouseError(f"{home.name} already is the primary (epoch {current.epoch}); nothing to fail back")
    acting = cfg.region(current.primary)
    if not reached.get(home.name):
        raise LakehouseError(f"{home.name} does not answer: restore its HDFS and Kafka first")
    fencing.write(cfg, current, [home.name])  # the old primary's own HDFS now holds the newer epoch
    progress(f"failback to {home.name}: {home.name} fenced at epoch {current.epoch}")
    archived = archive_diverged(cfg, home, acting, current.epoch, progress)
    progress(f"{len(archived)} table(s) had unreplicated commits (archived, not dropped)")
    resync = _replicator(cfg, acting, home, progress).run_pass()
    if not resync.ok:
        raise LakehouseError("resynchronisation failed; staying on " + acting.name)
    switch = failover(cfg, home.name, "planned", start_pipeline=start_pipeline, progress=progress)
    report = FailbackReport(archived, switch)
    _audit(home, audit.entry("region.failback", f"{acting.name} -> {home.name}", home.name, "returned",
                             report.as_dict()))  # fmt: skip
    return report
