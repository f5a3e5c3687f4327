"""FHIR R4 resources from the lakehouse tables, as typed DataFrame -> DataFrame transforms.

Every function returns one column, ``resource``: a FHIR R4 resource as a JSON string, built with Spark
SQL (``to_json`` of a struct, null fields omitted), so an export scales with the cluster.

- vital signs (``silver.vitals``): one ``Observation`` per measurement (category vital-signs, LOINC code,
  UCUM ``valueQuantity``), except blood pressure: systolic and diastolic measured by the same device at
  the same time become ONE ``Observation`` (LOINC 85354-9) with two ``component`` s, as the FHIR
  vital-signs profile asks;
- NEWS2 (``gold.news2``): one ``Observation`` per scored observation, the total as ``valueInteger`` and
  one ``component`` per NEWS2 parameter (its sub-score, or a data-absent reason when not measured);
- alerts (``gold.alerts``): one ``Flag`` per alert episode (active while open);
- devices: one ``Device`` per device in the exported vital signs.

Patients and devices are referenced pseudonymously: ``Patient/<HMAC-SHA256(key, patient_ref)>``, computed
in Spark SQL (:func:`lakehouse.security.pseudonyms.hmac_sha256`), with the site key (never leaves the exporting
site). The tables' ``patient_ref`` is already a pseudonym under a key derived for that use, so an export's
references cannot be linked back to the tables without the site key.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.ingest.contract import Catalogue
from lakehouse.security.pseudonyms import hmac_sha256

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
NEWS2_PARAMETER = "https://healthlake.dev/fhir/CodeSystem/news2-parameter"
NEWS2_ALERT = "https://healthlake.dev/fhir/CodeSystem/news2-alert"
VITAL_SIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"

# The FHIR core vital-signs profile codes SpO2 as 2708-6; pulse oximetry's 59408-5 (our catalogue code)
# goes beside it, as the profile's oxygen-saturation example does.
EXTRA_CODINGS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "spo2": (("2708-6", "Oxygen saturation in Arterial blood"),)
}
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
BP_COMPONENTS = ("systolic_bp", "diastolic_bp")
# SNOMED CT (UK edition) concept for the NEWS2 total score (verify against your terminology server).
NEWS2_TOTAL = ("1104051000000101", "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score")
NEWS2_PARAMETERS: Mapping[str, str] = {
    "respiratory_rate": "Respiration rate score",
    "spo2": "Oxygen saturation score",
    "air_or_oxygen": "Air or oxygen score",
    "systolic_bp": "Systolic blood pressure score",
    "heart_rate": "Pulse score",
    "consciousness": "Consciousness score",
    "temperature": "Temperature score",
}
FLAG_TEXT: Mapping[str, str] = {
    "high": "NEWS2 7 or more: emergency response",
    "medium": "NEWS2 5 or more: urgent response",
    "single_parameter": "NEWS2 single parameter scoring 3: urgent ward-based review",
    "sepsis_risk": "Sepsis risk model at or above its alert threshold: review for sepsis",
}


def reference(kind: str, value: Column, key: bytes) -> Column:
    """A pseudonymous FHIR reference, e.g. ``{"reference": "Patient/<hmac>"}``."""
    return F.struct(F.concat(F.lit(f"{kind}/"), hmac_sha256(value, key)).alias("reference"))


def instant(ts: Column) -> Column:
    """A FHIR dateTime/instant in UTC with milliseconds (the session time zone is UTC)."""
    return F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")


def _coding(system: str, code: Column | str, display: Column | str) -> Column:
    as_col = lambda v: v if isinstance(v, Column) else F.lit(v)
    return F.struct(F.lit(system).alias("system"), as_col(code).alias("code"), as_col(display).alias("display"))


def _concept(codings: list[Column], text: Column | str) -> Column:
    return F.struct(
        F.array(*codings).alias("coding"), (text if isinstance(text, Column) else F.lit(text)).alias("text")
    )


def _quantity(value: Column, unit: Column) -> Column:
    return F.struct(
        F.round(value, 4).alias("value"), unit.alias("unit"), F.lit(UCUM).alias("system"), unit.alias("code")
    )


def _absent(code: str) -> Column:
    return _concept([_coding(DATA_ABSENT, code, code.replace("-", " ").capitalize())], code.replace("-", " "))


def _vital_signs() -> Column:
    return F.array(_concept([_coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")], "Vital Signs"))


def _vital_code(catalogue: Catalogue) -> Column:
    """CodeableConcept of the row's ``vital``: its LOINC code (plus the profile's extra codings)."""
    branches: Column | None = None
    for name, vital in catalogue.vitals.items():
        codings = [_coding(LOINC, vital.loinc, vital.display)]
        codings += [_coding(LOINC, code, display) for code, display in EXTRA_CODINGS.get(name, ())]
        concept = F.struct(
            F.array(*codings).alias("coding"), F.lit(vital.display).alias("text")
        )  # one struct type for every branch: codings arrays of the same element type
        cond = F.col("vital") == F.lit(name)
        branches = F.when(cond, concept) if branches is None else branches.when(cond, concept)
    assert branches is not None, "the vital catalogue is empty"
    return branches


def _observation(
    obs_id: Column, profile: str, category: Column, code: Column, subject: Column, effective: Column, **rest: Column
) -> Column:
    fields = [
        F.lit("Observation").alias("resourceType"),
        obs_id.alias("id"),
        F.struct(F.array(F.lit(profile)).alias("profile")).alias("meta"),
        F.lit("final").alias("status"),
        category.alias("category"),
        code.alias("code"),
        subject.alias("subject"),
        effective.alias("effectiveDateTime"),
    ]
    fields += [col.alias(name) for name, col in rest.items()]
    return F.to_json(F.struct(*fields))


def vital_observations(vitals: DataFrame, catalogue: Catalogue, key: bytes) -> DataFrame:
    """``silver.vitals`` rows -> FHIR vital-sign Observations (column ``resource``); one per measurement,
    blood pressure paired into one panel per (device, event time)."""
    single = vitals.filter(~F.col("vital").isin(*BP_COMPONENTS))
    singles = single.select(
        _observation(
            F.sha2(F.concat_ws("|", F.col("message_id"), F.col("measurement_index").cast("string")), 256),
            VITAL_SIGNS_PROFILE, _vital_signs(), _vital_code(catalogue), reference("Patient", F.col("patient_ref"), key),
            instant(F.col("event_time")),
            valueQuantity=_quantity(F.col("value"), F.col("unit")),
            device=reference("Device", F.col("device_id"), key),
        ).alias("resource")
    )  # fmt: skip
    bp = (
        vitals.filter(F.col("vital").isin(*BP_COMPONENTS))
        .groupBy("patient_ref", "device_id", "event_time")
        .agg(*(F.max(F.when(F.col("vital") == v, F.col("value"))).alias(v) for v in BP_COMPONENTS))
    )

    def component(vital: str) -> Column:
        spec = catalogue.vitals[vital]
        code = _concept([_coding(LOINC, spec.loinc, spec.display)], spec.display)
        present = F.struct(code.alias("code"), _quantity(F.col(vital), F.lit(spec.unit)).alias("valueQuantity"))
        absent = F.struct(code.alias("code"), _absent("unknown").alias("dataAbsentReason"))
        return F.when(F.col(vital).isNotNull(), F.to_json(present)).otherwise(F.to_json(absent))

    panels = bp.select(
        _observation(
            F.sha2(F.concat_ws("|", F.lit("bp"), F.col("device_id"), instant(F.col("event_time"))), 256),
            "http://hl7.org/fhir/StructureDefinition/bp", _vital_signs(),
            _concept([_coding(LOINC, *BP_PANEL)], "Blood pressure"), reference("Patient", F.col("patient_ref"), key),
            instant(F.col("event_time")),
            device=reference("Device", F.col("device_id"), key),
        ).alias("resource"),
        F.array(*(component(v) for v in BP_COMPONENTS)).alias("components"),
    )  # fmt: skip
    # the components differ in shape (value or data-absent reason): spliced in as JSON text
    spliced = F.concat(
        F.expr("substring(resource, 1, length(resource) - 1)"),
        F.lit(',"component":['),
        F.concat_ws(",", F.col("components")),
        F.lit("]}"),
    )
    return singles.unionByName(panels.select(spliced.alias("resource")))


def news2_observations(news2: DataFrame, key: bytes) -> DataFrame:
    """``gold.news2`` rows -> NEWS2 Observations (column ``resource``): the total and one component per
    parameter (its sub-score, or data-absent reason ``not-performed`` when the vital was not measured)."""
    components = []
    for name, display in NEWS2_PARAMETERS.items():
        code = _concept([_coding(NEWS2_PARAMETER, name, display)], display)
        score = F.col(f"score_{name}")
        present = F.struct(code.alias("code"), score.cast("int").alias("valueInteger"))
        absent = F.struct(code.alias("code"), _absent("not-performed").alias("dataAbsentReason"))
        components.append(F.when(score.isNotNull(), F.to_json(present)).otherwise(F.to_json(absent)))
    survey = F.array(_concept([_coding(OBSERVATION_CATEGORY, "survey", "Survey")], "Survey"))
    total = F.col("news2_total").cast("int")
    resource = _observation(
        F.sha2(F.concat_ws("|", F.lit("news2"), F.col("patient_ref"), instant(F.col("observation_time"))), 256),
        "http://hl7.org/fhir/StructureDefinition/Observation", survey,
        _concept([_coding(SNOMED, *NEWS2_TOTAL)], "NEWS2 total score"), reference("Patient", F.col("patient_ref"), key),
        instant(F.col("observation_time")),
        valueInteger=total,
        dataAbsentReason=F.when(total.isNull(), _absent("not-performed")),
    )  # fmt: skip
    spliced = F.concat(
        F.expr("substring(r, 1, length(r) - 1)"), F.lit(',"component":['), F.concat_ws(",", F.array(*components)),
        F.lit("]}"),
    )  # fmt: skip
    return news2.select(resource.alias("r"), *(F.col(f"score_{n}") for n in NEWS2_PARAMETERS)).select(
        spliced.alias("resource")
    )


def alert_flags(alerts: DataFrame, key: bytes) -> DataFrame:
    """``gold.alerts`` rows -> FHIR ``Flag`` resources (column ``resource``), id = the alert id."""
    text = F.lit(None).cast("string")
    for level, words in FLAG_TEXT.items():
        text = F.when(F.col("level") == level, F.lit(words)).otherwise(text)
    resource = F.struct(
        F.lit("Flag").alias("resourceType"),
        F.col("alert_id").alias("id"),
        F.when(F.col("status") == "open", F.lit("active")).otherwise(F.lit("inactive")).alias("status"),
        F.array(_concept([_coding(FLAG_CATEGORY, "clinical", "Clinical")], "Clinical")).alias("category"),
        _concept([_coding(NEWS2_ALERT, F.col("level"), text)], text).alias("code"),
        reference("Patient", F.col("patient_ref"), key).alias("subject"),
        F.struct(
            instant(F.col("opened_observation_time")).alias("start"), instant(F.col("closed_observation_time")).alias("end")
        ).alias("period"),
    )  # fmt: skip
    return alerts.select(F.to_json(resource).alias("resource"))


def devices(vitals: DataFrame, key: bytes) -> DataFrame:
    """The devices of ``vitals`` -> FHIR ``Device`` resources (column ``resource``), each with the patient
    it measured last."""
    latest = vitals.groupBy("device_id").agg(
        F.max_by("device_type", "event_time").alias("device_type"), F.max_by("patient_ref", "event_time").alias("patient_ref")
    )  # fmt: skip
    resource = F.struct(
        F.lit("Device").alias("resourceType"),
        hmac_sha256(F.col("device_id"), key).alias("id"),
        F.lit("active").alias("status"),
        F.struct(F.coalesce(F.col("device_type"), F.lit("unknown")).alias("text")).alias("type"),
        reference("Patient", F.col("patient_ref"), key).alias("patient"),
    )
    return latest.select(F.to_json(resource).alias("resource"))
