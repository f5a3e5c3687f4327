"""Table names map to region paths safely; anything else is refused."""

from __future__ import annotations

import pytest

from lakehouse.config import load_config
from lakehouse.errors import LakehouseError
from lakehouse.io.tables import checkpoint_uri, table_uri


def test_table_and_checkpoint_uris_live_in_the_region() -> None:
    cfg = load_config("local")
    assert table_uri(cfg.region("europe"), "silver.vitals") == "hdfs://127.0.0.1:29000/lakehouse/silver/vitals"
    assert checkpoint_uri(cfg.primary, "bronze.telemetry").endswith("/lakehouse/_checkpoints/bronze/telemetry")


@pytest.mark.parametrize("name", ["bronze", "../etc.passwd", "bronze.telemetry/../../x", "Gold.Alerts", ""])
def test_invalid_table_names_are_refused(name: str) -> None:
    with pytest.raises(LakehouseError, match="invalid table name"):
        table_uri(load_config("local").primary, name)


def test_every_table_and_column_is_explained_in_the_catalog() -> None:
    from lakehouse.tables import DATABASES, SPECS

    assert set(DATABASES) == {"bronze", "silver", "gold", "dq", "ops"}
    assert all(len(comment) > 30 for comment in DATABASES.values())
    for spec in SPECS.values():
        assert spec.name.split(".")[0] in DATABASES
        columns = {f.name for f in spec.schema.fields}
        assert set(spec.columns) == columns, f"{spec.name}: comments for {set(spec.columns) ^ columns}"
        commented = spec.commented_schema
        assert [f.name for f in commented.fields] == [f.name for f in spec.schema.fields]
        assert all(f.metadata["comment"] == spec.columns[f.name] for f in commented.fields)
        assert [f.dataType for f in commented.fields] == [f.dataType for f in spec.schema.fields]


def test_keys_and_units_are_in_the_comments() -> None:
    from lakehouse.tables import SPECS

    assert "Key part 1" in SPECS["gold.news2"].columns["patient_ref"]
    assert "Key part 2" in SPECS["gold.news2"].columns["observation_time"]
    assert "/min" in SPECS["gold.news2"].columns["heart_rate"]
    assert "Cel" in SPECS["gold.news2"].columns["temperature"]
    assert "UCUM" in SPECS["silver.vitals"].columns["unit"]


def test_sql_string_literals_escape_quotes_and_backslashes() -> None:
    from lakehouse.io.delta import sql_string

    assert sql_string("it's") == "'it\\'s'"
    assert sql_string("a\\b") == "'a\\\\b'"
