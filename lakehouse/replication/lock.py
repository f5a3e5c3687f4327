"""One replication pass into a region at a time.

Two replicators writing the same replica at once (a ``--continuous`` process and a planned failover's final pass,
or two DAG runs) would copy the same files over each other and commit the state table concurrently. A pass
therefore holds ``<lakehouse_root>/_dr/replication.lock`` in the target's HDFS: created with a rename that refuses
an existing file (one writer wins), refreshed every ``HEARTBEAT_S`` while held, deleted by its holder at the end.
A lock whose holder stopped refreshing it for ``TTL_S`` (killed), or whose holder is a dead process of this host,
is taken over. A holder whose pass made no progress (no file copied, no commit published: :meth:`PassLock.progressed`)
for ``MAX_STALL_S`` is hung (e.g. on a NameNode that stopped answering) and stops refreshing: the lock lapses and
the next pass takes it over instead of waiting for ever, while a long pass that keeps copying keeps it. Should the
hung pass wake up, what it copies is what the new pass copies, and a commit it publishes is refused where the new
pass published that version first (one writer wins each version).
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lakehouse.errors import LakehouseError
from lakehouse.io.hdfs import Hdfs
from lakehouse.stack import process

LOCK_FILE = "_dr/replication.lock"
HEARTBEAT_S = 5.0
TTL_S = 30.0  # a lock not refreshed for this long belongs to a killed pass
MAX_STALL_S = 300.0  # a pass without progress for this long is hung: its lock is left to lapse


class LockBusy(LakehouseError):
    """Another replication pass into the region held the lock for longer than the wait allowed."""


class PassLock:
    """The replication lock of one target region (reentrant within the process: a failover holds it across its
    final pass and the fencing)."""

    def __init__(
        self,
        hdfs: Hdfs,
        progress: Callable[[str], None] | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        max_stall_s: float = MAX_STALL_S,
        ttl_s: float = TTL_S,
    ) -> None:
        self.hdfs = hdfs
        self.heartbeat_s = heartbeat_s
        self.max_stall_s = max_stall_s
        self.ttl_s = ttl_s  # every pass into a region must use the same: it decides when another's lock lapsed
        self._progressed = time.monotonic()
        self.path = posixpath.join(hdfs.root, LOCK_FILE)
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "id": uuid.uuid4().hex}
        self.progress = progress or (lambda _line: None)
        self._depth = 0
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _holder(self) -> dict[str, object] | None:
        try:
            holder: dict[str, object] = json.loads(self.hdfs.read(self.path))
            return holder
        except Exception:  # noqa: BLE001 -- gone meanwhile, or half-written by a killed holder: no live holder
            return None

    def _stale(self) -> bool:
        status = self.hdfs.status(self.path)
        if status is None:
            return False
        if time.time() * 1000 - status.mtime_ms > self.ttl_s * 1000:
            return True
        holder = self._holder()
        if holder is None or holder.get("host") != self.owner["host"]:
            return holder is None
        pid = holder.get("pid")
        return not (isinstance(pid, int) and process.is_alive(pid))

    def acquire(self, timeout_s: float | None = None) -> None:
        """Take the lock, waiting up to ``timeout_s`` for another pass to finish. The default outwaits a hung
        holder: its heartbeat stops after ``max_stall_s`` without progress and its lock lapses ``ttl_s`` later, so
        a pass that hung is taken over rather than given up on just before its lock lapses."""
        if self._depth:
            self._depth += 1
            return
        if timeout_s is None:
            timeout_s = self.max_stall_s + self.ttl_s + 2 * self.heartbeat_s
        self.hdfs.makedirs(posixpath.dirname(self.path))
        deadline = time.monotonic() + timeout_s
        said = False
        # a temporary of this holder's own: passes that start at once (a replicator and a failover's final pass)
        # race for the lock, and a shared temporary would fail the write of the one the other overwrote
        tag = f"taking-{self.owner['id']}"
        while not self.hdfs.publish_new(self.path, json.dumps(self.owner).encode(), tag=tag):
            if self._stale():
                self.progress(f"replication lock {self.path}: its holder {self._holder()} is gone; taking it over")
                self.hdfs.delete(self.path)
                continue
            if time.monotonic() > deadline:
                raise LockBusy(
                    f"another replication pass into {self.hdfs.region.name} holds {self.path} ({self._holder()})",
                    fix="wait for it to end (a pass takes seconds), or stop the other replicator",
                )
            if not said:
                self.progress(f"replication lock {self.path}: waiting for the pass of {self._holder()}")
                said = True
            time.sleep(0.5)
        self._depth = 1
        self._progressed = time.monotonic()
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="replication-lock", daemon=True)
        self._beat.start()

    def progressed(self) -> None:
        """The pass holding the lock moved on (a file copied, a commit published): it is not hung."""
        self._progressed = time.monotonic()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if time.monotonic() - self._progressed > self.max_stall_s:
                self.progress(
                    f"replication lock {self.path}: no progress for {self.max_stall_s:.0f}s, so this pass looks hung;"
                    f" no longer refreshed (another pass takes it over {self.ttl_s:.0f}s from now)"
                )
                return
            try:
                self.hdfs.client.set_times(self.path, modification_time=int(time.time() * 1000))
            except Exception:  # noqa: BLE001, S112 -- the next beat retries; a lapse past ttl_s loses the lock
                continue

    def release(self) -> None:
        """Give the lock back (deleted only while it is still this holder's)."""
        if self._depth > 1:
            self._depth -= 1
            return
        self._depth = 0
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self._holder() == self.owner:
            self.hdfs.delete(self.path)

    @contextmanager
    def held(self, timeout_s: float | None = None) -> Iterator[None]:
        """``with lock.held(): ...``"""
        self.acquire(timeout_s)
        try:
            yield
        finally:
            self.release()
