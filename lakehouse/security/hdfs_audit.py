"""Refused HDFS accesses into ops.audit_log: the NameNode audits every operation in its log
(``FSNamesystem.audit: allowed=false ugi=… ip=… cmd=… src=…``); the refusals of users other than the pipeline
user are appended to ``ops.audit_log`` as ``hdfs.access`` / ``denied`` (actor ``hdfs:<user>``, ``region`` the
NameNode's). They go to the log of the primary in force (the fencing state): the secondary's log is a replica,
which only replication writes.

Run by the lakehouse exporter of the local stack, which can read the embedded NameNodes' logs; the reading,
recording and position keeping are :mod:`.refusals`'.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse import audit
from lakehouse.config import Config, RegionConfig
from lakehouse.security import refusals

ACTION = "hdfs.access"
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO FSNamesystem\.audit: allowed=false\s+"
    r"ugi=(?P<ugi>\S+)[^\t]*\tip=/?(?P<ip>[^\t]*)\tcmd=(?P<cmd>[^\t]*)\tsrc=(?P<src>[^\t]*)\tdst=(?P<dst>[^\t]*)"
    r"(?:\tperm=[^\t]*)?(?:\tproto=(?P<proto>\S*))?"
)


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


def forward_all(cfg: Config, home: Path, into: Callable[[], RegionConfig] | None = None) -> None:
    """Forward the refusals of every NameNode the local stack runs (:func:`.refusals.poll`)."""
    from lakehouse.stack.services import HdfsDaemon, services

    into = into or refusals.primary_in_force(cfg)
    for svc in services(cfg):
        if not (isinstance(svc, HdfsDaemon) and svc.kind == "hdfs-namenode" and svc.managed and svc.region_cfg):
            continue
        region = svc.region_cfg

        def to_rows(lines: list[str], region: RegionConfig = region) -> list[dict[str, Any]]:
            return rows(region, [r for r in (parse(line) for line in lines) if r is not None])

        position = home / f"hdfs-audit-{region.name}.position"
        refusals.poll(f"HDFS in {region.name}", svc.log_file, position, to_rows, into)
