"""Table replication between regions on Delta's log protocol: replica version N = source version N.

One pass per table: list the source's ``_delta_log``, check the replica still is a prefix of the source
(its latest commit byte-identical to the source's same version), read the commits it lacks, copy every
file they reference (data, change data, deletion vectors) that the replica does not hold yet, then
publish the commits in version order, each with its checksum and checkpoint files, then
``_last_checkpoint``. Files land before the commit that references them, and a commit is published
atomically (hidden temporary file, rename, never replacing an existing commit), so a reader of the replica
never sees a partial version; a kill at any point leaves only hidden temporaries that the rerun overwrites.
After a VACUUM the replica drops the files the source no longer has.
"""

from __future__ import annotations

import posixpath
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lakehouse import audit
from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io import isolated
from lakehouse.io.hdfs import FileStatus, Hdfs, copy_file
from lakehouse.observability.exporter import TableVersion, replication_lag
from lakehouse.replication import deltalog, fencing, state
from lakehouse.replication.lock import LockBusy, PassLock
from lakehouse.replication.policy import ResidencyViolation, check_residency

LOG = "_delta_log"
MAX_VERSIONS_PER_PASS = 1000  # a long backlog is caught up over several passes
MAX_FAILED_PASSES = 5  # a continuous replicator gives up after this many passes in a row raised
LIST_FROM = 4  # a replica folder receiving this many files of a pass is listed once instead of a status per file


class DivergedReplica(LakehouseError):
    """The replica holds a commit the source does not have (it was written to in its own region)."""


@dataclass
class TableResult:
    """What one pass did to one table."""

    table: str
    status: str  # replicated | up_to_date | absent | refused | failed
    replicated_version: int = -1
    source_version: int = -1
    versions: int = 0
    files: int = 0
    bytes: int = 0
    vacuumed_skipped: int = 0  # files gone from the source before they were copied (a VACUUM got there first)
    pruned: int = 0  # replica files dropped after a VACUUM
    seconds: float = 0.0
    lag_versions: int = 0
    lag_seconds: float = 0.0
    detail: str | None = None

    def line(self) -> str:
        """One human line for progress output."""
        if self.status == "replicated":
            return (
                f"{self.table:26} v{self.replicated_version - self.versions + 1}..v{self.replicated_version} "
                f"({self.versions} versions, {self.files} files, {self.bytes / 1e6:.1f} MB, {self.seconds:.1f}s)"
                + (f", {self.pruned} vacuumed files pruned" if self.pruned else "")
                + (f", lag {self.lag_versions} versions" if self.lag_versions else "")
            )
        if self.status == "up_to_date":
            return f"{self.table:26} up to date at v{self.replicated_version}"
        return f"{self.table:26} {self.status}" + (f": {self.detail}" if self.detail else "")


@dataclass
class PassResult:
    """One replication pass over every configured table."""

    source: str
    target: str
    tables: list[TableResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        """Bytes copied in the pass."""
        return sum(t.bytes for t in self.tables)

    @property
    def ok(self) -> bool:
        """No table failed or was refused."""
        return all(t.status in ("replicated", "up_to_date", "absent") for t in self.tables)

    def line(self) -> str:
        """One line for a log: route, tables, bytes, seconds, and whether a table failed."""
        return (
            f"pass {self.source} -> {self.target}: {len(self.tables)} tables, {self.bytes / 1e6:.1f} MB in "
            f"{self.seconds:.1f}s" + ("" if self.ok else " (some tables FAILED)")
        )


class NotPrimary(LakehouseError):
    """The source of a replication is not the primary in force (a failover moved it)."""


class Replicator:
    """Replicates tables from ``source`` to ``target`` region, ``parallelism`` file copies at a time."""

    def __init__(
        self,
        source: RegionConfig,
        target: RegionConfig,
        policies: dict[str, str],
        parallelism: int = 4,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if source.name == target.name:
            raise LakehouseError(f"source and target are both {source.name!r}", fix="replicate between two regions")
        self.source, self.target = source, target
        self.src, self.dst = Hdfs(source), Hdfs(target)
        self._secured = False  # the target's top-level folders have their modes (once per replicator)
        self.policies = policies
        self.parallelism = parallelism
        self.progress = progress or (lambda _line: None)
        self._reported: set[tuple[str, str, str | None]] = set()  # failures and denials already audited
        self.lock = PassLock(self.dst, self.progress)  # one pass into the target at a time
        # the pass's Delta writes (state, audit log): in a child process a hung write cannot hold the pass
        self.storage = isolated.SHARED

    # ------------------------------------------------------------------ one table

    def replicate_table(self, table: str, max_versions: int = MAX_VERSIONS_PER_PASS) -> TableResult:
        """One pass over ``table``; raises on residency violations, divergence and lost source files."""
        started = time.monotonic()
        policy = self.policies.get(table)
        if policy is None:
            raise LakehouseError(f"{table} is not in replication.tables", fix="add it with its residency policy")
        src_log = posixpath.join(self.src.table_path(table), LOG)
        dst_log = posixpath.join(self.dst.table_path(table), LOG)
        src_listing = self.src.list(src_log)
        src_versions = deltalog.versions(src_listing)
        if not src_versions:
            return TableResult(table, "absent", detail="no table in the source region yet")
        if policy == "forbidden":
            check_residency(table, policy, None, src_versions[-1])
        dst_listing = self.dst.list(dst_log)
        for leftover in [n for n in dst_listing if n.startswith(".") and n.endswith(".replicating")]:
            self.dst.delete(posixpath.join(dst_log, leftover))  # a killed pass's log temporaries (data ones are
            del dst_listing[leftover]  # overwritten by the rerun, which copies those files again)
        dst_versions = deltalog.versions(dst_listing)
        have = dst_versions[-1] if dst_versions else -1
        self._check_prefix(table, src_log, dst_log, have, src_versions[-1])
        pending = [v for v in src_versions if v > have][:max_versions]
        result = TableResult(table, "up_to_date", replicated_version=have, source_version=src_versions[-1])
        if pending and pending[0] != have + 1:
            raise LakehouseError(
                f"{table}: the source's log starts at version {pending[0]} (older commits were cleaned up) and "
                f"the replica holds version {have}: seeding a replica from a checkpoint is not implemented",
                fix="replicate more often than the source's delta.logRetentionDuration",
            )
        if pending:
            self._replicate_versions(table, policy, src_log, dst_log, src_listing, dst_listing, pending, result)
        now = time.time()
        lag_v, lag_s = replication_lag(
            TableVersion(
                src_versions[-1], {v: src_listing[deltalog.commit_name(v)].mtime_ms / 1000 for v in src_versions}
            ),
            TableVersion(result.replicated_version, {}),
            now,
        )
        result.lag_versions, result.lag_seconds = lag_v, lag_s
        result.seconds = time.monotonic() - started
        return result

    def _check_prefix(self, table: str, src_log: str, dst_log: str, have: int, src_latest: int) -> None:
        if have < 0:
            return
        name = deltalog.commit_name(have)
        if have > src_latest or self.src.read(posixpath.join(src_log, name)) != self.dst.read(
            posixpath.join(dst_log, name)
        ):
            raise DivergedReplica(
                f"{table}: the {self.target.name} copy diverged from {self.source.name} at or before version {have} "
                f"(source latest v{src_latest}): it was written to in its own region",
                fix="`lakehouse failback` archives the diverged commits and resynchronises the table",
            )

    def _replicate_versions(
        self,
        table: str,
        policy: str,
        src_log: str,
        dst_log: str,
        src_listing: dict[str, FileStatus],
        dst_listing: dict[str, FileStatus],
        pending: list[int],
        result: TableResult,
    ) -> None:
        src_table, dst_table = self.src.table_path(table), self.dst.table_path(table)
        with ThreadPoolExecutor(self.parallelism) as pool:
            raw = dict(
                zip(
                    pending,
                    pool.map(lambda v: self.src.read(posixpath.join(src_log, deltalog.commit_name(v))), pending),
                )
            )
            commits = [deltalog.parse_commit(v, raw[v]) for v in pending]
            if policy != "allowed":
                configuration = None if pending[0] == 0 else self._configuration_at(table, pending[0] - 1)
                for c in commits:
                    configuration = c.configuration if c.configuration is not None else configuration
                    check_residency(table, policy, configuration, c.version)
            removed = {p for c in commits for p in c.removed}
            needed = list(dict.fromkeys(p for c in commits for p in c.files))

            sizes = {p: size for c in commits for p, size in c.sizes.items()}

            listed = self._listed_folders(dst_table, needed)

            def copy(rel: str) -> tuple[int, int]:
                src_path, dst_path = posixpath.join(src_table, rel), posixpath.join(dst_table, rel)
                known = sizes.get(rel)  # the log records the size (and time) of data and change files
                if known is None:
                    st = self.src.status(src_path)
                    known = None if st is None else (st.length, st.mtime_ms)
                folder, name = posixpath.split(rel)
                have = listed[folder].get(name) if folder in listed else self.dst.status(dst_path)
                if known is not None and have is not None and have.length == known[0]:
                    return 0, 0
                try:
                    copied = copy_file(self.src, src_path, self.dst, dst_path, known[1] if known else None)
                    self.lock.progressed()
                    return copied, 0
                except Exception:
                    if self.src.status(src_path) is not None:
                        raise
                if rel in removed:
                    return 0, 1  # added and removed within the backlog, then vacuumed: the source lacks it too
                raise LakehouseError(
                    f"{table}: {rel} is referenced by the source's log but missing from its storage",
                    fix="check the source table (lakehouse replicate verify) before replicating it",
                )

            # copies run ahead in the pool, each commit's log entry staged (written under its temporary name) right
            # after its files; a commit is published (renamed) as soon as every file it references (and every
            # earlier commit's) has landed, so publishing overlaps the copies of later versions
            futures: dict[str, Future[tuple[int, int]]] = {}
            staged: dict[int, Future[str]] = {}
            for c in commits:
                for rel in c.files:
                    if rel not in futures:
                        futures[rel] = pool.submit(copy, rel)
                name = deltalog.commit_name(c.version)
                path, mtime = posixpath.join(dst_log, name), src_listing[name].mtime_ms
                staged[c.version] = pool.submit(self.dst.stage, path, raw[c.version], mtime)

            def landed(files: Iterable[str]) -> None:
                for rel in files:
                    future = futures.pop(rel, None)
                    if future is not None:
                        copied, skipped = future.result()
                        result.bytes += copied
                        result.files += 1 if copied else 0
                        result.vacuumed_skipped += skipped

            sidecars_done = False
            vacuumed = False
            for c in commits:
                landed(c.files)
                name = deltalog.commit_name(c.version)
                published = self.dst.commit_staged(staged.pop(c.version).result(), posixpath.join(dst_log, name))
                if not published and self.dst.read(posixpath.join(dst_log, name)) != raw[c.version]:
                    raise DivergedReplica(f"{table}: another writer published a different version {c.version}")
                self.lock.progressed()
                result.bytes += len(raw[c.version])
                result.versions += 1
                result.replicated_version = c.version
                extras = [n for n in (f"{c.version:020d}.crc",) if n in src_listing and n not in dst_listing]
                checkpoints = deltalog.checkpoint_files(src_listing, c.version)
                if checkpoints and not sidecars_done:
                    self._copy_sidecars(src_log, dst_log)
                    sidecars_done = True
                for n in [*checkpoints, *extras]:
                    if n not in dst_listing:
                        st = src_listing[n]
                        result.bytes += copy_file(
                            self.src, posixpath.join(src_log, n), self.dst, posixpath.join(dst_log, n), st.mtime_ms
                        )
                vacuumed = vacuumed or c.operation == "VACUUM END"
        self._copy_last_checkpoint(src_log, dst_log, result.replicated_version)
        if vacuumed:
            result.pruned = self._prune(src_table, dst_table)
        result.status = "replicated"

    def _listed_folders(self, table_path: str, files: list[str]) -> dict[str, dict[str, FileStatus]]:
        """The replica's folders (relative to the table) that hold at least LIST_FROM of ``files``, listed once:
        one call instead of a status call per file to find what a killed pass already copied."""
        per_folder = Counter(posixpath.dirname(rel) for rel in files)
        return {
            folder: self.dst.list(posixpath.join(table_path, folder) if folder else table_path)
            for folder, n in per_folder.items()
            if n >= LIST_FROM
        }

    def _configuration_at(self, table: str, version: int) -> dict[str, str]:
        uri = f"{self.source.warehouse_uri}/{table.replace('.', '/')}"
        return self.storage.call(f"configuration of {table} v{version}", table_configuration, uri, version, attempts=2)

    def _copy_sidecars(self, src_log: str, dst_log: str) -> None:
        src_dir, dst_dir = posixpath.join(src_log, deltalog.SIDECARS), posixpath.join(dst_log, deltalog.SIDECARS)
        have = self.dst.list(dst_dir)
        for name, st in self.src.list(src_dir).items():
            if name not in have:
                copy_file(self.src, posixpath.join(src_dir, name), self.dst, posixpath.join(dst_dir, name), st.mtime_ms)

    def _copy_last_checkpoint(self, src_log: str, dst_log: str, replica_version: int) -> None:
        path = posixpath.join(src_log, deltalog.LAST_CHECKPOINT)
        if self.src.status(path) is None:
            return
        data = self.src.read(path)
        version = deltalog.last_checkpoint_version(data)
        dst_path = posixpath.join(dst_log, deltalog.LAST_CHECKPOINT)
        if version > replica_version or not deltalog.checkpoint_files(self.dst.list(dst_log), version):
            return  # a hint only: readers list the log past it; never point at a checkpoint the replica lacks
        if self.dst.status(dst_path) is None or self.dst.read(dst_path) != data:
            self.dst.publish(dst_path, data)

    def _prune(self, src_table: str, dst_table: str) -> int:
        """Drop replica files the source no longer has (a VACUUM removed them there)."""
        source = self.src.walk_files(src_table, skip_dirs=(LOG,))
        replica = self.dst.walk_files(dst_table, skip_dirs=(LOG,))
        extra = [p for p in replica if p not in source]
        for rel in extra:
            self.dst.delete(posixpath.join(dst_table, rel))
        return len(extra)

    # ------------------------------------------------------------------ every table

    def _state_row(self, t: TableResult, begun: datetime) -> state.StateRow:
        return state.StateRow(
            table=t.table, source=self.source.name, target=self.target.name,
            replicated_version=t.replicated_version, source_version=t.source_version, lag_versions=t.lag_versions,
            lag_seconds=t.lag_seconds, files_copied=t.files, bytes_copied=t.bytes, status=t.status,
            detail=t.detail, pass_time=begun,
        )  # fmt: skip

    def check_direction(self) -> None:
        """Raise :class:`NotPrimary` unless the source is the primary in force: the highest epoch either region's
        fencing state holds (``lakehouse.replication.fencing``; regions where no failover ever ran hold none and
        replicate as configured). Once a failover promoted the target, a pass from the old primary would write
        into the new primary's tables, or copy a stale writer's commits there."""
        force = fencing.in_force((fencing.read_region(self.source), fencing.read_region(self.target)), self.source.name)
        if force.primary != self.source.name:
            raise NotPrimary(
                f"{self.source.name} is not the primary in force (epoch {force.epoch}: {force.primary}); not "
                f"replicating {self.source.name} -> {self.target.name}",
                fix=f"replicate from the primary: lakehouse replicate --source {force.primary} --target ...; "
                "`lakehouse failback` resynchronises the old primary",
            )

    def run_pass(self, tables: Iterable[str] | None = None, write_state: bool = True) -> PassResult:
        """One pass over ``tables`` (default: every configured one), state written to ``ops.replication_state``.

        Only from the primary in force (:meth:`check_direction`), and holding the target's replication lock
        (:mod:`lakehouse.replication.lock`: another pass into it waits). A table that fails or is refused does not stop
        the others; its row says why. A pass that copied, failed or was refused is recorded in the source's
        ops.audit_log before that table is replicated (it goes last), so the pass leaves no lag of its own; an
        idle pass records nothing.
        """
        self.src.check()
        self.dst.check()
        with self.lock.held():
            self.check_direction()
            return self._pass(tables, write_state)

    def _pass(self, tables: Iterable[str] | None, write_state: bool) -> PassResult:
        if not self._secured:  # a replica is as private as its source: other users read gold only there too
            self.dst.secure_folders()
            self._secured = True
        started, begun = time.monotonic(), datetime.now(UTC)  # the state's pass_time: each table was read after it
        out = PassResult(self.source.name, self.target.name)
        names = list(tables if tables is not None else self.policies)
        try:
            for table in [t for t in names if t != audit.TABLE]:
                out.tables.append(self._one(table))
            self._record(out)
            if audit.TABLE in names:  # last: the pass's own record (in the source) is replicated in the same pass
                out.tables.append(self._one(audit.TABLE))
        finally:  # what the target holds now, even when the source died mid-pass (a failover reads it)
            out.seconds = time.monotonic() - started
            if write_state:
                rows = [self._state_row(t, begun) for t in out.tables]
                # idempotent (the rows of these tables replaced): a write that hung is tried again, in a new child
                # (a retry right after a hang hung too, once in two here)
                self.storage.call(
                    f"ops.replication_state of {self.target.name}", state.write, self.target, rows, attempts=3
                )
        return out

    def _one(self, table: str) -> TableResult:
        self.lock.progressed()  # each table starts with log listings and reads: the pass is alive
        try:
            res = self.replicate_table(table)
        except ResidencyViolation as exc:
            res = TableResult(table, "refused", detail=exc.message)
        except LakehouseError as exc:
            res = TableResult(table, "failed", detail=exc.message)
        self.progress(f"{self.source.name} -> {self.target.name}  {res.line()}")
        return res

    def _record(self, out: PassResult) -> None:
        """The pass's ops.audit_log rows, in the source: one for the pass and one per residency denial. A failure
        or denial repeated unchanged by later passes of this process (``--continuous``) is recorded once."""
        repeats = {(t.table, t.status, t.detail) for t in out.tables} & self._reported
        acted = [t for t in out.tables if t.status in ("replicated", "failed", "refused")
                 and (t.table, t.status, t.detail) not in repeats]  # fmt: skip
        self._reported = {(t.table, t.status, t.detail) for t in out.tables if t.status in ("failed", "refused")}
        if not acted:
            return
        route, region = f"{self.source.name} -> {self.target.name}", self.source.name
        rows = [audit.entry("replication.residency", t.table, region, "denied", {"target": self.target.name,
                            "reason": t.detail}) for t in acted if t.status == "refused"]  # fmt: skip
        detail = {t.table: {"status": t.status, "version": t.replicated_version, "versions": t.versions,
                            "bytes": t.bytes, "detail": t.detail} for t in acted}  # fmt: skip
        failed = any(t.status == "failed" for t in acted)
        rows.append(audit.entry("replication.pass", route, region, "failed" if failed else "replicated", detail))
        self.storage.call(f"ops.audit_log of {self.source.name}", audit.record, self.source, *rows)


def table_configuration(uri: str, version: int) -> dict[str, str]:
    """The table properties of the Delta table at ``uri`` as of ``version`` (read with ``deltalake``)."""
    from deltalake import DeltaTable

    return dict(DeltaTable(uri, version=version).metadata().configuration)


def replicator(cfg: Config, source: str, target: str, progress: Callable[[str], None] | None = None) -> Replicator:
    """A :class:`Replicator` between two configured regions with the configured tables and policies."""
    return Replicator(
        cfg.region(source), cfg.region(target), dict(cfg.replication.tables), cfg.replication.parallelism, progress
    )


def _record_outage(rep: Replicator, exc: Exception) -> None:
    outage = state.Outage(rep.source.name, datetime.now(UTC), f"{type(exc).__name__}: {exc}"[:500])
    try:
        state.write_outage(rep.dst, outage)
    except Exception as err:  # noqa: BLE001 -- the target may be what failed; the pass's error is reported anyway
        rep.progress(f"could not record the outage in {rep.target.name}: {err}")


def run_continuous(
    rep: Replicator, interval_s: float, passes: int | None = None, after: Callable[[], None] | None = None
) -> None:
    """A pass every ``interval_s`` (measured start to start) until killed, ``passes`` passes, or a failover made
    another region the primary (it says so and returns); ``after`` runs after each (the model's replication).

    A pass that raised (storage that did not answer, a commit lost to a race) is reported and tried again at the
    next interval: replication is what keeps the standby current, and one bad pass must not end it. After
    ``MAX_FAILED_PASSES`` such passes in a row the last error is raised (something is down for good). The first
    failure after a good pass is recorded in the target (:class:`state.Outage`): if the source was lost, it died
    between that good pass and this moment, which bounds a disaster failover's RPO tighter than its own time."""
    done, failed = 0, 0
    while passes is None or done < passes:
        started = time.monotonic()
        try:
            rep.progress(rep.run_pass().line())
            failed = 0
        except NotPrimary as exc:  # a failover moved the primary away: this direction is over
            rep.progress(f"{exc.message}; continuous replication stops")
            return
        except LockBusy as exc:  # another pass held the target for minutes: say so, try again next interval
            rep.progress(exc.message)
        except Exception as exc:  # reported, retried, and raised once it keeps failing
            failed += 1
            if failed == 1:  # when the source stopped answering, if it is lost: a disaster failover's estimate
                _record_outage(rep, exc)
            if failed >= MAX_FAILED_PASSES:
                raise
            rep.progress(f"pass failed ({failed} in a row; {MAX_FAILED_PASSES} end replication), next pass in "
                         f"{interval_s:g}s: {type(exc).__name__}: {exc}")  # fmt: skip
        if after is not None:
            after()
        done += 1
        time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
