"""Table names map to region paths safely; anything else is refused."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T

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

    assert set(DATABASES) == {"bronze", "silver", "gold", "dq", "ops", "restricted"}
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


def _logged_stats(folder: Path) -> list[dict[str, Any]]:
    """The ``stats`` of every file added in the Delta log under ``folder``."""
    found = []
    for commit in sorted((folder / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action and action["add"].get("stats"):
                found.append(json.loads(action["add"]["stats"]))
    return found


@pytest.mark.parametrize("name", ["silver.vitals", "bronze.telemetry", "ops.replication_state"])
def test_delta_statistics_skip_identifying_columns_and_keep_the_rest(
    spark: SparkSession, tmp_path: Path, name: str
) -> None:
    """Files carry min/max statistics for data skipping, but no patient or device identifier reaches the log."""
    from lakehouse.io.delta import ensure_table
    from lakehouse.tables import IDENTIFYING_COLUMNS, SPECS, STATS_COLUMNS_PROPERTY, stats_columns

    spec = SPECS[name]
    identifying = IDENTIFYING_COLUMNS & {f.name for f in spec.schema.fields}
    assert dict(spec.properties)[STATS_COLUMNS_PROPERTY]
    location = str(tmp_path / "t")
    ensure_table(spark, location, spec)  # Delta accepts the property (reserved words such as `table` included)
    marker = "PATIENT-0042-secret"
    row: dict[str, Any] = {}
    for f in spec.schema.fields:  # one row: identifiers hold the marker, every other column a plain value
        kind = f.dataType
        if f.name in identifying:
            row[f.name] = marker.encode() if isinstance(kind, T.BinaryType) else marker
        elif isinstance(kind, T.StringType):
            row[f.name] = "x"
        elif isinstance(kind, T.TimestampType | T.TimestampNTZType):
            row[f.name] = datetime(2026, 12, 1, 12, 0)
        elif isinstance(kind, T.DateType):
            row[f.name] = date(2026, 12, 1)
        elif isinstance(kind, T.BooleanType):
            row[f.name] = True
        elif isinstance(kind, T.IntegralType):
            row[f.name] = 7
        elif isinstance(kind, T.NumericType):
            row[f.name] = 7.5
        elif isinstance(kind, T.BinaryType):
            row[f.name] = b"raw"
        else:
            row[f.name] = None
    spark.createDataFrame([row], spec.schema).write.format("delta").mode("append").save(location)
    (stats,) = _logged_stats(tmp_path / "t")
    assert stats["numRecords"] == 1
    assert marker not in json.dumps(stats)
    assert identifying.isdisjoint(stats["minValues"]) and identifying.isdisjoint(stats["nullCount"])
    ranged = [c for c in stats_columns(spec) if not isinstance(spec.schema[c].dataType, T.BooleanType)]
    assert set(ranged) <= set(stats["minValues"]) and ranged, "data skipping keeps the other columns"


def test_registering_a_table_created_before_the_stats_setting_brings_it_up_to_date(
    spark: SparkSession, tmp_path: Path
) -> None:
    import dataclasses

    from lakehouse.io.delta import ensure_table, register
    from lakehouse.tables import SPECS, STATS_COLUMNS_PROPERTY

    spec = dataclasses.replace(SPECS["gold.vitals_minute"], name="statsprobe.vitals_minute")
    location = str(tmp_path / "t")
    ensure_table(spark, location, dataclasses.replace(spec, properties=()))  # as an older release created it
    spark.sql("CREATE DATABASE IF NOT EXISTS statsprobe")
    try:
        register(spark, spec, location)
        held = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {spec.name}").collect()}
        assert held[STATS_COLUMNS_PROPERTY] == dict(spec.properties)[STATS_COLUMNS_PROPERTY]
        versions = spark.sql(f"DESCRIBE HISTORY delta.`{location}`").count()
        register(spark, spec, location)  # current now: no further commit
        assert spark.sql(f"DESCRIBE HISTORY delta.`{location}`").count() == versions
        register(spark, spec, location, comments=False)  # a replica's registration never commits
    finally:
        spark.sql("DROP DATABASE IF EXISTS statsprobe CASCADE")
