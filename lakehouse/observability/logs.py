"""Structured logs: one JSON object per line in ``<state_dir>/logs/<job>.jsonl``.

Every line carries ``ts``, ``level``, ``job``, ``region`` and ``message``; lines about a streaming query
add ``query``, ``query_id`` and ``batch_id``. A failing job writes one ``error`` line that says why.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from lakehouse.config import Config

LOGGER = "lakehouse"
FIELDS = ("query", "query_id", "run_id", "batch_id", "rows", "duration_s", "error")
logging.getLogger(LOGGER).addHandler(logging.NullHandler())  # nothing on stderr until a job configures its file


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON line with the job's context and any of ``FIELDS`` given as ``extra``."""

    def __init__(self, job: str, region: str | None) -> None:
        super().__init__()
        self.job, self.region = job, region

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "job": self.job,
            "region": self.region,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info and "error" not in line:
            line["error"] = f"{record.exc_info[0].__name__ if record.exc_info[0] else ''}: {record.exc_info[1]}"
        return json.dumps(line, default=str)


def log_file(cfg: Config, job: str) -> Path:
    """Where job ``job`` writes its JSON lines."""
    return cfg.state_dir / "logs" / f"{job}.jsonl"


def configure(cfg: Config, job: str, region: str | None) -> Path:
    """Send the ``lakehouse`` loggers to the job's JSON-line file (idempotent per job); returns the file."""
    path = log_file(cfg, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, "lakehouse_job", None) is not None:
            logger.removeHandler(handler)
            handler.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonLineFormatter(job, region))
    handler.lakehouse_job = job  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logging.getLogger(f"{LOGGER}.job").info("job started: " + " ".join(sys.argv[1:]))
    return path


def failure(exc: BaseException) -> None:
    """Log why a job failed, in one line (the exception's message, first line of a multi-line one kept whole)."""
    message = " | ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    logging.getLogger(LOGGER).error("job failed: %s", message, extra={"error": type(exc).__name__})
