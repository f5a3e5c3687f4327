"""region_failback: return to the configured primary after a failover (its unreplicated commits are archived
and reported, then it is resynchronised and promoted back); runs `lakehouse failback`. Params ``pipeline``
(false: switch back without starting the pipeline) and ``sandbox`` (a DR drill, docs/dr.md)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from lakehouse.orchestration.dags import DEFAULT_ARGS, job_task, sandbox_param

with DAG(
    dag_id="region_failback",
    description="Fail back to the configured primary region",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},
    tags=["dr"],
    params={
        "pipeline": Param(True, type="boolean", description="start the pipeline in the primary once switched back"),
        "sandbox": sandbox_param(),
    },
) as dag:
    job_task("failback", "failback", "--json", flags={"--no-pipeline": "not params.pipeline"}, sandboxed=True)
