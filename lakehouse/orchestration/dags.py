"""Building blocks every DAG in ``dags/`` uses, so DAG files stay thin and cheap to parse.

A task runs one entry point of ``jobs/`` in a fresh process with this project's Python, exactly as an
operator would run it by hand (``python jobs/<job>.py ...``). The worker's environment passes through,
so ``LAKEHOUSE_ENV`` selects the profile; tasks exchange model URIs, table paths and versions as
arguments or XComs, never objects.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from lakehouse.config import PROJECT_ROOT, SANDBOX_NAME, SANDBOX_VAR

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

# A string param rendered into a task's command lands inside single quotes (job_command's shlex quoting): each
# one carries a pattern without "'", so no value a user triggers with can end the quoting (Airflow refuses the
# run: "Invalid input for param")
NO_QUOTE = r"^[^'\n]*$"
REGION_PATTERN = r"^([a-z][a-z0-9_-]{0,63})?$"


def region_param(default: str, description: str) -> Param:
    """A region-name param (empty allowed where the job reads it as "the primary")."""
    return Param(default, type="string", pattern=REGION_PATTERN, description=description)


def sandbox_param() -> Param:
    """The ``sandbox`` param of a job_task(..., sandboxed=True) DAG: run on that sandbox profile of the
    deployment (``$LAKEHOUSE_SANDBOX``, lakehouse.config.sandbox_path) instead of the deployment itself."""
    return Param(
        "", type="string", pattern=f"^({SANDBOX_NAME.pattern})?$",
        description="a sandbox profile of this deployment to run on (<state_dir>/sandboxes/<name>.yaml: a DR drill);"
        " empty: the deployment itself",
    )  # fmt: skip


def job_task(
    task_id: str,
    job: str,
    *args: str,
    run_if: str | None = None,
    flags: Mapping[str, str] | None = None,
    sandboxed: bool = False,
    **kwargs: Any,
) -> JobOperator:
    """A task running ``jobs/<job>.py args`` with the worker's environment (``LAKEHOUSE_ENV`` included).

    ``run_if``: a Jinja condition (e.g. on ``params``) rendered with the command; when it is false the task
    ends as skipped without starting the job (no Python, no JVM). ``flags``: a flag of the job -> the Jinja
    condition under which it is passed. ``sandboxed``: the DAG's ``sandbox`` param (:func:`sandbox_param`)
    reaches the job as ``$LAKEHOUSE_SANDBOX``, in the environment, never through the shell."""
    command = job_command(job, *args)
    for flag, condition in (flags or {}).items():
        command += f"{{% if {condition} %}} {shlex.quote(flag)}{{% endif %}}"
    if sandboxed:
        kwargs["env"] = {**kwargs.get("env", {}), SANDBOX_VAR: "{{ params.sandbox }}"}
    if run_if is not None:
        command = f"{{% if {run_if} %}}{command}{{% else %}}exit {SKIP_EXIT_CODE}{{% endif %}}"
    return JobOperator(
        task_id=task_id, bash_command=command, append_env=True, cwd=str(PROJECT_ROOT),
        skip_on_exit_code=SKIP_EXIT_CODE, **kwargs,
    )  # fmt: skip
