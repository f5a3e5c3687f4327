"""Refused accesses into ops.audit_log, the part every source shares: read what a service's log gained since
the last poll, turn its refusal lines into audit rows, append them to the audit log of the primary in force,
then advance a position file (so a restart neither repeats nor skips a line, and a failed write is retried).

The sources: the NameNodes' audit log (:mod:`.hdfs_audit`), the denials files of the MLflow server
(:mod:`.mlflow_audit`) and of Airflow's api-server (:mod:`.airflow_audit`) and, in Kafka's secure mode, the
brokers' authorizer log (:mod:`.kafka_audit`). The lakehouse exporter of the local stack polls them.
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

log = logging.getLogger(__name__)

MAX_READ = 16 << 20  # bytes read per poll (a backlog is worked off over several polls)

Rows = Callable[[list[str]], list[dict[str, Any]]]


def read_new(log_file: Path, position_file: Path) -> tuple[list[str], int]:
    """Complete lines appended to ``log_file`` since the saved position, and the position after them. Without a
    position file, reading starts at the current end (history before the first start is not replayed); a file
    that shrank was rotated or truncated and is read from its start."""
    size = log_file.stat().st_size if log_file.exists() else 0
    if not position_file.exists():
        return [], size
    start = int(position_file.read_text() or 0)
    if size < start:
        start = 0
    with log_file.open("rb") as fh:
        fh.seek(start)
        data = fh.read(MAX_READ)
    end = data.rfind(b"\n") + 1  # a partial last line waits for the next poll
    return data[:end].decode("utf-8", errors="replace").splitlines(), start + end


def denial_rows(lines: list[str], region: str, action: str, service: str) -> list[dict[str, Any]]:
    """ops.audit_log rows for the lines of a denials file (:mod:`.denials`): ``action`` / ``denied``, actor
    ``<service>:<user>`` (``<service>:anonymous`` when the client gave no name), target ``<METHOD> <path>``,
    the HTTP status and client address as detail. A line that is not a denial record is logged and skipped."""
    out = []
    for line in lines:
        try:
            d = json.loads(line)
            status, method, path = int(d["status"]), str(d["method"]), str(d["path"])
            moment = datetime.fromisoformat(str(d["time"]))
        except (ValueError, KeyError, TypeError):
            log.warning(f"not a {service} denial record, skipped: {line[:200]!r}")
            continue
        detail = {"status": status, "ip": d.get("ip")}
        row = audit.entry(action, f"{method} {path}", region, "denied", detail, now=moment)
        out.append({**row, "actor": f"{service}:{d.get('user') or 'anonymous'}"})
    return out


def primary_in_force(cfg: Config) -> Callable[[], RegionConfig]:
    """The region whose audit log takes refusals: the primary in force (fencing state; the secondary's log is a
    replica that only replication writes), looked up at the first call of the returned function and only then
    (a poll without refusals asks nothing)."""
    from lakehouse.replication import fencing

    primary: list[RegionConfig] = []

    def into() -> RegionConfig:
        if not primary:
            primary.append(cfg.region(fencing.current(cfg)[0].primary))
        return primary[0]

    return into


def forward(log_file: Path, position_file: Path, to_rows: Rows, into: Callable[[], RegionConfig]) -> int:
    """Append the refusals ``log_file`` gained since the last call to the ops.audit_log of the region ``into()``
    names (asked only when there is one); returns how many. The position advances only once they are recorded."""
    lines, position = read_new(log_file, position_file)
    recorded = to_rows(lines)
    if recorded:
        audit.record(into(), *recorded)
    position_file.parent.mkdir(parents=True, exist_ok=True)
    position_file.write_text(str(position))
    return len(recorded)


def poll(what: str, log_file: Path, position_file: Path, to_rows: Rows, into: Callable[[], RegionConfig]) -> None:
    """:func:`forward` for the exporter's loop: a failure is logged and retried at the next poll, never raised."""
    try:
        n = forward(log_file, position_file, to_rows, into)
        if n:
            log.info(f"ops.audit_log of {into().name}: {n} refusal(s) of {what} recorded")
    except Exception as exc:  # noqa: BLE001 -- the exporter keeps serving metrics whatever the services do
        log.error(f"refusals of {what} not recorded yet: {exc}")
