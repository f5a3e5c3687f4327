"""The device data contract as data: the vital catalogue (LOINC, UCUM, plausibility) and dialect templates.

Both are YAML under ``conf/`` (``vitals.yaml``, ``dialects/*.yaml``) and loaded once into frozen objects;
normalization code is generic over them, so a new device dialect is a new template, not new code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from lakehouse.config import CONF_DIR
from lakehouse.errors import ConfigError

CONTRACT = "vitals.v1"
CONTRACT_SCHEMA = CONF_DIR / "contracts" / f"{CONTRACT}.schema.json"
HEADER_FIELDS = ("message_id", "device_id", "device_type", "patient_ref", "event_time", "seq")
REQUIRED_FIELDS = ("message_id", "device_id", "patient_ref", "event_time", "seq")
# a message of the contract is well under 1 KiB; a larger one is quarantined unparsed (never fed to the JSON parser)
MAX_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Vital:
    """One vital sign: canonical name, LOINC code, canonical UCUM unit, plausible range (inclusive)."""

    name: str
    loinc: str
    display: str
    unit: str
    low: float
    high: float


@dataclass(frozen=True)
class UnitRule:
    """A unit alias devices send, converted to the canonical UCUM ``to`` as value * factor + offset."""

    alias: str
    to: str
    factor: float
    offset: float


@dataclass(frozen=True)
class Catalogue:
    """Every vital the lakehouse accepts and every unit alias it can convert."""

    vitals: Mapping[str, Vital]
    units: Mapping[str, UnitRule]


@dataclass(frozen=True)
class FieldRule:
    """Where a header field comes from: a JSON path, or a constant; ``format`` for event times;
    ``strip_prefix`` removed from the value when present (e.g. ``Device/`` of a FHIR reference)."""

    path: str | None
    const: str | None
    format: Literal["iso8601", "epoch_millis"] | None
    strip_prefix: str | None = None


@dataclass(frozen=True)
class FieldMeasurement:
    """A measurement held in its own message field (``fields`` dialects): path, vital and unit are fixed."""

    path: str
    vital: str
    unit: str


@dataclass(frozen=True)
class MeasurementRule:
    """How a dialect carries measurements: an ``array`` of items, a ``single`` coded one, named ``fields``,
    or ``any`` of several rules (their measurements concatenated, those without a value left out: e.g. a
    FHIR Observation holds either one ``valueQuantity`` or blood-pressure ``component`` s).

    Array items name their vital, value and unit by item field name, or by a JSON path inside the item
    (``$.code.coding[0].code``); ``codes``/``units`` then map device codes to vitals and units."""

    kind: Literal["array", "single", "fields", "any"]
    path: str | None = None
    item_vital: str = "vital"
    item_value: str = "value"
    item_unit: str = "unit"
    code: str | None = None
    value: str | None = None
    unit: str | None = None
    codes: Mapping[str, str] | None = None
    units: Mapping[str, str] | None = None
    fields: tuple[FieldMeasurement, ...] = ()
    rules: tuple[MeasurementRule, ...] = ()


@dataclass(frozen=True)
class Dialect:
    """A device dialect: how to recognise its messages and map them onto the contract."""

    name: str
    match_path: str
    match_equals: str | None
    fields: Mapping[str, FieldRule]
    measurements: MeasurementRule


def _req(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] is None:
        raise ConfigError(f"{where}: {key} is missing")
    return data[key]


def load_catalogue(path: Path = CONF_DIR / "vitals.yaml") -> Catalogue:
    """Load the vital catalogue (``conf/vitals.yaml``)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    vitals = {}
    for name, v in _req(data, "vitals", str(path)).items():
        low, high = (float(x) for x in _req(v, "plausible", f"{path}: vitals.{name}"))
        vitals[name] = Vital(name, str(v["loinc"]), str(v.get("display", name)), str(v["unit"]), low, high)
    units = {
        str(alias): UnitRule(str(alias), str(u["to"]), float(u.get("factor", 1.0)), float(u.get("offset", 0.0)))
        for alias, u in _req(data, "units", str(path)).items()
    }
    for vital in vitals.values():
        if vital.unit not in units:
            raise ConfigError(f"{path}: canonical unit {vital.unit!r} of {vital.name} is not among the units")
    return Catalogue(vitals=vitals, units=units)


def _field_rule(value: Any, where: str) -> FieldRule:
    if isinstance(value, str):
        return FieldRule(path=value, const=None, format=None)
    if isinstance(value, dict) and ("path" in value or "const" in value):
        fmt = value.get("format")
        if fmt not in (None, "iso8601", "epoch_millis"):
            raise ConfigError(f"{where}: format must be iso8601 or epoch_millis, got {fmt!r}")
        prefix = value.get("strip_prefix")
        return FieldRule(
            path=value.get("path"),
            const=value.get("const"),
            format=fmt,
            strip_prefix=None if prefix is None else str(prefix),
        )
    raise ConfigError(f"{where}: expected a JSON path string or a mapping with path/const")


def _measurement_rule(m: Mapping[str, Any], where: str, catalogue: Catalogue) -> MeasurementRule:
    kind = _req(m, "kind", where)
    if kind == "any":
        rules = tuple(
            _measurement_rule(r, f"{where}.rules[{i}]", catalogue) for i, r in enumerate(_req(m, "rules", where))
        )
        if not rules or any(r.kind == "any" for r in rules):
            raise ConfigError(f"{where}: measurements.kind any needs a list of rules (none of kind any)")
        return MeasurementRule(kind="any", rules=rules)
    codes = {str(k): str(v) for k, v in (m.get("codes") or {}).items()}
    unknown = sorted(set(codes.values()) - set(catalogue.vitals))
    if unknown:
        raise ConfigError(f"{where}: codes map to unknown vitals {unknown}")
    if kind == "array":
        return MeasurementRule(
            kind="array",
            path=_req(m, "path", where),
            item_vital=m.get("vital", "vital"),
            item_value=m.get("value", "value"),
            item_unit=m.get("unit", "unit"),
            codes=codes or None,
            units={str(k): str(v) for k, v in (m.get("units") or {}).items()} or None,
        )
    if kind == "single":
        _req(m, "codes", where)
        return MeasurementRule(
            kind="single",
            code=_req(m, "code", where),
            value=_req(m, "value", where),
            unit=_req(m, "unit", where),
            codes=codes,
            units={str(k): str(v) for k, v in (m.get("units") or {}).items()},
        )
    if kind == "fields":
        fields = tuple(
            FieldMeasurement(str(f["path"]), str(f["vital"]), str(f["unit"])) for f in _req(m, "fields", where)
        )
        for f in fields:
            if f.vital not in catalogue.vitals or f.unit not in catalogue.units:
                raise ConfigError(f"{where}: field {f.path} names unknown vital {f.vital!r} or unit {f.unit!r}")
        return MeasurementRule(kind="fields", fields=fields)
    raise ConfigError(f"{where}: measurements.kind must be array, single, fields or any, got {kind!r}")


def load_dialects(folder: Path = CONF_DIR / "dialects", catalogue: Catalogue | None = None) -> tuple[Dialect, ...]:
    """Load every dialect template in ``folder`` (sorted by file name), checked against the catalogue."""
    catalogue = catalogue or load_catalogue()
    dialects = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        where = str(path)
        match = _req(data, "match", where)
        fields = {
            name: _field_rule(_req(data["fields"], name, where), f"{where}: fields.{name}") for name in HEADER_FIELDS
        }
        dialects.append(
            Dialect(
                name=str(_req(data, "name", where)),
                match_path=str(_req(match, "path", f"{where}: match")),
                match_equals=match.get("equals"),
                fields=fields,
                measurements=_measurement_rule(_req(data, "measurements", where), f"{where}: measurements", catalogue),
            )
        )
    names = [d.name for d in dialects]
    if len(set(names)) != len(names) or not dialects:
        raise ConfigError(f"{folder}: dialect names must be unique and at least one must exist, got {names}")
    return tuple(dialects)
