"""Every DAG file of dags/ imports cleanly into a DagBag (Airflow 3) and wires only jobs/ entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR), safe_mode=False)


def test_every_dag_file_imports_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    files = {Path(d.fileloc).name for d in dagbag.dags.values()}
    assert files == {p.name for p in DAG_FILES}, "a file of dags/ defines no DAG"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_tasks_run_jobs_entry_points(dagbag: Any, path: Path) -> None:
    dags = [d for d in dagbag.dags.values() if Path(d.fileloc) == path]
    assert dags, f"{path.name} defines no DAG"
    for dag in dags:
        assert dag.tasks, f"{dag.dag_id} has no task"
        for task in dag.tasks:
            command = getattr(task, "bash_command", "")
            assert "/jobs/" in command, f"{dag.dag_id}.{task.task_id} does not run a jobs/ entry point"
