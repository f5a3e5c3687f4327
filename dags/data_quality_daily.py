"""data_quality_daily: validate yesterday's partition of every table that has a suite (conf/quality).

One task per table runs ``jobs/data_quality.py --table <table> --date <yesterday>``: results go to
dq.results, Data Docs under the state folder, and a blocking expectation makes the task (and the run) fail.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from lakehouse.config import CONF_DIR
from lakehouse.orchestration.dags import DEFAULT_ARGS, job_task

# the tables with a suite in the repository (file names only: nothing is parsed at DAG-parse time)
TABLES = sorted(p.stem for p in (CONF_DIR / "quality").glob("*.yaml"))
YESTERDAY = "{{ macros.ds_add(ds, -1) }}"  # the run at 00:00 of D checks partition D-1

with DAG(
    dag_id="data_quality_daily",
    description="Validate yesterday's partition of every table with its expectation suite; fail on a blocking one",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["lakehouse", "data-quality"],
):
    for table in TABLES:
        job_task(f"validate_{table.replace('.', '_')}", "data_quality", "--table", table, "--date", YESTERDAY)
