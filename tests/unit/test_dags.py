"""Every DAG file in dags/ imports cleanly and defines the DAGs the project expects (no scheduler needed)."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag

from lakehouse.config import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
# dag_id -> file that defines it; add a DAG here when you add it to dags/
EXPECTED = {"data_quality_daily": "data_quality_daily.py"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_file_imports_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    files = {p.name for p in DAGS_DIR.glob("*.py")}
    loaded = {d.fileloc.rsplit("/", 1)[-1] for d in dagbag.dags.values()}
    assert files <= loaded, f"files defining no DAG: {sorted(files - loaded)}"


@pytest.mark.parametrize(("dag_id", "filename"), sorted(EXPECTED.items()))
def test_expected_dag_exists_with_tasks(dagbag: DagBag, dag_id: str, filename: str) -> None:
    dag = dagbag.dags.get(dag_id)
    assert dag is not None, f"{dag_id} missing (dags: {sorted(dagbag.dag_ids)})"
    assert dag.fileloc.endswith(filename)
    assert dag.tasks, f"{dag_id} has no tasks"


def test_data_quality_daily_validates_yesterday_of_every_table_with_a_suite(dagbag: DagBag) -> None:
    dag = dagbag.dags.get("data_quality_daily")
    assert dag is not None
    tables = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "quality").glob("*.yaml"))
    assert sorted(t.task_id for t in dag.tasks) == sorted(f"validate_{t.replace('.', '_')}" for t in tables)
    for task in dag.tasks:
        command = str(task.bash_command)  # type: ignore[attr-defined]
        assert "jobs/data_quality.py" in command and "macros.ds_add(ds, -1)" in command
