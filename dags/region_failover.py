"""region_failover: promote the secondary region, triggered by ops with a conf such as
``{"target_region": "europe", "mode": "planned"}`` (or ``"disaster"``); runs `lakehouse failover`.
Params ``flowing_timeout`` (seconds to wait for the promoted pipeline to commit) and ``sandbox`` (a DR drill on a
sandbox profile of the deployment, docs/dr.md)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from lakehouse.orchestration.dags import DEFAULT_ARGS, job_task, region_param, sandbox_param

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
        "target_region": region_param("europe", "the region to promote"),
        "mode": Param("planned", enum=["planned", "disaster"]),
        "flowing_timeout": Param(120, type="number", minimum=1, description="seconds to wait for data to flow"),
        "sandbox": sandbox_param(),
    },
) as dag:
    job_task(
        "failover", "failover", "--target-region", "{{ params.target_region }}", "--mode", "{{ params.mode }}",
        "--flowing-timeout", "{{ params.flowing_timeout }}", "--json", sandboxed=True,
    )  # fmt: skip
