"""region_failover: promote the secondary region, triggered by ops with a conf such as
``{"target_region": "europe", "mode": "planned"}`` (or ``"disaster"``); runs `lakehouse failover`."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from lakehouse.orchestration.dags import DEFAULT_ARGS, job_task

with DAG(
    dag_id="region_failover",
    description="Fail over to another region: planned (RPO 0) or disaster (primary unreachable)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},
    tags=["dr"],
    params={
        "target_region": Param("europe", type="string"),
        "mode": Param("planned", enum=["planned", "disaster"]),
    },
) as dag:
    job_task(
        "failover", "failover", "--target-region", "{{ params.target_region }}", "--mode", "{{ params.mode }}", "--json"
    )
