"""FHIR R4 out and back in, and Delta tables read by another client, on the real local stack.

A PhysioNet replay and simulated devices run through the pipeline in a sandbox shared with
test_pipeline.py; its export validates completely against the FHIR R4 models, resumes instead of redoing,
and, imported into a second sandbox with some bad resources, yields the same measurements under the
pseudonyms while the bad ones are quarantined with their reasons. The `deltalake` package (delta-rs, no
JVM) reads the tables straight from HDFS and agrees with Spark.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import pipeline
from lakehouse.config import PROJECT_ROOT, Config, load_config, write_sandbox_profile
from lakehouse.interop import export, fhir
from lakehouse.security import pseudonyms
from lakehouse.tables import uri
from tests.conftest import Filled, run_cli

pytestmark = pytest.mark.integration
MODELS = ("Observation", "Device", "Flag")
SINCE, UNTIL = datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Exported:
    cfg: Config
    key: bytes
    key_file: Path
    out: Path
    result: export.ExportResult


@pytest.fixture(scope="module")
def exported(filled: Filled, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """The export of the shared filled sandbox (tests/conftest.py: a PhysioNet replay and simulated devices)."""
    folder = tmp_path_factory.mktemp("interop")
    cfg = filled.cfg
    key_file = folder / "pseudonym.key"
    key_file.write_text(os.urandom(32).hex())
    key = pseudonyms.site_key(cfg, key_file)
    out = folder / "export"
    result = export.export_fhir(spark, cfg, cfg.primary, SINCE, UNTIL, out, key, progress=lambda _: None)
    yield Exported(cfg, key, key_file, out, result)


def pseudo(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def resources(out: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / f"{kind}.ndjson").read_text().splitlines()]


def test_the_export_validates_completely_and_counts_match_the_tables(spark: SparkSession, exported: Exported) -> None:
    region, out = exported.cfg.primary, exported.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert {o["type"]: o["count"] for o in manifest["output"]} == exported.result.counts
    by_kind = {kind: resources(out, kind) for kind in MODELS}
    checked = export.validate(out)  # every resource through the strict FHIR R4 models
    assert (checked.invalid, checked.problems) == (0, [])
    assert checked.checked == exported.result.counts == {kind: len(items) for kind, items in by_kind.items()}
    assert all(item["resourceType"] == kind for kind, items in by_kind.items() for item in items)

    vitals = spark.read.format("delta").load(uri(region, "silver.vitals"))
    news2 = spark.read.format("delta").load(uri(region, "gold.news2"))
    alerts = spark.read.format("delta").load(uri(region, "gold.alerts"))
    bp = vitals.filter(F.col("vital").isin(*fhir.BP_COMPONENTS))
    panels = bp.select("patient_ref", "device_id", "event_time").distinct().count()
    assert panels > 0
    assert len(by_kind["Observation"]) == vitals.count() - bp.count() + panels + news2.count()
    assert len(by_kind["Device"]) == vitals.select("device_id").distinct().count()
    assert len(by_kind["Flag"]) == alerts.count()
    patients = {r["patient_ref"] for r in vitals.select("patient_ref").distinct().collect()}
    text = (out / "Observation.ndjson").read_text()
    assert not any(p in text for p in patients)  # pseudonyms only
    subjects = {o["subject"]["reference"] for o in by_kind["Observation"]}
    assert subjects == {f"Patient/{pseudo(exported.key, p)}" for p in patients}


def test_a_rerun_resumes_and_a_missing_part_is_redone(spark: SparkSession, exported: Exported) -> None:
    cfg, out = exported.cfg, exported.out
    before = (out / "Observation.ndjson").read_bytes()
    again = export.export_fhir(spark, cfg, cfg.primary, SINCE, UNTIL, out, exported.key, progress=lambda _: None)
    assert (again.written, sorted(again.kept)) == ([], sorted(MODELS))
    (out / "Device.ndjson").unlink()
    third = export.export_fhir(spark, cfg, cfg.primary, SINCE, UNTIL, out, exported.key, progress=lambda _: None)
    assert third.written == ["Device"] and third.counts == exported.result.counts
    assert (out / "Observation.ndjson").read_bytes() == before


def bad_resources(now: datetime) -> list[str]:
    def obs(**over: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "resourceType": "Observation", "id": f"bad-{len(over)}-{sorted(over)}", "status": "final",
            "category": [{"coding": [{"system": fhir.OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": fhir.LOINC, "code": "8867-4"}]},
            "valueQuantity": {"value": 80, "unit": "/min", "system": fhir.UCUM, "code": "/min"},
            "subject": {"reference": "Patient/other-hospital-1"}, "device": {"reference": "Device/other-monitor-1"},
            "effectiveDateTime": now.isoformat(),
        }  # fmt: skip
        base.update(over)
        return {k: v for k, v in base.items() if v is not None}

    return [
        json.dumps(obs(id="bad-implausible", valueQuantity={"value": 900, "system": fhir.UCUM, "code": "/min"})),
        json.dumps(
            obs(
                id="bad-glucose",
                code={"coding": [{"system": fhir.LOINC, "code": "2339-0"}]},
                valueQuantity={"value": 5.4, "system": fhir.UCUM, "code": "mmol/L"},
            )
        ),
        json.dumps(obs(id="bad-no-subject", subject=None)),
        '{"resourceType": "Observation", "status": ',
    ]


def test_the_import_round_trips_the_export_and_quarantines_bad_resources(
    spark: SparkSession, exported: Exported, tmp_path: Path
) -> None:
    source = exported.cfg
    cfg_path = write_sandbox_profile(source.source, tmp_path, "fhir-in")
    cfg = load_config(str(cfg_path))
    folder = tmp_path / "incoming"
    folder.mkdir()
    for kind in MODELS:
        (folder / f"{kind}.ndjson").write_bytes((exported.out / f"{kind}.ndjson").read_bytes())
    (folder / "other-hospital.ndjson").write_text("\n".join(bad_resources(datetime.now(UTC) - timedelta(hours=1))))
    env = {**os.environ, "LAKEHOUSE_ENV": str(cfg_path), "PYTHONPATH": str(PROJECT_ROOT)}
    done = run_cli("import", "fhir", str(folder), env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "skipped Device" in done.stdout and "Flag" in done.stdout, done.stdout
    pipeline.run_once(spark, cfg, cfg.primary, progress=lambda _: None)

    rec = pipeline.reconcile(spark, cfg.primary)
    sent = int(done.stdout.split(" sent to the pipeline")[0].rsplit(" ", 1)[1])
    assert rec.bronze_rows == sent and rec.balanced and rec.duplicate == 0
    quarantine = spark.read.format("delta").load(uri(cfg.primary, "silver.quarantine"))
    reasons = Counter((r["level"], r["reason"]) for r in quarantine.collect())
    assert reasons == Counter({
        ("measurement", "implausible_value"): 1, ("measurement", "unknown_vital"): 1,
        ("message", "missing_field"): 1, ("message", "malformed_json"): 1,
    })  # fmt: skip

    # the importing site's silver pseudonymizes the export's references once more, under its own key
    here = pseudonyms.patient_key(cfg)

    def measurements(c: Config, key: bytes | None) -> Counter[tuple[Any, ...]]:
        rows = spark.read.format("delta").load(uri(c.primary, "silver.vitals")).collect()
        device = (lambda v: pseudo(key, v)) if key else (lambda v: v)
        patient = (lambda v: pseudonyms.pseudonym(pseudo(key, v), here)) if key else (lambda v: v)
        return Counter((patient(r["patient_ref"]), device(r["device_id"]), r["vital"], r["value"], r["event_time"])
                       for r in rows)  # fmt: skip

    imported = measurements(cfg, None)
    other = pseudonyms.pseudonym("other-hospital-1", here)
    imported -= Counter({k: n for k, n in imported.items() if k[0] == other})
    assert imported == measurements(source, exported.key)


def micros(times: pd.Series) -> pd.Series:
    """Microseconds since the epoch of naive-UTC or zone-aware timestamps."""
    stamps = pd.to_datetime(times)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[us]").astype("int64")


@pytest.mark.parametrize("table", ["silver.vitals", "gold.news2"])
def test_deltalake_reads_the_tables_from_hdfs_like_spark(spark: SparkSession, exported: Exported, table: str) -> None:
    location = uri(exported.cfg.primary, table)
    external = DeltaTable(location)
    from delta.tables import DeltaTable as SparkDeltaTable

    assert external.version() == SparkDeltaTable.forPath(spark, location).history(1).first()["version"]  # type: ignore[index]
    keys = {"silver.vitals": ["message_id", "measurement_index"], "gold.news2": ["patient_ref", "observation_time"]}[
        table
    ]
    value = {"silver.vitals": "value", "gold.news2": "news2_total"}[table]
    theirs = external.to_pandas(columns=[*keys, value])
    ours = spark.read.format("delta").load(location).select(*keys, value).toPandas()
    assert len(theirs) == len(ours) > 0
    if table == "gold.news2":  # compare instants, whatever time-zone annotation each reader gives them
        for frame in (theirs, ours):
            frame["observation_time"] = micros(frame["observation_time"])
    merged = theirs.merge(ours, on=keys, suffixes=("_theirs", "_ours"), validate="one_to_one")
    assert len(merged) == len(ours)
    assert merged[f"{value}_theirs"].fillna(-1).tolist() == merged[f"{value}_ours"].fillna(-1).tolist()
