"""The replication lock's liveness rule on an in-memory stand-in of the target's HDFS (the real HDFS runs the
lock in tests/integration/test_replication.py): a pass that keeps copying keeps its lock, a stalled one lets it
lapse and the next pass takes it over."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from hdfs import HdfsError

from lakehouse.io.hdfs import FileStatus, Hdfs
from lakehouse.replication import lock


@dataclass
class MemoryHdfs:
    """The calls PassLock makes, on a dict: path -> (bytes, mtime in ms)."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    root: str = "/lakehouse"
    region: Any = field(default_factory=lambda: SimpleNamespace(name="europe"))

    def __post_init__(self) -> None:
        self.client = SimpleNamespace(set_times=self._set_times)

    def _set_times(self, path: str, modification_time: int) -> None:
        data, _ = self.files[path]
        self.files[path] = (data, modification_time)

    def makedirs(self, _path: str) -> None:
        pass

    def publish_new(self, path: str, data: bytes, tag: str = "replicating") -> bool:
        if path in self.files:
            return False
        self.files[path] = (data, int(time.time() * 1000))
        return True

    def status(self, path: str) -> FileStatus | None:
        found = self.files.get(path)
        return None if found is None else FileStatus(len(found[0]), found[1])

    def read(self, path: str) -> bytes:
        return self.files[path][0]

    def delete(self, path: str) -> None:
        self.files.pop(path, None)


def mtime(hdfs: MemoryHdfs) -> int:
    status = hdfs.status("/lakehouse/_dr/replication.lock")
    assert status is not None
    return status.mtime_ms


def test_a_progressing_pass_keeps_its_lock_and_a_stalled_one_lets_it_lapse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock, "TTL_S", 0.6)
    hdfs = MemoryHdfs()
    said: list[str] = []
    holder = lock.PassLock(hdfs, said.append, heartbeat_s=0.05, max_stall_s=0.4)  # type: ignore[arg-type]
    holder.acquire()
    for _ in range(8):  # 0.8 s of copying: twice the stall limit, refreshed all along
        before = mtime(hdfs)
        time.sleep(0.1)
        holder.progressed()
        assert mtime(hdfs) > before
    assert not said
    time.sleep(0.7)  # stalled: the heartbeat gives up after 0.4 s and says so
    assert any("no progress for 0s, so this pass looks hung" in line for line in said), said
    stopped = mtime(hdfs)
    time.sleep(0.2)
    assert mtime(hdfs) == stopped, "a stalled holder keeps refreshing its lock"

    taken: list[str] = []
    other = lock.PassLock(hdfs, taken.append)  # type: ignore[arg-type]
    other.owner["host"] = "another-host"  # not a dead pid of this host: only the lapse lets it in
    other.acquire(timeout_s=5)
    assert any("is gone; taking it over" in line for line in taken), taken
    other.release()
    holder.release()  # the hung pass ends later: it deletes nothing that is not its own
    assert hdfs.status("/lakehouse/_dr/replication.lock") is None


def test_a_waiter_outwaits_a_hung_pass_and_takes_its_lock_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """A planned failover's final pass waits with the default: a replicator's pass hung in a storage call (CI,
    2026-12-05) must not make it give up before that pass's lock lapses."""
    monkeypatch.setattr(lock, "TTL_S", 0.6)
    hdfs = MemoryHdfs()
    hung = lock.PassLock(hdfs, heartbeat_s=0.05, max_stall_s=0.4)  # type: ignore[arg-type]
    hung.acquire()  # and never progresses
    taken: list[str] = []
    waiter = lock.PassLock(hdfs, taken.append, heartbeat_s=0.05, max_stall_s=0.4)  # type: ignore[arg-type]
    waiter.owner["host"] = "another-host"  # only the lapse lets it in
    waiter.acquire()
    assert any("is gone; taking it over" in line for line in taken), taken
    waiter.release()
    hung.release()


def test_a_lock_held_by_a_live_refreshing_pass_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock, "TTL_S", 0.6)
    hdfs = MemoryHdfs()
    holder = lock.PassLock(hdfs, heartbeat_s=0.05, max_stall_s=30)  # type: ignore[arg-type]
    holder.acquire()
    other = lock.PassLock(hdfs)  # type: ignore[arg-type]
    other.owner["host"] = "another-host"
    with pytest.raises(lock.LockBusy):
        other.acquire(timeout_s=1.5)  # over twice the TTL: the heartbeat kept it fresh
    holder.release()


class RacingClient:
    """A WebHDFS client in which the lock's holder releases it between a refused rename and the look after it."""

    def __init__(self) -> None:
        self.files = {"/lakehouse/_dr/replication.lock": b"holder", "/lakehouse/_dr/.replication.lock.taking-me": b"me"}
        self.renames = 0

    def rename(self, src: str, dst: str) -> None:
        self.renames += 1
        refused = dst in self.files
        if refused:
            del self.files[dst]  # the holder's release lands right after the NameNode refused the rename
            raise HdfsError(f"Unable to rename '{src}' to '{dst}'.")
        self.files[dst] = self.files.pop(src)

    def status(self, path: str, strict: bool = True) -> dict[str, int] | None:
        return {"length": len(self.files[path])} if path in self.files else None

    def delete(self, path: str) -> bool:
        return self.files.pop(path, None) is not None


def test_a_lock_released_between_a_refused_rename_and_the_look_after_it_is_raced_for_again() -> None:
    hdfs = Hdfs(SimpleNamespace(name="europe"))  # type: ignore[arg-type]
    client = RacingClient()
    hdfs._local.client = client
    assert hdfs.commit_staged("/lakehouse/_dr/.replication.lock.taking-me", "/lakehouse/_dr/replication.lock")
    assert client.renames == 2
    assert client.files == {"/lakehouse/_dr/replication.lock": b"me"}
