"""The denials file a service of the local stack keeps: one JSON line per request it refused (HTTP 401 or 403),
written by the service's own process (MLflow's app :mod:`.mlflow_app`, Airflow's api-server through
:mod:`.airflow_denials`) and forwarded to ``ops.audit_log`` by the lakehouse exporter (:mod:`.refusals`).

A line: time (UTC, ISO 8601), status, the user name the client gave (or null; a claim, verified or not, never a
password), method, path and client address. Kept free of heavy imports: it runs inside those servers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def denial(status: int, user: str | None, method: str, path: str, ip: str | None) -> dict[str, Any]:
    """One refused request, as written to a denials file."""
    return {"time": datetime.now(UTC).isoformat(), "status": status, "user": user, "method": method,
            "path": path, "ip": ip}  # fmt: skip


def append(file: Path, line: dict[str, Any]) -> None:
    """Append ``line`` to ``file`` (one short write per line: appends of concurrent requests do not interleave)."""
    with file.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")
