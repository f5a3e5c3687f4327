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
from airflow.sdk.exceptions import AirflowFailException

from lakehouse.config import PROJECT_ROOT

JOBS_DIR = PROJECT_ROOT / "jobs"

DEFAULT_ARGS: dict[str, Any] = {"owner": "lakehouse", "retries": 1, "retry_delay": timedelta(minutes=1)}
# exit codes that say the input is wrong, not the run: a retry over the same input cannot pass, so the task
# fails at once (3: lakehouse.quality.gate.DataQualityBlocked; 66: lakehouse.errors.InputError)
FINAL_EXIT_CODES: dict[int, str] = {
    3: "a blocking data-quality expectation failed",
    66: "an input it was given does not exist",
}


class JobOperator(BashOperator):
    """A BashOperator running a job; an exit code of ``FINAL_EXIT_CODES`` fails the task without its retries."""

    def _run_inline_command(self, bash_path: str, env: dict[str, str]) -> Any:
        result = super()._run_inline_command(bash_path=bash_path, env=env)
        reason = FINAL_EXIT_CODES.get(result.exit_code)
        if reason is not None:
            raise AirflowFailException(f"exit code {result.exit_code}: {reason}; not retried (same data, same result)")
        return result


def job_command(job: str, *args: str) -> str:
    """The shell command running ``jobs/<job>.py`` with ``args`` (Jinja templates such as ``{{ ds }}``
    are rendered by Airflow inside the quoting)."""
    script = JOBS_DIR / f"{job}.py"
    return " ".join(shlex.quote(part) for part in (sys.executable, str(script), *args))


SKIP_EXIT_CODE = 99  # BashOperator's skip_on_exit_code: the task ends as skipped


def job_task(task_id: str, job: str, *args: str, run_if: str | None = None, **kwargs: Any) -> JobOperator:
    """A task running ``jobs/<job>.py args`` with the worker's environment (``LAKEHOUSE_ENV`` included).

    ``run_if``: a Jinja condition (e.g. on ``params``) rendered with the command; when it is false the task
    ends as skipped without starting the job (no Python, no JVM)."""
    command = job_command(job, *args)
    if run_if is not None:
        command = f"{{% if {run_if} %}}{command}{{% else %}}exit {SKIP_EXIT_CODE}{{% endif %}}"
    return JobOperator(
        task_id=task_id, bash_command=command, append_env=True, cwd=str(PROJECT_ROOT),
        skip_on_exit_code=SKIP_EXIT_CODE, **kwargs,
    )  # fmt: skip
