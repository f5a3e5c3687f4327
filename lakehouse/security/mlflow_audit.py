"""Refused MLflow requests into ops.audit_log: the local tracking server's app (:mod:`.mlflow_app`) writes one
JSON line per 401/403; each becomes an ``mlflow.access`` / ``denied`` row (actor ``mlflow:<user>``, or
``mlflow:anonymous`` when no user was given; target ``<METHOD> <path>``; the HTTP status and client address as
detail) in the audit log of the primary in force, like HDFS refusals (:mod:`.hdfs_audit`, whose position
handling it shares: a restart neither repeats nor skips a line).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from lakehouse import audit
from lakehouse.config import Config, RegionConfig
from lakehouse.security.hdfs_audit import primary_in_force, read_new

log = logging.getLogger(__name__)

ACTION = "mlflow.access"


def rows(lines: list[str], region: str) -> list[dict[str, Any]]:
    """ops.audit_log rows for the denial lines (a line that is not a denial record is logged and skipped)."""
    out = []
    for line in lines:
        try:
            d = json.loads(line)
            status, method, path = int(d["status"]), str(d["method"]), str(d["path"])
            moment = datetime.fromisoformat(str(d["time"]))
        except (ValueError, KeyError, TypeError):
            log.warning(f"not an MLflow denial record, skipped: {line[:200]!r}")
            continue
        detail = {"status": status, "ip": d.get("ip")}
        row = audit.entry(ACTION, f"{method} {path}", region, "denied", detail, now=moment)
        out.append({**row, "actor": f"mlflow:{d.get('user') or 'anonymous'}"})
    return out


def forward(denials: Path, position_file: Path, into: Callable[[], RegionConfig]) -> int:
    """Append the denials recorded since the last call to the ops.audit_log of the region ``into()`` names; returns
    how many. The position advances only once they are recorded (a failed write is retried at the next call)."""
    lines, position = read_new(denials, position_file)
    if lines:
        region = into()
        recorded = rows(lines, region.name)
        audit.record(region, *recorded)
    else:
        recorded = []
    position_file.parent.mkdir(parents=True, exist_ok=True)
    position_file.write_text(str(position))
    return len(recorded)


def forward_local(cfg: Config, home: Path, into: Callable[[], RegionConfig] | None = None) -> None:
    """:func:`forward` for the tracking server the local stack runs (none on a cluster profile); errors are logged,
    not raised."""
    from lakehouse.stack.services import MlflowServer, services

    for svc in services(cfg):
        if not (isinstance(svc, MlflowServer) and svc.managed):
            continue
        try:
            n = forward(svc.denials_file, home / "mlflow-denials.position", into or primary_in_force(cfg))
            if n:
                log.info(f"ops.audit_log: {n} refused MLflow request(s) recorded")
        except Exception as exc:  # noqa: BLE001 -- the exporter keeps serving metrics whatever happens here
            log.error(f"refused MLflow requests not recorded yet: {exc}")
