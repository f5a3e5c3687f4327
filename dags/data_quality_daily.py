"""data_quality_daily: validate yesterday's partition of every table that has a suite (conf/quality).

One task per table runs ``jobs/data_quality.py --table <table> --date <day>``: results go to dq.results
under the run id ``data_quality_daily:<Airflow run id>``, Data Docs under the state folder, and a blocking
expectation makes that task (and the run) fail; the other tables are still checked.

Params: ``region`` (default: the primary), ``date`` (YYYY-MM-DD; default: the day before the run's logical
date, so the run at 00:00 of D checks D-1), e.g. to re-check a day after a fix, and ``tables`` (default:
every table; otherwise the tasks of the other tables end as skipped without starting a job).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from lakehouse.config import CONF_DIR
from lakehouse.orchestration.dags import DEFAULT_ARGS, job_task, region_param

# the tables with a suite in the repository (file names only: nothing is parsed at DAG-parse time)
TABLES = sorted(p.stem for p in (CONF_DIR / "quality").glob("*.yaml"))
DAY = "{{ params.date or macros.ds_add(ds, -1) }}"

with DAG(
    dag_id="data_quality_daily",
    description="Validate yesterday's partition of every table with its expectation suite; fail on a blocking one",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params={
        "region": region_param("", "region (empty: the primary)"),
        "date": Param(
            "",
            type="string",
            pattern=r"^(\d{4}-\d{2}-\d{2})?$",
            description="partition date YYYY-MM-DD (empty: the day before the run)",
        ),
        "tables": Param(
            [],
            type="array",
            items={"type": "string", "enum": TABLES},
            description="tables to check (empty: every table with a suite)",
        ),
    },
    tags=["lakehouse", "data-quality"],
    doc_md=__doc__,
):
    for table in TABLES:
        job_task(
            f"validate_{table.replace('.', '_')}", "data_quality", "--region", "{{ params.region }}",
            "--table", table, "--date", DAY, "--run-id", "data_quality_daily:{{ run_id }}",
            run_if=f"not params.tables or {table!r} in params.tables",
        )  # fmt: skip
