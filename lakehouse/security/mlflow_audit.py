"""Refused MLflow requests into ops.audit_log: the local tracking server's app (:mod:`.mlflow_app`) writes one
JSON line per 401/403 (:mod:`.denials`); each becomes an ``mlflow.access`` / ``denied`` row (actor
``mlflow:<user>``, or ``mlflow:anonymous`` when no user was given; target ``<METHOD> <path>``; the HTTP status and
client address as detail), recorded by :mod:`.refusals` in the audit log of the primary in force.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakehouse.config import Config, RegionConfig
from lakehouse.security import refusals

ACTION = "mlflow.access"


def rows(lines: list[str], region: str) -> list[dict[str, Any]]:
    """ops.audit_log rows for the denial lines (a line that is not a denial record is logged and skipped)."""
    return refusals.denial_rows(lines, region, ACTION, "mlflow")


def forward_local(cfg: Config, home: Path, into: Callable[[], RegionConfig] | None = None) -> None:
    """Forward the denials of the tracking server the local stack runs, if any (:func:`.refusals.poll`)."""
    from lakehouse.stack.services import MlflowServer, services

    into = into or refusals.primary_in_force(cfg)
    for svc in services(cfg):
        if isinstance(svc, MlflowServer) and svc.managed:
            position = home / "mlflow-denials.position"
            refusals.poll("MLflow", svc.denials_file, position, lambda lines: rows(lines, into().name), into)
