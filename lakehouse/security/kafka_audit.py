"""Refused Kafka accesses into ops.audit_log, in the secure mode (``kafka_security.enabled``): the broker's
authorizer logs each denial (``Principal = User:clinical is Denied operation = READ from host = … on resource =
Topic:LITERAL:telemetry.vitals for request = Fetch …``) and its socket server each failed SASL authentication.
Each becomes a ``kafka.access`` / ``denied`` row (actor ``kafka:<user>``, or ``kafka:unauthenticated`` for a
failed log-in; target the resource; the broker's region), written like HDFS refusals (:mod:`.hdfs_audit`: the
audit log of the primary in force, a position file per broker log).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse import audit
from lakehouse.config import Config, RegionConfig
from lakehouse.security.hdfs_audit import primary_in_force, read_new

log = logging.getLogger(__name__)

ACTION = "kafka.access"
_TIME = r"^\[(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] "
DENIED = re.compile(
    _TIME + r"INFO Principal = User:(?P<user>\S+) is Denied operation = (?P<op>\S+) from host = (?P<host>\S+) "
    r"on resource = (?P<kind>[A-Za-z]+):(?P<pattern>[A-Z]+):(?P<name>\S+) for request = (?P<request>\S+)"
)
FAILED_LOGIN = re.compile(
    _TIME + r"INFO .*Failed authentication with /?(?P<host>[^ ]+) \(channelId=[^)]*\) \((?P<reason>[^)]*)\)"
)


def parse(line: str, region: str) -> dict[str, Any] | None:
    """The ops.audit_log row of one broker log line that records a refusal; None for any other line."""
    if m := DENIED.match(line):
        actor, target = f"kafka:{m['user']}", f"{m['kind']}:{m['name']}"
        detail = {"operation": m["op"], "host": m["host"], "request": m["request"], "pattern": m["pattern"]}
    elif m := FAILED_LOGIN.match(line):
        actor, target = "kafka:unauthenticated", "authentication"
        detail = {"host": m["host"], "reason": m["reason"]}
    else:
        return None
    moment = datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)  # the stack logs in UTC
    return {**audit.entry(ACTION, target, region, "denied", detail, now=moment), "actor": actor}


def forward(region: RegionConfig, log_file: Path, position_file: Path, into: Callable[[], RegionConfig]) -> int:
    """Append the refusals ``region``'s broker logged since the last call to the ops.audit_log ``into()`` names;
    returns how many (the position advances only once they are recorded)."""
    lines, position = read_new(log_file, position_file)
    found = [r for r in (parse(line, region.name) for line in lines) if r is not None]
    if found:
        audit.record(into(), *found)
    position_file.parent.mkdir(parents=True, exist_ok=True)
    position_file.write_text(str(position))
    return len(found)


def forward_all(cfg: Config, home: Path, into: Callable[[], RegionConfig] | None = None) -> None:
    """:func:`forward` for every secure broker the local stack runs; errors are logged, not raised."""
    from lakehouse.stack.services import KafkaBroker, services

    into = into or primary_in_force(cfg)
    for svc in services(cfg):
        region = svc.region_cfg if isinstance(svc, KafkaBroker) else None
        if region is None or not svc.managed or region.kafka.auth is None:
            continue
        try:
            n = forward(region, svc.log_file, home / f"kafka-audit-{region.name}.position", into)
            if n:
                log.info(f"ops.audit_log: {n} Kafka access(es) refused in {region.name} recorded")
        except Exception as exc:  # noqa: BLE001 -- the exporter keeps serving metrics whatever happens here
            log.error(f"Kafka refusals of {region.name} not recorded yet: {exc}")
