"""table_replication: one replication pass asia -> europe every minute, then a verification of the replica.

The continuous replicator (`lakehouse replicate --continuous`) holds the disaster RPO to its interval; this
DAG is the scheduled catch-up and proof, and runs one at a time (a pass is idempotent and resumable).
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
    params={"source": region_param("asia", "the source region"), "target": region_param("europe", "the replica's")},
) as dag:
    replicate = job_task(
        "replicate", "replicate", "--source", "{{ params.source }}", "--target", "{{ params.target }}", "--once"
    )
    verify = job_task(
        "verify", "replicate", "verify", "--source", "{{ params.source }}", "--target", "{{ params.target }}",
        "--versions", "1",
    )  # fmt: skip
    replicate >> verify
