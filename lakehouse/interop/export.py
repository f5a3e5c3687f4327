"""``lakehouse export fhir``: a FHIR R4 Bulk Data export (NDJSON, one file per resource type) of a region's
vital signs, NEWS2 scores, alerts and devices over an event-time range.

Layout of ``--out DIR`` (as a Bulk Data ``$export`` would hand it out)::

    Observation.ndjson   vital signs, blood-pressure panels, NEWS2 scores
    Device.ndjson        the devices that measured them
    Flag.ndjson          NEWS2 alert episodes
    manifest.json        Bulk Data manifest: transactionTime, request, output [{type, url, count}]

The resources are built by Spark and streamed to the driver partition by partition into a temporary
file per resource type, renamed into place, then recorded in the manifest; a rerun with the same range and tables at the same versions skips
the parts already done (resumable), and a different range starts over.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.ingest.contract import load_catalogue
from lakehouse.interop import fhir
from lakehouse.io.tables import table_uri

SOURCES = ("silver.vitals", "gold.news2", "gold.alerts")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: resource counts per type, and whether each part was (re)written or kept."""

    out: Path
    counts: dict[str, int]
    written: list[str]
    kept: list[str]
    source_versions: dict[str, int]


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _between(df: DataFrame, time_col: str, date_col: str, since: datetime, until: datetime) -> DataFrame:
    """Rows with ``since <= time_col < until`` (partition-pruned on ``date_col``)."""
    lo, hi = _utc(since), _utc(until)
    return df.filter(F.col(date_col).between(lo.date(), hi.date())).filter(
        (F.col(time_col) >= F.lit(lo.replace(tzinfo=None))) & (F.col(time_col) < F.lit(hi.replace(tzinfo=None)))
    )


def resources(
    spark: SparkSession, region: RegionConfig, since: datetime, until: datetime, key: bytes, versions: dict[str, int]
) -> dict[str, DataFrame]:
    """The export's DataFrames by resource type (column ``resource``), read at ``versions``."""

    def read(table: str) -> DataFrame:
        return spark.read.format("delta").option("versionAsOf", versions[table]).load(table_uri(region, table))

    vitals = _between(read("silver.vitals"), "event_time", "event_date", since, until)
    news2 = _between(read("gold.news2"), "observation_time", "observation_date", since, until)
    alerts = _between(read("gold.alerts"), "opened_observation_time", "opened_date", since, until)
    catalogue = load_catalogue()
    observations = fhir.vital_observations(vitals, catalogue, key).unionByName(fhir.news2_observations(news2, key))
    return {"Observation": observations, "Device": fhir.devices(vitals, key), "Flag": fhir.alert_flags(alerts, key)}


def _versions(spark: SparkSession, region: RegionConfig) -> dict[str, int]:
    from delta.tables import DeltaTable

    out = {}
    for table in SOURCES:
        uri = table_uri(region, table)
        if not DeltaTable.isDeltaTable(spark, uri):
            raise LakehouseError(f"{table} does not exist in {region.name} ({uri})", fix="run the pipeline first")
        out[table] = int(DeltaTable.forPath(spark, uri).history(1).first()["version"])  # type: ignore[index]
    return out


def export_fhir(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    since: datetime,
    until: datetime,
    out: Path,
    key: bytes,
    progress: Callable[[str], None] = print,
) -> ExportResult:
    """Write the Bulk Data export of ``region`` for event times in ``[since, until)`` into ``out``."""
    if _utc(until) <= _utc(since):
        raise LakehouseError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    request = {
        "region": region.name,
        "since": _utc(since).isoformat(),
        "until": _utc(until).isoformat(),
        "key": fhir_key_id(key),
    }
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    same = previous.get("request") == f"lakehouse export fhir {json.dumps(request, sort_keys=True)}"
    versions = previous["sourceVersions"] if same else _versions(spark, region)
    manifest: dict[str, Any] = {
        "transactionTime": previous.get("transactionTime") if same else datetime.now(UTC).isoformat(),
        "request": f"lakehouse export fhir {json.dumps(request, sort_keys=True)}",
        "requiresAccessToken": False,
        "sourceVersions": versions,
        "output": [o for o in previous.get("output", []) if same],
        "error": [],
    }
    done = {o["type"]: o for o in manifest["output"] if (out / o["url"]).is_file()}
    manifest["output"] = list(done.values())
    frames = resources(spark, region, since, until, key, versions)
    written, kept = [], []
    for kind, frame in frames.items():
        if kind in done:
            kept.append(kind)
            progress(f"  {kind}: kept ({done[kind]['count']} resources, already exported)")
            continue
        progress(f"  {kind}: exporting ...")
        final = out / f"{kind}.ndjson"
        tmp = final.with_suffix(".ndjson.tmp")
        count = 0
        with tmp.open("w", encoding="utf-8") as dst:  # streamed to the driver partition by partition
            for row in frame.toLocalIterator(prefetchPartitions=True):
                dst.write(row["resource"])
                dst.write("\n")
                count += 1
                if count % 100_000 == 0:
                    progress(f"  {kind}: {count} resources ...")
        os.replace(tmp, final)
        manifest["output"].append({"type": kind, "url": final.name, "count": count})
        _write_json(manifest_path, manifest)
        written.append(kind)
        progress(f"  {kind}: {count} resources -> {final}")
    _write_json(manifest_path, manifest)
    counts = {o["type"]: int(o["count"]) for o in manifest["output"]}
    return ExportResult(out, counts, written, kept, versions)


def fhir_key_id(key: bytes) -> str:
    """A short fingerprint of the pseudonymization key (not the key): exports under another key differ."""
    import hashlib

    return hashlib.sha256(b"healthlake-key-id|" + key).hexdigest()[:12]


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class Validation:
    """Resources checked against the FHIR R4 (4.0.1) models, by type, and the first problems found."""

    checked: dict[str, int]
    invalid: int
    problems: list[str]


def validate(out: Path, max_problems: int = 5) -> Validation:
    """Parse every resource of an export folder with the strict FHIR R4 models of ``fhirclient``
    (required elements, types, formats, no unknown elements)."""
    from fhirclient.models.device import Device
    from fhirclient.models.fhirabstractbase import FHIRValidationError
    from fhirclient.models.flag import Flag
    from fhirclient.models.observation import Observation

    models: dict[str, Any] = {"Observation": Observation, "Device": Device, "Flag": Flag}
    checked: dict[str, int] = {}
    invalid, problems = 0, list[str]()
    for path in sorted(out.glob("*.ndjson")):
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    data = json.loads(line)
                    kind = data.get("resourceType")
                    if kind not in models:
                        raise ValueError(f"unexpected resourceType {kind!r}")
                    models[kind](data, strict=True)
                    checked[kind] = checked.get(kind, 0) + 1
                except (ValueError, FHIRValidationError) as exc:
                    invalid += 1
                    if len(problems) < max_problems:
                        problems.append(f"{path.name}:{number}: {str(exc).splitlines()[0][:200]}")
    return Validation(checked, invalid, problems)
