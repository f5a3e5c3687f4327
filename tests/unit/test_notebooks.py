"""The committed analyst notebooks: no outputs, a purpose, parameters, SQL and a chart; the helpers around them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lakehouse import notebook
from lakehouse.errors import LakehouseError

NOTEBOOKS = notebook.notebooks()


def test_there_is_a_notebook_per_question() -> None:
    names = [p.stem for p in NOTEBOOKS]
    for topic in (
        "catalog",
        "patients_at_risk",
        "alerts",
        "device_completeness",
        "time_travel",
        "data_quality",
        "model_monitoring",
        "dr_status",
    ):
        assert any(topic in n for n in names), topic


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_carries_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert notebook.has_outputs(nb) == [], f"{path.name} carries outputs: run `lakehouse notebook strip {path}`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_its_purpose_then_parameters_and_runs_sql_and_a_chart(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert len(first.source.split("\n\n", 1)[1]) > 200, "a one-paragraph purpose follows the title"
    params = nb.cells[1]
    assert params.cell_type == "code" and notebook.PARAMETERS_TAG in params.metadata.get("tags", [])
    for name in ("REGION", "DATE_FROM", "DATE_TO", "PROFILE", "CONNECT", "REQUIRE_ROWS"):
        assert f"{name} = " in params.source
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    sql_cells = [c for c in code if c.startswith("%%sql")]
    assert len(sql_cells) >= 3, "mostly SQL"
    assert any(".plot" in c or "plt." in c for c in code), "renders at least one chart"


def test_committed_notebook_with_outputs_is_caught_and_stripped(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("stream", text="hello")]
    cell.execution_count = 3
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    assert notebook.has_outputs(nbformat.read(path, as_version=4)) != []
    assert notebook.strip(path) is True
    assert notebook.has_outputs(nbformat.read(path, as_version=4)) == []
    assert notebook.strip(path) is False


def test_parameters_are_injected_right_after_the_parameters_cell() -> None:
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    out = notebook.with_parameters(nb, {"REGION": "europe", "REQUIRE_ROWS": True})
    assert len(out.cells) == len(nb.cells) + 1
    injected = out.cells[2]
    assert notebook.INJECTED_TAG in injected.metadata["tags"]
    assert injected.source == "REGION = 'europe'\nREQUIRE_ROWS = True"
    assert len(nb.cells) == len(out.cells) - 1  # the original is untouched


def test_date_range_defaults_to_the_last_seven_days_and_refuses_reversed_ranges() -> None:
    assert notebook.resolve_dates(None, None, today=date(2026, 11, 26)) == (date(2026, 11, 20), date(2026, 11, 26))
    assert notebook.resolve_dates("2026-01-01", "2026-01-31") == (date(2026, 1, 1), date(2026, 1, 31))
    with pytest.raises(LakehouseError, match="after DATE_TO"):
        notebook.resolve_dates("2026-02-01", "2026-01-31")


HISTORY = pd.DataFrame(
    {
        "version": [2, 1, 0],
        "timestamp": pd.to_datetime(["2026-11-26 09:30", "2026-11-26 07:45", "2026-11-26 07:00"]),
        "operation": ["MERGE", "MERGE", "CREATE TABLE"],
    }
)


@pytest.mark.parametrize(
    ("moment", "version", "says"),
    [
        (datetime(2026, 11, 26, 8, 0, tzinfo=UTC), 1, "version 1 (committed 2026-11-26 07:45:00) was current"),
        (datetime(2026, 11, 26, 9, 30, tzinfo=UTC), 2, "version 2"),
        (datetime(2026, 11, 26, 7, 0, tzinfo=UTC), 0, "version 0"),
        (datetime(2026, 11, 25, 8, 0, tzinfo=UTC), 1, "did not exist yet; its first version with data is 1"),
    ],
)
def test_version_as_of_picks_the_version_current_at_a_moment(moment: datetime, version: int, says: str) -> None:
    found, how = notebook.version_as_of(HISTORY, moment)
    assert found == version
    assert says in how
