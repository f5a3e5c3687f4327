"""Refused Airflow API requests into ops.audit_log: the local api-server's middleware (:mod:`.airflow_denials`)
writes one JSON line per 401/403; each becomes an ``airflow.access`` / ``denied`` row (actor ``airflow:<user>``,
the name the client gave, or ``airflow:anonymous``; target ``<METHOD> <path>``; the HTTP status and client
address as detail), recorded by :mod:`.refusals` in the audit log of the primary in force.

A DAG task's actor looks alike (``airflow:<dag>/<run id>/<task>``); the action tells them apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakehouse.config import Config, RegionConfig
from lakehouse.security import refusals

ACTION = "airflow.access"


def rows(lines: list[str], region: str) -> list[dict[str, Any]]:
    """ops.audit_log rows for the denial lines (a line that is not a denial record is logged and skipped)."""
    return refusals.denial_rows(lines, region, ACTION, "airflow")


def forward_local(cfg: Config, home: Path, into: Callable[[], RegionConfig] | None = None) -> None:
    """Forward the denials of the api-server the local stack runs, if it runs one (:func:`.refusals.poll`)."""
    from lakehouse.orchestration.services import denials_file

    if not cfg.airflow.embedded:
        return
    into = into or refusals.primary_in_force(cfg)
    refusals.poll("Airflow", denials_file(cfg), home / "airflow-denials.position",
                  lambda lines: rows(lines, into().name), into)  # fmt: skip
