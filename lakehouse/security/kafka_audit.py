"""Refused Kafka accesses into ops.audit_log, in the secure mode (``kafka_security.enabled``): the broker's
authorizer logs each denial (``Principal = User:clinical is Denied operation = READ from host = … on resource =
Topic:LITERAL:telemetry.vitals for request = Fetch …``) and its socket server each failed SASL authentication.
Each becomes a ``kafka.access`` / ``denied`` row (actor ``kafka:<user>``, or ``kafka:unauthenticated`` for a
failed log-in; target the resource; the broker's region), recorded by :mod:`.refusals` (the audit log of the
primary in force, a position file per broker log).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse import audit
from lakehouse.config import Config, RegionConfig
from lakehouse.security import refusals

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


def forward_all(cfg: Config, home: Path, into: Callable[[], RegionConfig] | None = None) -> None:
    """Forward the refusals of every secure broker the local stack runs (:func:`.refusals.poll`)."""
    from lakehouse.stack.services import KafkaBroker, services

    into = into or refusals.primary_in_force(cfg)
    for svc in services(cfg):
        region = svc.region_cfg if isinstance(svc, KafkaBroker) else None
        if region is None or not svc.managed or region.kafka.auth is None:
            continue

        def to_rows(lines: list[str], name: str = region.name) -> list[dict[str, Any]]:
            return [r for r in (parse(line, name) for line in lines) if r is not None]

        position = home / f"kafka-audit-{region.name}.position"
        refusals.poll(f"Kafka in {region.name}", svc.log_file, position, to_rows, into)
