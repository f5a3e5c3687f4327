"""Nightly retraining of the sepsis model: features -> validate -> train -> evaluate -> register -> promote -> score
-> drift.

Every task runs a jobs/ entry point (``job_task``) and is idempotent for its data interval: the features of the
interval replace that range of gold.features_hourly, a training of the same interval and feature version
reuses its MLflow run, registration reuses the version of that run, the gate only moves aliases, batch scoring
replaces the interval's rows of gold.risk_scores and drift appends one check. Tasks pass identifiers, never
objects: the training run is tagged with the data interval, and the later steps resolve the run and its model URI
(runs:/<id>/model) from MLflow by that tag; score and drift cover the hours the features task wrote (the same
params: the psv backfill's hours, else the data interval).

Params: ``region`` (default: the primary), ``psv`` (a PhysioNet archive or folder to backfill features and
labels from instead of silver.vitals, e.g. data/physionet2019-sample/training_setA_sample.tar.gz), ``patients``
(with ``psv``: only its first N patients by id; 0: all), ``max_iter`` (GBT trees of this run; 0: the profile's
``ml.max_iter``; a quick retrain, e.g. a smoke test of the stack, takes fewer).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param
from airflow.timetables.interval import CronDataIntervalTimetable

from lakehouse.orchestration.dags import DEFAULT_ARGS, NO_QUOTE, job_task, region_param

REGION = "{{ params.region }}"
INTERVAL = "{{ data_interval_start }}"  # the train step tags its MLflow run with it; later steps find the run by it
# the hours the features task wrote: the backfill's when psv is given, else the data interval
RANGE = ("--psv", "{{ params.psv }}", "--patients", "{{ params.patients }}",
         "--start", "{{ data_interval_start }}", "--end", "{{ data_interval_end }}")  # fmt: skip

with DAG(
    dag_id="nightly_retraining",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),  # daily; its interval is the previous day
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "region": region_param("", "region (empty: the primary)"),
        "psv": Param(
            "",
            type="string",
            pattern=NO_QUOTE,
            description="PhysioNet .tar.gz/.psv folder to backfill from (empty: silver)",
        ),
        "patients": Param(0, type="integer", minimum=0, description="with psv: only the first N patients (0: all)"),
        "max_iter": Param(0, type="integer", minimum=0, description="GBT trees of this run (0: the profile's)"),
    },
    tags=["ml", "sepsis"],
    doc_md=__doc__,
):
    features = job_task(
        "features", "build_features", "--region", REGION, "--psv", "{{ params.psv }}", "--patients", "{{ params.patients }}",
        "--start", "{{ data_interval_start }}", "--end", "{{ data_interval_end }}",
    )  # fmt: skip
    validate = job_task(
        "validate", "validate_features", "--region", REGION, "--run-id", "nightly_retraining:{{ run_id }}"
    )
    train = job_task("train", "train", "train", "--region", REGION, "--tag", f"interval={INTERVAL}",
                     "--tag", "airflow_run_id={{ run_id }}", "--max-iter", "{{ params.max_iter }}")  # fmt: skip
    evaluate = job_task("evaluate", "train", "evaluate", "--interval", INTERVAL)
    register = job_task("register", "train", "register", "--interval", INTERVAL)
    promote = job_task("promote", "train", "promote", "--region", REGION)
    score = job_task("score", "score", "score", "--region", REGION, *RANGE)
    drift = job_task("drift", "score", "drift", "--region", REGION, *RANGE)
    features >> validate >> train >> evaluate >> register >> promote >> score >> drift
