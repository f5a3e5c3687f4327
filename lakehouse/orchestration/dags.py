"""Building blocks every DAG in ``dags/`` uses, so DAG files stay thin and cheap to parse.

A task runs one entry point of ``jobs/`` in a fresh process with this project's Python, exactly as an
operator would run it by hand (``python jobs/<job>.py ...``). The worker's environment passes through,
so ``LAKEHOUSE_ENV`` selects the profile; tasks exchange model URIs, table paths and versions as
arguments or XComs, never objects.
"""

from __future__ import annotations

import shlex
import sys
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator

from lakehouse.config import PROJECT_ROOT

JOBS_DIR = PROJECT_ROOT / "jobs"

DEFAULT_ARGS: dict[str, Any] = {"owner": "lakehouse", "retries": 1, "retry_delay": timedelta(minutes=1)}


def job_command(job: str, *args: str) -> str:
    """The shell command running ``jobs/<job>.py`` with ``args`` (Jinja templates such as ``{{ ds }}``
    are rendered by Airflow inside the quoting)."""
    script = JOBS_DIR / f"{job}.py"
    return " ".join(shlex.quote(part) for part in (sys.executable, str(script), *args))


def job_task(task_id: str, job: str, *args: str, **kwargs: Any) -> BashOperator:
    """A task running ``jobs/<job>.py args`` with the worker's environment (``LAKEHOUSE_ENV`` included)."""
    return BashOperator(
        task_id=task_id, bash_command=job_command(job, *args), append_env=True, cwd=str(PROJECT_ROOT), **kwargs
    )
