"""Hostile table names given to the CLI (path traversal, SQL fragments, control characters) are refused with
one clear line before any file is read, any service is contacted or any statement is built."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config import load_config
from lakehouse.errors import LakehouseError
from lakehouse.io.tables import check_table_names, table_uri
from lakehouse.quality import suites
from lakehouse.tables import SPECS
from tests.conftest import run_cli

HOSTILE = [
    "../../etc/passwd",
    "silver/../../../tmp/x",
    "silver.vitals; DROP TABLE gold.news2",
    "gold.news2' OR '1'='1",
    "silver.vitals\n",  # a trailing newline: `$` alone would let it through
    "silver.vi\x00tals",
    "/abs/path.yaml",
    "Silver.Vitals",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_malformed_table_name_never_becomes_a_location(name: str) -> None:
    with pytest.raises(LakehouseError, match="invalid table name"):
        table_uri(load_config("local").primary, name)
    with pytest.raises(LakehouseError, match="invalid table name"):
        check_table_names(["silver.vitals", name], SPECS)


def test_a_well_formed_but_unknown_table_is_refused_with_the_known_ones() -> None:
    with pytest.raises(LakehouseError, match=r"unknown table\(s\) \['silver.nope'\]") as err:
        check_table_names(["silver.vitals", "silver.nope"], SPECS)
    assert err.value.fix is not None and "gold.news2" in err.value.fix
    check_table_names(["silver.vitals", "gold.news2"], SPECS)  # known: accepted
    check_table_names(None, SPECS)  # none given: all


def test_a_suite_name_cannot_reach_outside_the_suites_folder(tmp_path: Path) -> None:
    suites_dir = tmp_path / "suites"
    suites_dir.mkdir()
    (tmp_path / "outside.yaml").write_text("table: outside\nexpectations: []\n")
    with pytest.raises(LakehouseError, match="invalid table name"):
        suites.load_suite(suites_dir, "../outside")


@pytest.mark.parametrize(
    "command",
    [
        ["dq", "validate", "--table", "../../etc/passwd"],
        ["maintain", "--table", "silver.vitals; DROP TABLE gold.news2"],
        ["replicate", "--target", "europe", "--once", "--table", "../../../tmp/x"],
        ["replicate", "verify", "--target", "europe", "--table", "gold.news2' OR '1'='1"],
    ],
)
def test_the_cli_refuses_a_hostile_table_name_in_one_line(command: list[str]) -> None:
    result = run_cli(*command, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "invalid table name" in result.stderr and "Traceback" not in result.stderr
