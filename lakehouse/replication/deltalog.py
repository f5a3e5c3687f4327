"""Delta's transaction log as data: which files a commit references, what it did, what its table declares.

Pure functions over the bytes of ``_delta_log`` files (protocol: github.com/delta-io/delta PROTOCOL.md);
no I/O, so the replication rules are testable on hand-written commits.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from lakehouse.errors import LakehouseError

COMMIT = re.compile(r"^(\d{20})\.json$")
CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(\.[^/]+)?\.(parquet|json)$")
CRC = re.compile(r"^(\d{20})\.crc$")
LAST_CHECKPOINT = "_last_checkpoint"
SIDECARS = "_sidecars"

_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_INDEX = {c: i for i, c in enumerate(_Z85)}


def commit_name(version: int) -> str:
    """File name of commit ``version`` in ``_delta_log``."""
    return f"{version:020d}.json"


def z85_decode(text: str) -> bytes:
    """Decode Z85 (ZeroMQ base-85), the encoding of deletion-vector UUIDs in the log."""
    if len(text) % 5:
        raise ValueError(f"Z85 text length {len(text)} is not a multiple of 5")
    out = bytearray()
    for i in range(0, len(text), 5):
        value = 0
        for ch in text[i : i + 5]:
            value = value * 85 + _Z85_INDEX[ch]
        out += value.to_bytes(4, "big")
    return bytes(out)


def deletion_vector_path(dv: dict[str, Any]) -> str | None:
    """Path, relative to the table, of a deletion vector's file; None for an inline one (``i``).

    ``u``: ``pathOrInlineDv`` is an optional random prefix followed by the 20-character Z85 UUID, stored
    as ``<prefix>/deletion_vector_<uuid>.bin``; ``p``: an absolute path (refused, see :func:`relative`).
    """
    kind, value = dv.get("storageType"), str(dv.get("pathOrInlineDv", ""))
    if kind == "i":
        return None
    if kind == "p":
        return relative(value)
    if kind != "u":
        raise LakehouseError(f"unknown deletion vector storage type {kind!r}")
    prefix, encoded = value[:-20], value[-20:]
    name = f"deletion_vector_{uuid.UUID(bytes=z85_decode(encoded))}.bin"
    return f"{prefix}/{name}" if prefix else name


def relative(path: str) -> str:
    """A log path (URL-encoded, relative to the table) decoded; an absolute URI (a shallow clone's, which
    points into another table) is refused: a replica must own every byte it references."""
    if urlparse(path).scheme or path.startswith("/"):
        raise LakehouseError(
            f"the log references a file outside its table ({path!r}): a shallow clone cannot be replicated",
            fix="replicate the source table instead, or deep-copy the clone into a real table first",
        )
    return unquote(path)


@dataclass(frozen=True)
class Commit:
    """What one commit of the log does, as far as replication cares."""

    version: int
    files: tuple[str, ...]  # data, change-data and deletion-vector files it adds (relative, decoded)
    removed: tuple[str, ...]  # data files it logically removes
    operation: str | None  # commitInfo.operation, e.g. WRITE, MERGE, OPTIMIZE, VACUUM END
    configuration: dict[str, str] | None  # metaData.configuration when the commit changes the metadata
    timestamp_ms: int | None  # commitInfo.timestamp
    sizes: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # add/cdc path -> (bytes, mtime ms)


def parse_commit(version: int, data: bytes) -> Commit:
    """The actions of commit ``version`` (newline-delimited JSON) that decide what must be copied."""
    files: list[str] = []
    removed: list[str] = []
    operation: str | None = None
    configuration: dict[str, str] | None = None
    timestamp: int | None = None
    sizes: dict[str, tuple[int, int | None]] = {}
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            continue
        action: dict[str, Any] = json.loads(line)
        if "add" in action:
            add = action["add"]
            files.append(relative(add["path"]))
            if "size" in add:
                sizes[files[-1]] = (int(add["size"]), add.get("modificationTime"))
            if add.get("deletionVector"):
                dv = deletion_vector_path(add["deletionVector"])
                if dv is not None:
                    files.append(dv)
        elif "cdc" in action:
            files.append(relative(action["cdc"]["path"]))
            if "size" in action["cdc"]:
                sizes[files[-1]] = (int(action["cdc"]["size"]), None)
        elif "remove" in action:
            removed.append(unquote(action["remove"]["path"]))
        elif "metaData" in action:
            configuration = {str(k): str(v) for k, v in (action["metaData"].get("configuration") or {}).items()}
        elif "commitInfo" in action:
            operation = action["commitInfo"].get("operation")
            timestamp = action["commitInfo"].get("timestamp")
    return Commit(version, tuple(dict.fromkeys(files)), tuple(removed), operation, configuration, timestamp, sizes)


def versions(names: Iterable[str]) -> list[int]:
    """Commit versions present in a ``_delta_log`` listing, ascending."""
    return sorted(int(m.group(1)) for n in names if (m := COMMIT.match(n)))


def checkpoint_files(names: Iterable[str], version: int) -> list[str]:
    """Checkpoint files (classic, multi-part or v2) of ``version`` in a ``_delta_log`` listing."""
    return sorted(n for n in names if (m := CHECKPOINT.match(n)) and int(m.group(1)) == version)


def last_checkpoint_version(data: bytes) -> int:
    """The version ``_last_checkpoint`` points at."""
    return int(json.loads(data)["version"])
