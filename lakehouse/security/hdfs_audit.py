"""Refused HDFS accesses into ops.audit_log: the NameNode audits every operation in its log
(``FSNamesystem.audit: allowed=false ugi=… ip=… cmd=… src=…``); the refusals of users other than the pipeline
user are appended to ``ops.audit_log`` as ``hdfs.access`` / ``denied`` (actor ``hdfs:<user>``, ``region`` the
NameNode's). They go to the log of the primary in force (the fencing state): the secondary's log is a replica,
which only replication writes.

Run by the lakehouse exporter of the local stack, which can read the embedded NameNodes' logs; a position file
per region keeps where it stopped, so a restart neither repeats nor skips a refusal (a log that shrank was
rotated: it is read from its start).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse import audit
from lakehouse.config import Config, RegionConfig

log = logging.getLogger(__name__)

ACTION = "hdfs.access"
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO FSNamesystem\.audit: allowed=false\s+"
    r"ugi=(?P<ugi>\S+)[^\t]*\tip=/?(?P<ip>[^\t]*)\tcmd=(?P<cmd>[^\t]*)\tsrc=(?P<src>[^\t]*)\tdst=(?P<dst>[^\t]*)"
    r"(?:\tperm=[^\t]*)?(?:\tproto=(?P<proto>\S*))?"
)
MAX_READ = 16 << 20  # bytes read per poll (a backlog is worked off over several polls)


@dataclass(frozen=True)
class Refusal:
    """One access the NameNode refused."""

    time: datetime
    user: str
    ip: str
    cmd: str
    src: str
    dst: str
    proto: str


def parse(line: str) -> Refusal | None:
    """The refusal in one NameNode log line, None for any other line."""
    m = LINE.match(line)
    if m is None:
        return None
    moment = datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)  # the stack logs in UTC
    return Refusal(moment, m["ugi"], m["ip"], m["cmd"], m["src"], m["dst"], m["proto"] or "rpc")


def read_new(log_file: Path, position_file: Path) -> tuple[list[str], int]:
    """Complete lines appended to ``log_file`` since the saved position, and the position after them. Without a
    position file, reading starts at the current end (history before the first start is not replayed)."""
    size = log_file.stat().st_size if log_file.exists() else 0
    if not position_file.exists():
        return [], size
    start = int(position_file.read_text() or 0)
    if size < start:  # rotated or truncated
        start = 0
    with log_file.open("rb") as fh:
        fh.seek(start)
        data = fh.read(MAX_READ)
    end = data.rfind(b"\n") + 1  # a partial last line waits for the next poll
    return data[:end].decode("utf-8", errors="replace").splitlines(), start + end


def rows(region: RegionConfig, refusals: list[Refusal]) -> list[dict[str, Any]]:
    """ops.audit_log rows for ``refusals`` of users other than the region's pipeline user."""
    out = []
    for r in refusals:
        if r.user == region.hdfs.user:  # the pipeline user is the superuser: its allowed=false are not refusals
            continue
        detail = {"cmd": r.cmd, "ip": r.ip, "proto": r.proto, "dst": None if r.dst == "null" else r.dst}
        row = audit.entry(ACTION, r.src, region.name, "denied", detail, now=r.time)
        out.append({**row, "actor": f"hdfs:{r.user}"})
    return out


def forward(region: RegionConfig, log_file: Path, position_file: Path, into: Callable[[], RegionConfig]) -> int:
    """Append the refusals ``region``'s NameNode logged since the last call to the ops.audit_log of the region
    ``into()`` names (asked only when there is one); returns how many. The position advances only once they are
    recorded (a failed write is retried at the next call)."""
    lines, position = read_new(log_file, position_file)
    found = [r for r in (parse(line) for line in lines) if r is not None]
    recorded = rows(region, found)
    if recorded:
        audit.record(into(), *recorded)
    position_file.parent.mkdir(parents=True, exist_ok=True)
    position_file.write_text(str(position))
    return len(recorded)


def primary_in_force(cfg: Config) -> Callable[[], RegionConfig]:
    """The region whose audit log takes denials: the primary in force (fencing state), looked up at the first call
    of the returned function and only then (a poll without denials asks nothing)."""
    from lakehouse.replication import fencing

    primary: list[RegionConfig] = []

    def into() -> RegionConfig:
        if not primary:
            primary.append(cfg.region(fencing.current(cfg)[0].primary))
        return primary[0]

    return into


def forward_all(cfg: Config, home: Path, into: Callable[[], RegionConfig] | None = None) -> None:
    """:func:`forward` for every region whose NameNode the local stack runs; errors are logged, not raised."""
    from lakehouse.stack.services import HdfsDaemon, services

    into = into or primary_in_force(cfg)
    for svc in services(cfg):
        if not (isinstance(svc, HdfsDaemon) and svc.kind == "hdfs-namenode" and svc.managed and svc.region_cfg):
            continue
        region = svc.region_cfg
        try:
            n = forward(region, svc.log_file, home / f"hdfs-audit-{region.name}.position", into)
            if n:
                log.info(f"ops.audit_log of {into().name}: {n} HDFS access(es) refused in {region.name} recorded")
        except Exception as exc:  # noqa: BLE001 -- the exporter keeps serving metrics whatever HDFS does
            log.error(f"HDFS refusals of {region.name} not recorded yet: {exc}")
