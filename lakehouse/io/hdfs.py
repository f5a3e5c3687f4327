"""A region's HDFS as files, over WebHDFS (no JVM): list, read, copy between regions, atomic publish.

Paths are absolute HDFS paths (``/lakehouse/bronze/telemetry/...``). Every write that a reader could see
goes through a temporary name beside the target (a dot-file, which Delta and Hadoop readers skip) and a
rename, so a reader sees a file whole or not at all, and a rerun after a kill overwrites the leftover.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hdfs import HdfsError, InsecureClient

from lakehouse.config import RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io.tables import FOLDER_MODES

CHUNK = 4 << 20  # bytes per streamed read while copying
RENAME_RACES = 5  # renames tried when the target vanishes between a refused rename and the look at it


@dataclass(frozen=True)
class FileStatus:
    """Length (bytes) and modification time (ms since the epoch) of one file."""

    length: int
    mtime_ms: int


def temp_name(path: str, tag: str = "replicating") -> str:
    """Deterministic hidden temporary name beside ``path`` (a rerun overwrites a leftover, readers skip it)."""
    head, tail = posixpath.split(path)
    return posixpath.join(head, f".{tail}.{tag}")


class Hdfs:
    """One region's HDFS through WebHDFS; safe for concurrent copies (an HTTP session per thread, and a
    streamed read has its own, so a copy within one region does not write on the connection it reads)."""

    def __init__(self, region: RegionConfig, timeout_s: float = 60.0) -> None:
        self.region = region
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _new_client(self) -> InsecureClient:
        return InsecureClient(self.region.hdfs.webhdfs_url, user=self.region.hdfs.user, timeout=self.timeout_s)

    @property
    def client(self) -> InsecureClient:
        """This thread's WebHDFS client."""
        client: InsecureClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
        return client

    @property
    def root(self) -> str:
        """Absolute path of the region's lakehouse root, e.g. ``/lakehouse``."""
        return "/" + self.region.lakehouse_root.strip("/")

    def secure_folders(self) -> None:
        """Create the region's top-level folders (idempotent) and set their permission bits
        (``tables.FOLDER_MODES``): other HDFS users read gold only."""
        for name, mode in FOLDER_MODES.items():
            path = f"{self.root}/{name}"
            self.client.makedirs(path)
            self.client.set_permission(path, f"{mode:o}")

    def table_path(self, table: str) -> str:
        """Absolute path of table ``layer.name``."""
        layer, name = table.split(".")
        return f"{self.root}/{layer}/{name}"

    def status(self, path: str) -> FileStatus | None:
        """Status of ``path``, None when it does not exist."""
        st: dict[str, Any] | None = self.client.status(path, strict=False)
        return None if st is None else FileStatus(int(st["length"]), int(st["modificationTime"]))

    def list(self, path: str) -> dict[str, FileStatus]:
        """Files directly in directory ``path`` (name -> status); empty when it does not exist."""
        if self.client.status(path, strict=False) is None:
            return {}
        return {
            name: FileStatus(int(st["length"]), int(st["modificationTime"]))
            for name, st in self.client.list(path, status=True)
            if st["type"] == "FILE"
        }

    def walk_files(self, path: str, skip_dirs: tuple[str, ...] = ()) -> dict[str, FileStatus]:
        """Every file under ``path`` (path relative to it -> status), except under the ``skip_dirs`` names."""
        out: dict[str, FileStatus] = {}
        if self.client.status(path, strict=False) is None:
            return out
        stack = [""]
        while stack:
            rel = stack.pop()
            for name, st in self.client.list(posixpath.join(path, rel) if rel else path, status=True):
                child = posixpath.join(rel, name) if rel else name
                if st["type"] == "DIRECTORY":
                    if name not in skip_dirs:
                        stack.append(child)
                else:
                    out[child] = FileStatus(int(st["length"]), int(st["modificationTime"]))
        return out

    def read(self, path: str) -> bytes:
        """The whole content of a (small) file."""
        with self.client.read(path) as reader:
            data: bytes = reader.read()
        return data

    def stream(self, path: str) -> Iterator[bytes]:
        """The content of ``path`` in chunks (for copies of large files)."""
        with self._new_client().read(path, chunk_size=CHUNK) as chunks:
            yield from chunks

    def publish(self, path: str, data: bytes | Iterator[bytes], mtime_ms: int | None = None) -> None:
        """Write ``data`` to ``path`` atomically: a hidden temporary file, its times, then a rename.

        An existing ``path`` is replaced (delete + rename: a reader sees the old or the new file whole).
        """
        tmp = temp_name(path)
        self.client.write(tmp, data=data, overwrite=True)
        if mtime_ms is not None:
            self.client.set_times(tmp, modification_time=mtime_ms)
        if self.client.status(path, strict=False) is not None:
            self.client.delete(path)
        self.client.rename(tmp, path)

    def publish_new(self, path: str, data: bytes, mtime_ms: int | None = None, tag: str = "replicating") -> bool:
        """Like :meth:`publish`, but never replaces: False when ``path`` already exists (a Delta commit is
        written once; HDFS rename refuses an existing target, so two writers cannot both win). Writers that race
        for ``path`` give each its own ``tag`` (the temporary's suffix): with one temporary, one writer's
        overwrite pulls the file from under the other's write."""
        return self.commit_staged(self.stage(path, data, mtime_ms, tag), path)

    def stage(self, path: str, data: bytes, mtime_ms: int | None = None, tag: str = "replicating") -> str:
        """The first half of :meth:`publish_new`: ``data`` in the hidden temporary of ``path``, with its time;
        returns the temporary's path (staged ahead, e.g. while other files copy)."""
        tmp = temp_name(path, tag)
        self.client.write(tmp, data=data, overwrite=True)
        if mtime_ms is not None:
            self.client.set_times(tmp, modification_time=mtime_ms)
        return tmp

    def commit_staged(self, tmp: str, path: str) -> bool:
        """The second half of :meth:`publish_new`: rename ``tmp`` to ``path`` unless ``path`` exists (then the
        temporary is deleted and the answer is False). A ``path`` that existed at the rename but is gone at the
        look after it (a lock released in between) is raced for again, a few times."""
        races = 0
        while True:
            try:
                self.client.rename(tmp, path)
            except HdfsError:
                if self.client.status(path, strict=False) is not None:
                    self.client.delete(tmp)
                    return False
                races += 1
                if races >= RENAME_RACES or self.client.status(tmp, strict=False) is None:
                    raise
                continue
            return True

    def delete(self, path: str, recursive: bool = False) -> bool:
        """Delete ``path``; False when it did not exist."""
        return bool(self.client.delete(path, recursive=recursive))

    def makedirs(self, path: str) -> None:
        """Create directory ``path`` and its parents."""
        self.client.makedirs(path)

    def check(self) -> None:
        """Raise a clear error when the region's WebHDFS does not answer."""
        try:
            self.client.status("/")
        except Exception as exc:  # noqa: BLE001 - requests' connection errors and HdfsError alike
            raise LakehouseError(
                f"HDFS of region {self.region.name} at {self.region.hdfs.webhdfs_url} does not answer ({exc})",
                fix=f"start it: lakehouse stack up --service hdfs-namenode-{self.region.name} "
                f"--service hdfs-datanode-{self.region.name}",
            ) from None


def copy_file(src: Hdfs, src_path: str, dst: Hdfs, dst_path: str, mtime_ms: int | None = None) -> int:
    """Copy one file between regions (streamed, atomic publish on the target); returns the bytes copied."""
    copied = 0

    def counted() -> Iterator[bytes]:
        nonlocal copied
        for chunk in src.stream(src_path):
            copied += len(chunk)
            yield chunk

    dst.publish(dst_path, counted(), mtime_ms)
    return copied
