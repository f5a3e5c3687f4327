"""Storage calls of a long-running process, run in a child process it can kill when one hangs.

The ``deltalake`` package (delta-rs) reaches HDFS through its bundled Rust client, which now and then never
returns from a call and keeps one NameNode connection open per call. Measured here with loops of
``ops.replication_state`` writes 4 s apart, as a continuous replicator makes them: one write in 50-70 never came
back (the 55th, 51st and 67th of three loops; CI of 2026-12-05: a replicator's pass hung so after its last table
while a planned failover waited for its lock and gave up), and a process that had made 87 writes held 87
NameNode connections. A thread with a deadline (:mod:`lakehouse.io.deadline`) frees the caller, and the next
call works, but the stuck call and the connections stay with the process for as long as it runs.
:class:`IsolatedCalls` runs the calls in one child process instead: a call past its deadline kills the child and
the next call (or a retry, for a call that may run twice) starts a new one, and the child is replaced every
``calls_per_child`` calls, which bounds the leak (the parent holds no connection). A killed write leaves no
partial version (a Delta commit is one file published at once), at most data files no version references.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.pool import Pool
from typing import Any, TypeVar

from lakehouse.io.deadline import StorageTimeout

T = TypeVar("T")
log = logging.getLogger(__name__)

CALLS_PER_CHILD = 100  # then a fresh child: what the storage client leaked per call goes with the old one
# a pass's state write takes ~1 s here (up to a few under load): a call silent 20x that long is stuck, and the
# pass (or a failover's final pass) waits no longer than that before trying again in a new child
DEADLINE_S = 20.0


class IsolatedCalls:
    """Calls of top-level functions in one child process (started on first use, spawned: no runtime of the parent
    is copied into it), one at a time, each with a deadline. A process needs one: :data:`SHARED`."""

    def __init__(self, name: str, deadline_s: float = DEADLINE_S, calls_per_child: int = CALLS_PER_CHILD) -> None:
        self.name = name
        self.deadline_s = deadline_s
        self.calls_per_child = calls_per_child
        self._pool: Pool | None = None
        self._one_at_a_time = threading.Lock()  # callers of several threads (overlapping scrapes) queue here
        atexit.register(self.close)  # before interpreter teardown, when the pool can no longer stop cleanly

    def call(self, what: str, fn: Callable[..., T], *args: Any, attempts: int = 1) -> T:
        """``fn(*args)`` in the child: its result, or the exception it raised; :class:`StorageTimeout` when it
        does not return within the deadline (the child is killed), after ``attempts`` tries, each in a new child
        (more than one only for a call that may run twice: a read, an idempotent write). After a storage timeout,
        whether the child's or this one, the child is replaced."""
        for attempt in range(1, attempts + 1):
            try:
                return self._call_once(what, fn, args)
            except StorageTimeout:
                if attempt == attempts:
                    raise
                log.warning(f"{what}: no answer within {self.deadline_s:.0f}s; trying again in a new process")
        raise AssertionError("unreachable")

    def _call_once(self, what: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._one_at_a_time:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = context.Pool(1, maxtasksperchild=self.calls_per_child)
            pending = self._pool.apply_async(fn, args)
            try:
                result: T = pending.get(self.deadline_s)
                return result
            except multiprocessing.TimeoutError:
                self._stop()
                raise StorageTimeout(
                    f"{what}: no answer within {self.deadline_s:.0f}s; its process ({self.name}) was killed",
                    fix="check the region's HDFS (NameNode and DataNode logs, `lakehouse stack status`); the next "
                    "attempt runs in a new process",
                ) from None
            except StorageTimeout:
                self._stop()
                raise

    def close(self) -> None:
        """Stop the child (killed if busy); the next call starts a new one."""
        with self._one_at_a_time:
            self._stop()

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


# the process's child for its storage calls (replicators, the exporter): one, however many callers
SHARED = IsolatedCalls("storage calls")
