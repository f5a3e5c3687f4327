"""The lock's race that the real HDFS cannot be made to lose on demand: its holder releases it between the
NameNode's refusal of a rename and the look after it. A scripted WebHDFS client plays the NameNode; the lock's
liveness rules run on the real HDFS (tests/integration/test_replication.py)."""

from __future__ import annotations

from types import SimpleNamespace

from hdfs import HdfsError

from lakehouse.io.hdfs import Hdfs


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
