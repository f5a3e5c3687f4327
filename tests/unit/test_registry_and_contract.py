"""Device registry SCD2 on a real (local) Delta table; dialect templates and the vital catalogue load and validate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from lakehouse.errors import ConfigError
from lakehouse.ingest import contract
from lakehouse.ingest.registry import Assignment, register
from lakehouse.io.delta import ensure_table
from lakehouse.tables import SPECS

T0 = dt.datetime(2026, 11, 1, 0, 0)


def test_registry_keeps_history_and_is_idempotent(spark: SparkSession, tmp_path: Path) -> None:
    uri = str(tmp_path / "registry")
    ensure_table(spark, uri, SPECS["silver.device_registry"])
    first = [
        Assignment("dev-1", "wearable", "p1", "HOME", "asia", T0),
        Assignment("dev-2", "wearable", "p2", "ICU-1", "asia", T0),
    ]
    register(spark, uri, first)
    register(spark, uri, first)  # again: nothing changes
    assert spark.read.format("delta").load(uri).count() == 2

    moved = T0 + dt.timedelta(days=3)
    register(spark, uri, [Assignment("dev-1", "wearable", "p1", "WARD-B", "asia", moved)])
    rows = {
        (r["device_id"], r["ward"], r["valid_from"], r["valid_to"], r["is_current"])
        for r in spark.read.format("delta").load(uri).collect()
    }
    assert rows == {
        ("dev-1", "HOME", T0, moved, False),
        ("dev-1", "WARD-B", moved, None, True),
        ("dev-2", "ICU-1", T0, None, True),
    }


def test_dialects_and_catalogue_load() -> None:
    catalogue = contract.load_catalogue()
    assert catalogue.vitals["diastolic_bp"].loinc == "8462-4"  # not 8867-4 (heart rate), a known public bug
    assert catalogue.vitals["heart_rate"].loinc == "8867-4"
    assert {d.name for d in contract.load_dialects(catalogue=catalogue)} == {
        "vitals.v1", "ieee11073-monitor.v1", "acme-wearable.v2", "fhir-r4-observation",
    }  # fmt: skip
    assert all(v.unit in catalogue.units and catalogue.units[v.unit].to == v.unit for v in catalogue.vitals.values())


def test_a_template_naming_an_unknown_vital_is_refused(tmp_path: Path) -> None:
    src = yaml.safe_load((contract.CONF_DIR / "dialects" / "acme-wearable.yaml").read_text())
    src["measurements"]["fields"][0]["vital"] = "blood_glucose"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(src))
    with pytest.raises(ConfigError, match="unknown vital 'blood_glucose'"):
        contract.load_dialects(tmp_path)


def test_contract_schema_accepts_the_canonical_form() -> None:
    import json

    import jsonschema

    schema = json.loads(contract.CONTRACT_SCHEMA.read_text())
    jsonschema.validate(
        {"contract": "vitals.v1", "message_id": "m", "device_id": "d-1", "device_type": "wearable", "patient_ref": "p",
         "event_time": "2026-11-26T09:00:00Z", "seq": 0, "measurements": [{"vital": "spo2", "value": 97, "unit": "%"}]},
        schema,
    )  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"contract": "vitals.v1", "message_id": "m"}, schema)
