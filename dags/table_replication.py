"""table_replication: one replication pass from the primary in force to the other region every minute, then a
verification of the replica.

The continuous replicator (`lakehouse replicate --continuous`) holds the disaster RPO to its interval; this
DAG is the scheduled catch-up and proof, and runs one at a time (a pass is idempotent and resumable). Its
source and target params are empty by default: each run reads the region state, so after a failover to europe
it replicates europe -> asia (and fails, loudly, while asia is down or its tables diverged: `region_failback`
resynchronises them). A run with source and target set replicates that way (a pass from a region that is not
the primary in force is refused).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from lakehouse.orchestration.dags import DEFAULT_ARGS, job_task, region_param

with DAG(
    dag_id="table_replication",
    description="Replicate the configured Delta tables to the secondary region and verify the replica",
    schedule=timedelta(minutes=1),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["dr", "replication"],
    params={
        "source": region_param("", "the source region (empty: the primary in force)"),
        "target": region_param("", "the replica's region (empty: the other one)"),
    },
) as dag:
    replicate = job_task(
        "replicate", "replicate", "--source", "{{ params.source }}", "--target", "{{ params.target }}", "--once"
    )
    verify = job_task(
        "verify", "replicate", "verify", "--source", "{{ params.source }}", "--target", "{{ params.target }}",
        "--versions", "1",
    )  # fmt: skip
    replicate >> verify
