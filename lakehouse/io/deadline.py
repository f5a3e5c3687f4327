"""Calls into storage clients that cannot be given a timeout of their own, bounded by a deadline.

The ``deltalake`` package (delta-rs) reaches HDFS through its bundled Rust client (hdfs-native), which takes no
timeout we can set from Python. A replication pass once sat in such a write for over five minutes (CI,
2026-12-05: the write of ``ops.replication_state`` after its last table), holding the target's replication lock
while a planned failover waited for it and gave up. Hadoop's own client gives up on a silent DataNode after 60 s
(``dfs.client.socket-timeout``); :func:`within` does the same for a whole call: the call runs in a daemon thread
and the caller gets :class:`StorageTimeout` at the deadline. The abandoned call cannot be cancelled and goes on in
its thread; the writes bounded this way are ones a late finish cannot harm (an append to the audit log lands
late; a replication state write that lost its race to a newer one fails Delta's conflict check).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from lakehouse.errors import LakehouseError

T = TypeVar("T")

STORAGE_DEADLINE_S = 60.0  # as Hadoop's dfs.client.socket-timeout: a storage call silent this long is stuck


class StorageTimeout(LakehouseError):
    """A storage call did not return within its deadline (it may still finish later, in the background)."""


def within(seconds: float, what: str, call: Callable[[], T]) -> T:
    """``call()``, or :class:`StorageTimeout` naming ``what`` when it has not returned after ``seconds``.

    An exception ``call`` raises is raised here unchanged."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller's thread as is
            failure.append(exc)
        finally:
            done.set()

    # a daemon thread, not an executor's: an executor's workers are joined at exit, so a call stuck for good
    # would keep the process from ending
    threading.Thread(target=run, name=f"deadline: {what}", daemon=True).start()
    if not done.wait(seconds):
        raise StorageTimeout(
            f"{what}: no answer from storage within {seconds:.0f}s (the call is abandoned; it may still finish)",
            fix="check the region's HDFS (NameNode and DataNode logs, `lakehouse stack status`); the next attempt "
            "tries again",
        )
    if failure:
        raise failure[0]
    return outcome[0]
