"""Every file in dags/ imports cleanly into Airflow's DagBag (the dag-processor's own loader) and defines the
DAG named after it; the DAGs the project promises exist. Parsed once, in a fresh process with a throwaway
AIRFLOW_HOME, exactly as the dag-processor parses them (this checkout's package first on the path)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import jsonschema
import pytest

from lakehouse.config import CONF_DIR, PROJECT_ROOT
from lakehouse.orchestration.services import DAGS_DIR

# DAG ids the project promises, once the issue that builds each has landed (extend when adding a DAG)
EXPECTED_DAGS: set[str] = {
    "nightly_retraining", "data_quality_daily", "table_replication", "region_failover", "region_failback"
}  # fmt: skip

DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))

PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()},
    "dags": {d.dag_id: {"file": d.fileloc, "tasks": sorted(d.task_ids), "catchup": d.catchup,
                        "schedule": str(d.schedule),
                        "commands": {t.task_id: str(getattr(t, "bash_command", "")) for t in d.tasks},
                        "env": {t.task_id: getattr(t, "env", None) for t in d.tasks},
                        "params": {k: d.params.get_param(k).schema for k in d.params},
                        "defaults": {k: d.params.get_param(k).value for k in d.params}} for d in bag.dags.values()},
}))
"""


def _in_airflow(home: Path, script: str, *args: str) -> Any:
    """Run ``script`` with Airflow importable in a throw-away home; the JSON of its last stdout line."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result: dict[str, Any] = _in_airflow(tmp_path_factory.mktemp("airflow-home"), PARSE, str(DAGS_DIR))
    return result


EXIT_CODES = """
import json
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from lakehouse.orchestration.dags import JobOperator
out = {}
for code in (0, 1, 2, 3, 66):
    try:
        JobOperator(task_id="t", bash_command=f"exit {code}").execute(context={})
        out[code] = "success"
    except AirflowFailException:
        out[code] = "failed, no retry"
    except AirflowException:
        out[code] = "failed, retried"
print(json.dumps(out))
"""


def test_a_blocking_data_check_or_a_missing_input_fails_its_task_without_retry(tmp_path: Path) -> None:
    """Exit 3 (a blocking expectation) and 66 (a missing input) are final; any other failure keeps the retry."""
    assert _in_airflow(tmp_path, EXIT_CODES) == {
        "0": "success", "1": "failed, retried", "2": "failed, retried", "3": "failed, no retry",
        "66": "failed, no retry",
    }  # fmt: skip


def test_no_dag_file_fails_to_import(parsed: dict[str, Any]) -> None:
    assert parsed["errors"] == {}


def test_each_dag_file_defines_the_dag_named_after_it(parsed: dict[str, Any]) -> None:
    for path in DAG_FILES:
        dag = parsed["dags"].get(path.stem)
        assert dag is not None, f"{path.name} defines no DAG {path.stem!r} (found: {sorted(parsed['dags'])})"
        assert Path(dag["file"]).resolve() == path.resolve()
        assert dag["tasks"], f"{path.stem} has no tasks"
        assert dag["catchup"] is False, f"{path.stem}: catch-up must be off (a restart must not replay intervals)"
    assert len(parsed["dags"]) == len(DAG_FILES), "one DAG per file, named after it"


def test_the_promised_dags_exist(parsed: dict[str, Any]) -> None:
    assert EXPECTED_DAGS <= set(parsed["dags"]), sorted(EXPECTED_DAGS - set(parsed["dags"]))


def test_every_task_runs_a_jobs_entry_point(parsed: dict[str, Any]) -> None:
    """DAGs stay thin: each task runs one of jobs/ (through lakehouse.orchestration.dags.job_task)."""
    for dag_id, dag in parsed["dags"].items():
        for task, command in dag["commands"].items():
            assert "/jobs/" in command, f"{dag_id}.{task} does not run a jobs/ entry point: {command!r}"


def test_data_quality_daily_checks_every_suite_on_the_day_before_unless_a_date_is_given(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"]["data_quality_daily"]
    suites = sorted(p.stem for p in (CONF_DIR / "quality").glob("*.yaml"))
    assert dag["tasks"] == sorted(f"validate_{t.replace('.', '_')}" for t in suites)
    assert dag["schedule"] == "@daily"
    macros = SimpleNamespace(ds_add=lambda ds, days: (date.fromisoformat(ds) + timedelta(days=days)).isoformat())

    def render(template: str, day: str, tables: list[str] | None = None) -> str:  # as Airflow renders it, for a
        return jinja2.Template(template).render(  # run of logical date 2026-03-01
            params={"date": day, "region": "", "tables": tables or []},
            ds="2026-03-01",
            run_id="scheduled__x",
            macros=macros,
        )

    for table in suites:
        command = dag["commands"][f"validate_{table.replace('.', '_')}"]
        argv = shlex.split(render(command, ""))
        assert argv[1].endswith("/jobs/data_quality.py") and argv[argv.index("--table") + 1] == table
        assert argv[argv.index("--date") + 1] == "2026-02-28"
        assert shlex.split(render(command, "2025-12-31"))[argv.index("--date") + 1] == "2025-12-31"
        assert argv[argv.index("--run-id") + 1] == "data_quality_daily:scheduled__x"
        # the tables param: a task of a table left out ends as skipped (exit 99) without starting the job
        assert render(command, "", [table]) == render(command, "")
        other = next(t for t in suites if t != table)
        assert render(command, "", [other]) == "exit 99"


def test_nightly_retraining_scores_and_checks_drift_over_the_hours_the_features_task_wrote(
    parsed: dict[str, Any],
) -> None:
    dag = parsed["dags"]["nightly_retraining"]
    assert {"features", "train", "promote", "score", "drift"} <= set(dag["tasks"])
    features = shlex.split(dag["commands"]["features"])
    for task in ("score", "drift"):
        argv = shlex.split(dag["commands"][task])
        assert argv[1].endswith("/jobs/score.py") and argv[2] == task
        for flag in ("--psv", "--patients", "--start", "--end"):  # the features task's templates: the same hours
            assert argv[argv.index(flag) + 1] == features[features.index(flag) + 1], flag
    train = shlex.split(jinja2.Template(dag["commands"]["train"]).render(params={"region": "", "max_iter": 10}))
    assert train[1].endswith("/jobs/train.py") and train[train.index("--max-iter") + 1] == "10"


HOSTILE = "x'; touch /tmp/pwned; echo '"


def test_no_param_value_can_break_out_of_a_commands_quoting(parsed: dict[str, Any]) -> None:
    """A param rendered into a command lands inside shell single quotes: each one's schema (what Airflow checks a
    triggered run's conf against) refuses a value with a quote; one that is not a string is typed."""
    import re

    for dag_id, dag in parsed["dags"].items():
        rendered = {m for c in dag["commands"].values() for m in re.findall(r"\{\{[^}]*params\.(\w+)", c)}
        assert rendered <= set(dag["params"]), (dag_id, rendered)
        for name in rendered:
            schema = dag["params"][name]
            if schema.get("type") in ("string", None) and "enum" not in schema:
                with pytest.raises(jsonschema.ValidationError):
                    jsonschema.validate(HOSTILE, schema)
            else:
                assert schema.get("type") in ("integer", "number", "boolean") or "enum" in schema, (dag_id, name)


def test_region_dags_run_on_a_named_sandbox_through_the_environment(parsed: dict[str, Any]) -> None:
    """region_failover and region_failback pass their sandbox param as $LAKEHOUSE_SANDBOX (never through the
    shell), a bare name only; failback's pipeline param drops the pipeline start; failover's timeout reaches it."""
    for dag_id in ("region_failover", "region_failback"):
        dag = parsed["dags"][dag_id]
        (task,) = dag["tasks"]
        assert dag["env"][task] == {"LAKEHOUSE_SANDBOX": "{{ params.sandbox }}"}
        schema = dag["params"]["sandbox"]
        jsonschema.validate("", schema)
        jsonschema.validate("failover-1a2b3c4d", schema)
        for bad in ("../../etc/x", "/abs/path", HOSTILE, "a/b"):
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(bad, schema)
    failback = parsed["dags"]["region_failback"]["commands"]["failback"]
    assert shlex.split(jinja2.Template(failback).render(params={"pipeline": False}))[2:] == ["--json", "--no-pipeline"]
    assert shlex.split(jinja2.Template(failback).render(params={"pipeline": True}))[2:] == ["--json"]
    failover = parsed["dags"]["region_failover"]["commands"]["failover"]
    argv = shlex.split(
        jinja2.Template(failover).render(params={"target_region": "europe", "mode": "disaster", "flowing_timeout": 300})
    )
    assert argv[1].endswith("/jobs/failover.py")
    assert argv[2:] == ["--target-region", "europe", "--mode", "disaster", "--flowing-timeout", "300", "--json"]


def test_table_replication_follows_the_primary_in_force_unless_told(parsed: dict[str, Any]) -> None:
    """The scheduled run's params are empty: the job reads the region state for its direction (after a failover
    it replicates from europe); a triggered run's source and target reach the job as given."""
    dag = parsed["dags"]["table_replication"]
    assert dag["defaults"]["source"] == dag["defaults"]["target"] == ""
    for task in ("replicate", "verify"):
        command = dag["commands"][task]
        argv = shlex.split(jinja2.Template(command).render(params={"source": "", "target": ""}))
        assert argv[1].endswith("/jobs/replicate.py")
        assert argv[argv.index("--source") + 1] == "" and argv[argv.index("--target") + 1] == ""
        told = shlex.split(jinja2.Template(command).render(params={"source": "europe", "target": "asia"}))
        assert told[told.index("--source") + 1] == "europe" and told[told.index("--target") + 1] == "asia"
