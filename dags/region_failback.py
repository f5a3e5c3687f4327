"""region_failback: return to the configured primary after a failover (its unreplicated commits are archived
and reported, then it is resynchronised and promoted back); runs `lakehouse failback`."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from lakehouse.orchestration.dags import DEFAULT_ARGS, job_task

with DAG(
    dag_id="region_failback",
    description="Fail back to the configured primary region",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},
    tags=["dr"],
) as dag:
    job_task("failback", "failback", "--json")
