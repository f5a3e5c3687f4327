"""FHIR R4 resources built by Spark: every one validates against the FHIR 4.0.1 models of `fhirclient`
(required elements, types, no unknown elements); the HMAC pseudonyms equal Python's; BP becomes one panel."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fhirclient.models.device import Device
from fhirclient.models.fhirabstractbase import FHIRValidationError
from fhirclient.models.flag import Flag
from fhirclient.models.observation import Observation
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.ingest import contract, silver
from lakehouse.ingest.contract import load_catalogue
from lakehouse.ingest.gold import ALERTS_SCHEMA, NEWS2_SCHEMA
from lakehouse.ingest.silver import SILVER_VITALS_SCHEMA
from lakehouse.interop import export, fhir, fhir_import
from lakehouse.security import pseudonyms
from tests.unit import test_silver

KEY = b"0123456789abcdef0123456789abcdef"
CATALOGUE = load_catalogue()
MODELS = {"Observation": Observation, "Device": Device, "Flag": Flag}
T0 = datetime(2026, 11, 25, 8, 0, 0)


def validated(rows: DataFrame) -> list[dict[str, Any]]:
    """Parse every resource with the strict FHIR R4 model of its type (raises on any violation)."""
    out = []
    for row in rows.collect():
        data = json.loads(row["resource"])
        MODELS[data["resourceType"]](data, strict=True)
        out.append(data)
    return out


def vitals(spark: SparkSession) -> DataFrame:
    base = {
        "device_type": "bedside_monitor", "ward": "ICU", "event_date": T0.date(), "seq": 1, "source_code": None,
        "source_value": None, "source_unit": None, "dialect": "vitals.v1", "kafka_topic": "t", "kafka_partition": 0,
        "kafka_offset": 0, "ingest_time": T0,
    }  # fmt: skip
    rows = [
        ("m1", 0, "dev-1", "patient-1", T0, "heart_rate", "8867-4", 88.0, "/min"),
        ("m1", 1, "dev-1", "patient-1", T0, "spo2", "59408-5", 95.0, "%"),
        ("m2", 0, "dev-1", "patient-1", T0, "systolic_bp", "8480-6", 121.0, "mm[Hg]"),
        ("m3", 0, "dev-1", "patient-1", T0, "diastolic_bp", "8462-4", 79.0, "mm[Hg]"),
        ("m4", 0, "dev-2", "patient-2", T0, "systolic_bp", "8480-6", 101.0, "mm[Hg]"),  # no diastolic
        ("m5", 0, "dev-2", "patient-2", T0, "temperature", "8310-5", 36.85, "Cel"),
    ]
    names = [
        "message_id",
        "measurement_index",
        "device_id",
        "patient_ref",
        "event_time",
        "vital",
        "loinc",
        "value",
        "unit",
    ]
    data = [{**base, **dict(zip(names, r, strict=True))} for r in rows]
    return spark.createDataFrame([tuple(d[f.name] for f in SILVER_VITALS_SCHEMA) for d in data], SILVER_VITALS_SCHEMA)


def test_hmac_in_spark_sql_equals_python_hmac(spark: SparkSession) -> None:
    values = ["patient-1", "ü-ñ", "", "x" * 300]
    long_key = b"k" * 100  # longer than the SHA-256 block: hashed first, as RFC 2104 says
    for key in (KEY, long_key):
        df = spark.createDataFrame([(v,) for v in values], "v string")
        got = [r["h"] for r in df.select(pseudonyms.hmac_sha256(F.col("v"), key).alias("h")).collect()]
        assert got == [hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in values]


def test_vital_observations_validate_and_pair_blood_pressure(spark: SparkSession) -> None:
    resources = validated(fhir.vital_observations(vitals(spark), load_catalogue(), KEY))
    assert len(resources) == 5  # HR, SpO2, temperature, and two BP panels (4 BP rows)
    by_code = {r["code"]["coding"][0]["code"]: r for r in resources if "valueQuantity" in r}
    assert set(by_code) == {"8867-4", "59408-5", "8310-5"}
    assert by_code["8867-4"]["valueQuantity"] == {"value": 88.0, "unit": "/min", "system": fhir.UCUM, "code": "/min"}
    assert [c["code"] for c in by_code["59408-5"]["code"]["coding"]] == ["59408-5", "2708-6"]
    assert by_code["8310-5"]["effectiveDateTime"] == "2026-11-25T08:00:00.000Z"
    for r in resources:
        assert r["category"][0]["coding"][0]["code"] == "vital-signs" and r["status"] == "final"
        pseudonym = hmac.new(KEY, b"patient-1", hashlib.sha256).hexdigest()
        assert r["subject"]["reference"] in {
            f"Patient/{pseudonym}",
            f"Patient/{hmac.new(KEY, b'patient-2', hashlib.sha256).hexdigest()}",
        }
        assert "patient-" not in json.dumps(r)  # no raw identifier anywhere
    panels = [r for r in resources if r["code"]["coding"][0]["code"] == "85354-9"]
    assert len(panels) == 2
    full = next(p for p in panels if all("valueQuantity" in c for c in p["component"]))
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"]) for c in full["component"]] == [
        ("8480-6", 121.0), ("8462-4", 79.0)
    ]  # fmt: skip
    half = next(p for p in panels if p is not full)
    assert half["component"][1]["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert len({r["id"] for r in resources}) == 5 and all(len(r["id"]) <= 64 for r in resources)


def test_news2_observations_carry_every_parameter_as_a_component(spark: SparkSession) -> None:
    values: dict[str, Any] = {f.name: None for f in NEWS2_SCHEMA}
    values.update(
        patient_ref="patient-1", observation_time=T0, observation_date=T0.date(), last_event_time=T0, computed_time=T0,
        score_respiratory_rate=3, score_spo2=1, score_air_or_oxygen=0, score_systolic_bp=None, score_heart_rate=2,
        score_consciousness=0, score_temperature=1, news2_total=7, oxygen_inferred=False, consciousness_assumed=True,
        parameters_present=[], parameters_missing=[], any_parameter_3=True,
    )  # fmt: skip
    empty = {**values, "observation_time": datetime(2026, 11, 25, 9), "news2_total": None}
    empty.update({f"score_{p}": None for p in fhir.NEWS2_PARAMETERS})
    df = spark.createDataFrame([tuple(v[f.name] for f in NEWS2_SCHEMA) for v in (values, empty)], NEWS2_SCHEMA)
    scored, unscored = sorted(validated(fhir.news2_observations(df, KEY)), key=lambda r: r["effectiveDateTime"])
    assert scored["valueInteger"] == 7 and "dataAbsentReason" not in scored
    parts = {c["code"]["coding"][0]["code"]: c for c in scored["component"]}
    assert list(parts) == list(fhir.NEWS2_PARAMETERS)
    assert parts["respiratory_rate"]["valueInteger"] == 3 and parts["heart_rate"]["valueInteger"] == 2
    assert parts["systolic_bp"]["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert sum(c.get("valueInteger", 0) for c in scored["component"]) == scored["valueInteger"]
    assert "valueInteger" not in unscored and unscored["dataAbsentReason"]["coding"][0]["code"] == "not-performed"


def test_alert_flags_and_devices_validate(spark: SparkSession) -> None:
    alert = ("a" * 64, "patient-1", "ICU", "high", "open", 8, [], T0, T0, T0, T0, 8, None, None, T0.date())
    closed = ("b" * 64, "patient-2", "ICU", "medium", "closed", 5, [], T0, T0, T0, T0, 3, T0, T0, T0.date())
    flags = validated(fhir.alert_flags(spark.createDataFrame([alert, closed], ALERTS_SCHEMA), KEY))
    assert {(f["id"][0], f["status"], "end" in f["period"]) for f in flags} == {
        ("a", "active", False),
        ("b", "inactive", True),
    }
    devices = validated(fhir.devices(vitals(spark), KEY))
    assert {d["id"] for d in devices} == {hmac.new(KEY, d, hashlib.sha256).hexdigest() for d in (b"dev-1", b"dev-2")}


def test_the_validator_rejects_a_broken_resource() -> None:
    """The checks above can fail: a missing status, a string value, a misspelt element and an impossible date
    are each a violation of FHIR R4."""
    good = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    Observation(good, strict=True)
    for bad in (
        {k: v for k, v in good.items() if k != "status"},
        {**good, "valueQuantity": {"value": "88"}},
        {**good, "valueQuantty": {"value": 88}},
        {**good, "effectiveDateTime": "2026-13-45"},
    ):
        with pytest.raises(FHIRValidationError):
            Observation(bad, strict=True)


def test_exported_vitals_come_back_through_the_fhir_dialect(spark: SparkSession, tmp_path: Path) -> None:
    """Round trip on the transforms: export -> importer records -> silver parse -> the same measurements,
    under the pseudonyms; a NEWS2 Observation and a Device are skipped, garbage goes on to be quarantined."""
    original = vitals(spark)
    lines = [r["resource"] for r in fhir.vital_observations(original, load_catalogue(), KEY).collect()]
    lines += [json.dumps({"resourceType": "Device", "id": "d"}), "{not json", json.dumps({"resourceType": "Observation",
              "status": "final", "category": [{"coding": [{"code": "survey"}]}], "code": {"text": "NEWS2"}})]  # fmt: skip
    (tmp_path / "Observation.ndjson").write_text("\n".join(lines) + "\n")
    result = fhir_import.ImportResult()
    payloads = [value for _, value in fhir_import.records(tmp_path, result)]
    assert (result.lines, result.sent, dict(result.skipped)) == (
        8, 6, {"Device": 1, "Observation (not vital-signs)": 1}
    ) and result.reconciles()  # fmt: skip
    dialects = contract.load_dialects(catalogue=CATALOGUE)
    rows = [(None, p, "t", 0, i, T0, T0) for i, p in enumerate(payloads)]
    bronze = spark.createDataFrame(rows, test_silver.BRONZE)
    messages = silver.parse_bronze(bronze, dialects, future_tolerance_s=300, max_age_s=86400 * 365 * 10)
    assert [r["reason"] for r in messages.filter(F.col("reason").isNotNull()).collect()] == ["malformed_json"]
    ok = messages.filter(F.col("reason").isNull())
    assert {r["dialect"] for r in ok.collect()} == {"fhir-r4-observation"}
    measured = silver.explode_measurements(ok, CATALOGUE).filter(F.col("reason").isNull())
    got = sorted(
        (r["patient_ref"], r["device_id"], r["vital"], r["value"], r["event_time"]) for r in measured.collect()
    )
    pseudo = lambda v: hmac.new(KEY, v.encode(), hashlib.sha256).hexdigest()
    want = sorted((pseudo(r["patient_ref"]), pseudo(r["device_id"]), r["vital"], r["value"], r["event_time"])
                  for r in original.collect())  # fmt: skip
    assert got == want  # BP panels split back into systolic and diastolic; the absent diastolic is no row
    assert messages.filter(F.col("seq").isNull()).count() == 1  # only the malformed line lacks a sequence
    # a second import of the same files sends the same records (ids and sequence numbers are functions of the
    # data), so silver's message-id deduplication drops the repeats
    assert [value for _, value in fhir_import.records(tmp_path, fhir_import.ImportResult())] == payloads


def test_export_validation_reports_invalid_resources_by_line(tmp_path: Path) -> None:
    good = {"resourceType": "Device", "id": "d1", "status": "active"}
    (tmp_path / "Device.ndjson").write_text(
        "\n".join(json.dumps(x) for x in (good, {**good, "status": 3}, {"resourceType": "Patient", "id": "p"})) + "\n"
    )
    result = export.validate(tmp_path)
    assert result.checked == {"Device": 1} and result.invalid == 2
    assert [p.split(":")[1] for p in result.problems] == ["2", "3"]
