"""``lakehouse import fhir DIR``: FHIR R4 Observation NDJSON (another hospital's Bulk Data export, or ours)
into the region's telemetry topic, so it takes the same bronze -> silver path as device messages and is
normalized by the ``fhir-r4-observation`` dialect template (``conf/dialects/``).

What is sent, and what is not (every line is accounted for in :class:`ImportResult`):
- a vital-sign Observation (category ``vital-signs``) is sent as is, with one extension added first:
  its per-device sequence number (``seq``), which FHIR does not carry. It is derived from the
  effective time, so importing the same file twice yields the same numbers and silver flags the repeats as
  duplicates;
- a line that is not a JSON object, or an Observation with no usable category, is sent too: silver
  quarantines it with its reason (malformed_json, missing_field, unknown_vital, ...), as for any device;
- well-formed resources that are not device measurements (other resource types, NEWS2 and other
  non-vital-sign Observations: the lakehouse recomputes its scores) are skipped and counted by type.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io import kafka

SEQ_EXTENSION = "https://healthlake.dev/fhir/StructureDefinition/device-sequence"
VITAL_SIGNS = "vital-signs"


@dataclass
class ImportResult:
    """Lines read, records sent to Kafka (kept for silver to judge) and resources skipped, by type."""

    files: int = 0
    lines: int = 0
    sent: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def reconciles(self) -> bool:
        return self.lines == self.sent + sum(self.skipped.values())


def _is_vital_sign(resource: dict[str, Any]) -> bool:
    for category in resource.get("category") or []:
        for coding in (category or {}).get("coding") or [] if isinstance(category, dict) else []:
            if isinstance(coding, dict) and coding.get("code") == VITAL_SIGNS:
                return True
    return False


def _has_category(resource: dict[str, Any]) -> bool:
    return bool(resource.get("category"))


def _epoch_ms(text: object) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


def classify(line: bytes) -> tuple[str, dict[str, Any] | None]:
    """``("send", resource)`` for a vital-sign Observation, ``("send", None)`` for a line silver must judge
    (not JSON, or an Observation without category), ``("skip:<Type>", None)`` for a resource that is not a
    device measurement."""
    try:
        resource = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "send", None
    if not isinstance(resource, dict):
        return "send", None
    kind = resource.get("resourceType")
    if kind != "Observation":
        return f"skip:{kind if isinstance(kind, str) else 'unknown'}", None
    if _is_vital_sign(resource):
        return "send", resource
    if not _has_category(resource):
        return "send", None  # silver decides (it may still be a measurement)
    return "skip:Observation (not vital-signs)", None


def with_sequence(resources: list[tuple[int, dict[str, Any]]]) -> dict[int, int]:
    """Per-device sequence numbers: effective time (ms) x 100 + rank among the device's Observations of
    that millisecond (ordered by code and id); a deterministic function of the data, not of the file."""
    keyed: dict[tuple[str, int], list[tuple[str, str, int]]] = {}
    for index, r in resources:
        device = str((r.get("device") or {}).get("reference", ""))
        ms = _epoch_ms(r.get("effectiveDateTime"))
        if ms is None:
            continue
        codings = (r.get("code") or {}).get("coding") or [{}]
        keyed.setdefault((device, ms), []).append((str(codings[0].get("code", "")), str(r.get("id", "")), index))
    seqs = {}
    for (_, ms), items in keyed.items():
        for rank, (_, _, index) in enumerate(sorted(items)):
            seqs[index] = ms * 100 + min(rank, 99)
    return seqs


def records(folder: Path, result: ImportResult) -> Iterator[tuple[str | None, bytes]]:
    """The Kafka records of every ``*.ndjson`` file in ``folder`` (key: the device reference), counting
    into ``result``. A file is read twice: once for the sequence numbers, once to send."""
    files = sorted(folder.glob("*.ndjson"))
    result.files = len(files)
    for path in files:
        observations: list[tuple[int, dict[str, Any]]] = []
        for index, (_, line) in enumerate(_lines_of(path)):
            _, resource = classify(line)
            if resource is not None:
                observations.append((index, resource))
        seqs = with_sequence(observations)
        for index, (_, line) in enumerate(_lines_of(path)):
            result.lines += 1
            verdict, resource = classify(line)
            if verdict.startswith("skip:"):
                result.skipped[verdict[5:]] += 1
                continue
            result.sent += 1
            if resource is None:
                yield None, line
                continue
            seq = seqs.get(index)
            if seq is not None:
                ext = {"url": SEQ_EXTENSION, "valueInteger": seq}
                resource = {**resource, "extension": [ext, *(resource.get("extension") or [])]}
            key = (resource.get("device") or {}).get("reference")
            yield (str(key) if key else None), json.dumps(resource, separators=(",", ":")).encode("utf-8")


def _lines_of(path: Path) -> Iterator[tuple[Path, bytes]]:
    with path.open("rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield path, line


def import_fhir(
    cfg: Config, region: RegionConfig, folder: Path, progress: Callable[[str], None] = print
) -> ImportResult:
    """Send the FHIR NDJSON files of ``folder`` to the region's telemetry topic; see the module docstring."""
    if not folder.is_dir():
        raise LakehouseError(f"{folder} is not a folder", fix="give the folder holding the *.ndjson files")
    if not any(folder.glob("*.ndjson")):
        raise LakehouseError(f"no *.ndjson files in {folder}", fix="give a FHIR Bulk Data export folder")
    topic = cfg.topics.telemetry
    kafka.ensure_topic(region, topic, cfg.topics, kafka.DEVICE)
    result = ImportResult()
    kafka.produce(region, topic, records(folder, result), progress_every=10_000, progress=progress)
    if not result.reconciles():  # pragma: no cover - a bookkeeping bug, never bad input
        raise LakehouseError(f"import bookkeeping does not reconcile: {result}")
    return result
