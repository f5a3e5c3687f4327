"""Every table of a region, as data: name, schema, partitioning and what one row means.

Names are the contract analysts and ops use; each region holds the same set on its own HDFS.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakehouse import audit
from lakehouse.config import RegionConfig
from lakehouse.ingest.bronze import BRONZE_SCHEMA
from lakehouse.ingest.gold import ALERTS_SCHEMA, NEWS2_SCHEMA, WINDOW_SCHEMA
from lakehouse.ingest.registry import REGISTRY_SCHEMA
from lakehouse.ingest.silver import ACCEPTED_MESSAGES_SCHEMA, QUARANTINE_SCHEMA, SILVER_VITALS_SCHEMA
from lakehouse.io import delta, tables
from lakehouse.io.delta import TableSpec
from lakehouse.ml.features import FEATURES_COMMENTS, FEATURES_SCHEMA, LABELS_SCHEMA
from lakehouse.ml.schemas import MODEL_DRIFT_COMMENTS, MODEL_DRIFT_SCHEMA, RISK_SCORES_COMMENTS, RISK_SCORES_SCHEMA
from lakehouse.quality.results import DQ_RESULTS_SCHEMA
from lakehouse.replication import state as replication_state
from lakehouse.security import encryption, pseudonyms

# ops.ingest_batches: one row per silver micro-batch; key (region, batch_id); records = accepted + quarantined + duplicate.
INGEST_BATCHES_SCHEMA = T.StructType(
    [
        T.StructField("region", T.StringType(), False),
        T.StructField("batch_id", T.LongType(), False),
        T.StructField("records", T.LongType(), False),
        T.StructField("messages_accepted", T.LongType(), False),
        T.StructField("messages_quarantined", T.LongType(), False),
        T.StructField("messages_duplicate", T.LongType(), False),
        T.StructField("measurements_accepted", T.LongType(), False),
        T.StructField("measurements_quarantined", T.LongType(), False),
        T.StructField("processed_time", T.TimestampType(), False),
    ]
)

# The catalog's databases, one per layer, with what each holds.
DATABASES: dict[str, str] = {
    "bronze": "Raw records exactly as received from Kafka, one table per source; append-only, nothing rejected.",
    "silver": "Validated, deduplicated, unit-normalised measurements, the quarantine of what was rejected, "
              "and the device registry.",
    "gold": "Analyst-facing facts: NEWS2 per patient observation, alert episodes, per-minute and per-hour vital "
            "aggregates. Times are UTC.",
    "dq": "Data-quality check results: one row per expectation per check run (micro-batch or partition).",
    "restricted": "Re-identification: patient pseudonym to raw identifier. Readable by the pipeline user only; "
                  "never replicated.",
    "ops": "Operational bookkeeping: per-micro-batch counts for reconciliation, cross-region replication state.",
}  # fmt: skip

# Column comments shared by several tables.
_KAFKA = {
    "kafka_topic": "Kafka topic the record was read from.",
    "kafka_partition": "Kafka partition of the record.",
    "kafka_offset": "Kafka offset of the record; (kafka_topic, kafka_partition, kafka_offset) identifies it.",
}
_VITAL_UNITS = {
    "respiratory_rate": "Respiratory rate, breaths per minute (UCUM /min, LOINC 9279-1); latest known value (carried forward).",
    "spo2": "Peripheral oxygen saturation, percent (UCUM %, LOINC 59408-5); latest known value (carried forward).",
    "fio2": "Fraction of inspired oxygen, percent (UCUM %, LOINC 3150-0); above 21 means supplemental oxygen.",
    "systolic_bp": "Systolic blood pressure, mm[Hg] (LOINC 8480-6); latest known value (carried forward).",
    "diastolic_bp": "Diastolic blood pressure, mm[Hg] (LOINC 8462-4); latest known value (carried forward).",
    "mean_arterial_pressure": "Mean arterial pressure, mm[Hg] (LOINC 8478-0); latest known value (carried forward).",
    "heart_rate": "Heart rate, beats per minute (UCUM /min, LOINC 8867-4); latest known value (carried forward).",
    "temperature": "Body temperature, degrees Celsius (UCUM Cel, LOINC 8310-5); latest known value (carried forward).",
}
_NEWS2_SCORES = {
    f"score_{p}": f"NEWS2 sub-score of {p.replace('_', ' ')}, 0-3; null when not measured."
    for p in ("respiratory_rate", "spo2", "air_or_oxygen", "systolic_bp", "heart_rate", "consciousness", "temperature")
}
_WINDOW = {
    "patient_ref": "Patient pseudonym (as in silver.vitals). Key part 1 of (patient_ref, vital, window_start).",
    "vital": "Vital name (conf/vitals.yaml), e.g. heart_rate. Key part 2.",
    "unit": "UCUM unit of min/max/mean/stddev, the vital's canonical unit.",
    "window_start": "Event-time window start, UTC, inclusive. Key part 3.",
    "window_end": "Event-time window end, UTC, exclusive.",
    "window_date": "UTC date of window_start (partition column).",
    "ward": "Ward of the patient's device at the latest measurement in the window.",
    "n": "Number of accepted measurements in the window.",
    "min": "Smallest value in the window, in unit.",
    "max": "Largest value in the window, in unit.",
    "mean": "Arithmetic mean in the window, in unit.",
    "stddev": "Sample standard deviation in the window, in unit; null for a single measurement.",
    "last_event_time": "Latest event time of a measurement in the window, UTC.",
    "updated_time": "When the pipeline last wrote this row, UTC (late data refines a window within the watermark).",
}

# Columns that identify a patient or a device, or hold free text that may quote one (a raw payload, a check's
# sample values). Delta keeps no statistics on them: min/max values in _delta_log would copy identifiers into
# every commit, replica and checkpoint, where no column permission reaches them.
IDENTIFYING_COLUMNS = frozenset(
    {"patient_ref", "pseudonym", "device_id", "key", "message_id", "alert_id", "source_value", "detail",
     "observed_value", "raw_value"}
)  # fmt: skip
STATS_COLUMNS_PROPERTY = "delta.dataSkippingStatsColumns"
_STATS_TYPES = (T.NumericType, T.DateType, T.TimestampType, T.TimestampNTZType, T.StringType)


_INDEXED = 32  # Delta's default delta.dataSkippingNumIndexedCols: statistics on the first 32 data columns


def stats_columns(spec: TableSpec) -> tuple[str, ...]:
    """The columns Delta keeps file statistics on (data skipping): of the first 32 data columns (Delta's default
    reach), those that do not identify anyone and have a type with min/max statistics."""
    data = [f for f in spec.schema.fields if f.name not in spec.partition_by][:_INDEXED]
    return tuple(f.name for f in data if f.name not in IDENTIFYING_COLUMNS and isinstance(f.dataType, _STATS_TYPES))


def _private_stats(spec: TableSpec) -> TableSpec:
    """``spec`` with :data:`STATS_COLUMNS_PROPERTY` set to its :func:`stats_columns` (set when a table is created)."""
    names = ",".join(f"`{c}`" for c in stats_columns(spec))
    return dataclasses.replace(spec, properties=(*spec.properties, (STATS_COLUMNS_PROPERTY, names)))


SPECS: dict[str, TableSpec] = {
    s.name: _private_stats(s)
    for s in (
        TableSpec("bronze.telemetry", BRONZE_SCHEMA, ("ingest_date",),
                  "Every Kafka record as received; one row per (topic, partition, offset); append-only.",
                  {
                      "key": "Kafka record key: the device id as the device sent it (may be null).",
                      "value": "Raw message bytes exactly as received (JSON in one of the dialects, or garbage).",
                      "topic": "Kafka topic. Key part 1 of (topic, partition, offset).",
                      "partition": "Kafka partition. Key part 2.",
                      "offset": "Kafka offset within the partition. Key part 3.",
                      "kafka_timestamp": "Kafka record timestamp (producer create time), UTC.",
                      "ingest_time": "When the bronze stream wrote the record, UTC.",
                      "ingest_date": "UTC date of ingest_time (partition column).",
                  }, encryption.table_properties("value", plaintext_footer=True)),
        TableSpec("silver.vitals", SILVER_VITALS_SCHEMA, ("event_date",),
                  "One row per accepted measurement; key (message_id, measurement_index); UCUM units, LOINC codes.",
                  {
                      "message_id": "Device message id (deduplication key). Key part 1 of (message_id, measurement_index).",
                      "measurement_index": "Position of the measurement within its message, from 0. Key part 2.",
                      "device_id": "Device that measured it.",
                      "device_type": "bedside_monitor, wearable or replay.",
                      "patient_ref": "Patient pseudonym (pt- + 32 hex digits; restricted.patient_identities maps it back).",
                      "ward": "Ward of the device at event_time, from silver.device_registry (SCD2).",
                      "event_time": "When the measurement was taken (device clock), UTC.",
                      "event_date": "UTC date of event_time (partition column).",
                      "seq": "Per-device message sequence number.",
                      "vital": "Vital name (conf/vitals.yaml), e.g. heart_rate, spo2.",
                      "loinc": "LOINC code of the vital.",
                      "value": "Measured value converted to the vital's canonical UCUM unit.",
                      "unit": "Canonical UCUM unit of value (/min, %, Cel, mm[Hg]).",
                      "source_code": "Vital code as the device sent it (e.g. an IEEE 11073 MDC code).",
                      "source_value": "Value as the device sent it, before conversion.",
                      "source_unit": "Unit as the device sent it, before conversion.",
                      "dialect": "Dialect template that parsed the message (conf/dialects/).",
                      **_KAFKA,
                      "ingest_time": "When the record reached bronze, UTC.",
                  }),
        TableSpec("silver.quarantine", QUARANTINE_SCHEMA, ("ingest_date",),
                  "Every rejected message (measurement_index -1) or measurement, with reason and raw payload.",
                  {
                      **_KAFKA,
                      "measurement_index": "Rejected measurement's position in its message; -1 for a whole message.",
                      "level": "message (the whole message was rejected) or measurement (one measurement).",
                      "reason": "Why, e.g. malformed_json, unknown_dialect, implausible_value (docs/pipeline.md).",
                      "detail": "Human detail of the reason (e.g. which field is missing).",
                      "dialect": "Dialect template that parsed the message, if any.",
                      "message_id": "Device message id, when it could be read.",
                      "device_id": "Device id, when it could be read.",
                      "event_time": "Event time of the message, UTC, when it could be read.",
                      "raw_value": "The raw Kafka record value, kept for replay after a fix.",
                      "ingest_time": "When the record reached bronze, UTC.",
                      "ingest_date": "UTC date of ingest_time (partition column).",
                  }, encryption.table_properties("raw_value", plaintext_footer=True)),
        TableSpec("silver.accepted_messages", ACCEPTED_MESSAGES_SCHEMA, ("event_date",),
                  "One row per accepted (non-duplicate) message: the deduplication index by message id and device seq.",
                  {
                      "message_id": "Device message id; unique in this table.",
                      "device_id": "Device id; (device_id, seq) is unique in this table too.",
                      "seq": "Per-device message sequence number.",
                      "patient_ref": "Patient pseudonym (pt- + 32 hex digits; restricted.patient_identities maps it back).",
                      "dialect": "Dialect template that parsed the message.",
                      "event_time": "When measured (device clock), UTC.",
                      "event_date": "UTC date of event_time (partition column).",
                      "measurements": "Number of measurements the message carried.",
                      **_KAFKA,
                      "ingest_time": "When the record reached bronze, UTC.",
                  }),
        TableSpec("silver.device_registry", REGISTRY_SCHEMA, (),
                  "Device to patient, ward and region assignments over time (SCD2); valid_to null is current.",
                  {
                      "device_id": "Device id. Key (device_id, valid_from).",
                      "device_type": "bedside_monitor, wearable or replay.",
                      "patient_ref": "Pseudonym of the patient the device is attached to during the validity interval.",
                      "ward": "Ward the device is in during the validity interval.",
                      "region": "Region (asia, europe) the device reports to.",
                      "valid_from": "Start of validity, UTC, inclusive.",
                      "valid_to": "End of validity, UTC, exclusive; null while current.",
                      "is_current": "True for the current assignment of the device.",
                  }),
        TableSpec("gold.vitals_minute", WINDOW_SCHEMA, ("window_date",),
                  "Per patient, vital and event-time minute: n, min, max, mean, stddev; late data policy in docs.",
                  _WINDOW),
        TableSpec("gold.vitals_hourly", WINDOW_SCHEMA, ("window_date",),
                  "Per patient, vital and event-time hour: n, min, max, mean, stddev; late data policy in docs.",
                  _WINDOW),
        TableSpec("gold.news2", NEWS2_SCHEMA, ("observation_date",),
                  "NEWS2 per final patient observation; key (patient_ref, observation_time); parameters present.",
                  {
                      "patient_ref": "Patient pseudonym (as in silver.vitals). Key part 1 of (patient_ref, observation_time).",
                      "observation_time": "Event time of the observation (its newest measurement), UTC. Key part 2.",
                      "observation_date": "UTC date of observation_time (partition column).",
                      "ward": "Ward of the patient's device at the observation.",
                      **_VITAL_UNITS,
                      "on_oxygen": "Explicit air/oxygen flag from the device; null when unknown (then inferred from fio2).",
                      "consciousness": "ACVPU letter; devices do not measure it, so null (assumed Alert, flagged).",
                      "spo2_scale": "SpO2 scale used, 1 or 2 (Scale 2 for confirmed hypercapnic respiratory failure).",
                      **_NEWS2_SCORES,
                      "oxygen_inferred": "True when air/oxygen was inferred from fio2 rather than stated.",
                      "consciousness_assumed": "True when consciousness was assumed Alert (not measured).",
                      "news2_total": "NEWS2 aggregate score, 0-20 (RCP 2017); null when no parameter was measured.",
                      "parameters_present": "NEWS2 parameters with a value in this observation (measured or carried forward).",
                      "parameters_missing": "NEWS2 parameters without a value in this observation (scored as absent).",
                      "any_parameter_3": "True when any single parameter scores 3 (urgent review trigger).",
                      "news2_risk": "Clinical risk band: low (0-4), low-medium (a single 3), medium (5-6), high (>=7).",
                      "last_event_time": "Event time of the observation's newest measurement, UTC (= observation_time).",
                      "computed_time": "When the pipeline computed this row, UTC (minus last_event_time = latency).",
                  },
                  # appended every half second: a log checkpoint (a few seconds here) every 100 commits, not 10
                  (("delta.enableChangeDataFeed", "true"), ("delta.checkpointInterval", "100"))),
        TableSpec("gold.alerts", ALERTS_SCHEMA, ("opened_date",),
                  "Alert episodes: NEWS2 medium (>=5), single_parameter (a 3), high (>=7), and sepsis_risk (the model); one "
                  "open per patient and level.",
                  {
                      "alert_id": "sha-256 of patient, level and opening observation; stable across retries. Key.",
                      "patient_ref": "Pseudonym of the patient the alert is about (the alerts.news2 topic carries the raw "
                                     "identifier, for clinical systems).",
                      "ward": "Ward of the patient when the alert opened.",
                      "level": "high (NEWS2 >= 7), medium (>= 5), single_parameter (any parameter scoring 3) or sepsis_risk "
                                "(the sepsis model's risk at or above its threshold).",
                      "status": "open or closed.",
                      "news2_total": "NEWS2 total of the observation that opened the alert.",
                      "triggering_parameters": "Parameters scoring 3 at opening (single_parameter alerts); risk_score, "
                                                "threshold and model version (sepsis_risk alerts).",
                      "opened_observation_time": "Time of the observation that opened the alert, UTC.",
                      "opened_event_time": "Latest device event time of the opening observation, UTC.",
                      "opened_time": "When the pipeline opened the alert, UTC (minus opened_event_time = time to alert).",
                      "latest_observation_time": "Latest observation of the patient seen while the alert was open, UTC.",
                      "latest_total": "NEWS2 total of that latest observation.",
                      "closed_observation_time": "Observation that closed the alert (level changed or below threshold), UTC.",
                      "closed_time": "When the pipeline closed the alert, UTC; null while open.",
                      "opened_date": "UTC date of opened_observation_time (partition column).",
                  }),
        TableSpec("gold.features_hourly", FEATURES_SCHEMA, ("hour_date",),
                  "Sepsis-model features, one row per patient-hour; key (patient_ref, hour_start); point-in-time: "
                  "a row uses only measurements before hour_start + 1 h.",
                  FEATURES_COMMENTS),
        TableSpec("gold.sepsis_labels", LABELS_SCHEMA, (),
                  "PhysioNet 2019 SepsisLabel per patient-hour (1 from 6 h before Sepsis-3 onset); key (patient_ref, "
                  "hour_start); joins gold.features_hourly.",
                  {
                      "patient_ref": "Patient pseudonym of the PhysioNet record id (as in silver.vitals). Key part 1 of (patient_ref, hour_start).",
                      "hour_start": "Start of the ICU hour, UTC: the replay origin + iculos hours. Key part 2.",
                      "iculos": "Hours since ICU admission as the source file counts them (ICULOS).",
                      "sepsis_label": "1 for hours at or after t_sepsis - 6 h of a septic patient, else 0.",
                  }),
        TableSpec("gold.risk_scores", RISK_SCORES_SCHEMA, ("hour_date",),
                  "Sepsis risk per patient-hour from the champion model; key (patient_ref, hour_start); live scorer "
                  "and batch scoring.", RISK_SCORES_COMMENTS),
        TableSpec("gold.model_drift", MODEL_DRIFT_SCHEMA, ("computed_date",),
                  "Model drift: PSI per feature and for the score, live window vs training data; key (computed_time, "
                  "model_version, feature).", MODEL_DRIFT_COMMENTS),
        TableSpec("dq.results", DQ_RESULTS_SCHEMA, ("checked_date",),
                  "One row per expectation per check run (micro-batch or partition); key (run_id, table_name, expectation).",
                  {
                      "run_id": "Check run: <query>:<region>:<batch id> in the pipeline, a UUID for `dq validate`. Key part 1.",
                      "region": "Region whose data was checked.",
                      "table_name": "Table the suite belongs to (conf/quality/<table>.yaml). Key part 2.",
                      "scope": "What was checked: 'stream batch <id>' or 'partition <column>=<date>'.",
                      "expectation": "Check name in the suite (also the quarantine reason and the metric label). Key part 3.",
                      "expectation_type": "great-expectations expectation type, e.g. expect_column_values_to_be_between.",
                      "severity": "warn (recorded), quarantine (failing rows to silver.quarantine) or block (batch not promoted).",
                      "success": "True when the expectation held on the checked rows.",
                      "action": "What the failure did: recorded, quarantined, blocked; none when it held.",
                      "observed_value": "What was observed: 'k of n unexpected' for row checks, else the aggregate (e.g. a max).",
                      "rows_checked": "Rows the expectation looked at (after its row filter); null for aggregate checks.",
                      "rows_failed": "Rows that failed it; null for aggregate checks.",
                      "checked_time": "When the check ran, UTC.",
                      "checked_date": "UTC date of checked_time (partition column).",
                  },
                  # a commit per micro-batch of five queries, the real-time one's every half second: a log checkpoint
                  # (a second or more here, which that batch waits for) every 100 commits, not 10
                  (("delta.checkpointInterval", "100"),)),
        TableSpec("ops.ingest_batches", INGEST_BATCHES_SCHEMA, (),
                  "Counts of every silver micro-batch; records = accepted + quarantined + duplicate messages.",
                  {
                      "region": "Region whose pipeline ran the batch. Key part 1 of (region, batch_id).",
                      "batch_id": "Structured Streaming micro-batch id of the silver query. Key part 2.",
                      "records": "Bronze records in the batch (= messages_accepted + messages_quarantined + messages_duplicate).",
                      "messages_accepted": "Messages accepted into silver.accepted_messages.",
                      "messages_quarantined": "Whole messages rejected into silver.quarantine.",
                      "messages_duplicate": "Messages recognised as duplicates (same message_id or device seq).",
                      "measurements_accepted": "Measurements written to silver.vitals.",
                      "measurements_quarantined": "Single measurements rejected into silver.quarantine.",
                      "processed_time": "When the batch was processed, UTC.",
                  }),
        TableSpec(pseudonyms.IDENTITIES_TABLE, pseudonyms.IDENTITIES_SCHEMA, (),
                  "One row per pseudonymized patient (key pseudonym): the pseudonym's raw patient identifier.",
                  pseudonyms.IDENTITIES_COMMENTS, encryption.table_properties("patient_ref")),
        TableSpec(replication_state.TABLE, replication_state.REPLICATION_STATE_SCHEMA, (),
                  "Replication state after the latest pass; one row per (table, source, target); lives in the target.",
                  replication_state.COLUMNS),
        TableSpec(audit.TABLE, audit.AUDIT_SCHEMA, ("event_date",),
                  "Append-only record of decisions taken on the platform's behalf; one row per decision (key event_id).",
                  audit.COLUMNS),
    )
}  # fmt: skip


def _ensure_databases(spark: SparkSession, region: RegionConfig) -> None:
    from lakehouse.io.hdfs import Hdfs

    Hdfs(region).secure_folders()  # before Spark creates any of them with the default (world-readable) mode
    for database, comment in DATABASES.items():
        delta.ensure_database(spark, database, f"{region.warehouse_uri}/{database}", comment)


def register_existing(spark: SparkSession, region: RegionConfig, skip: Collection[str] = ()) -> list[str]:
    """Catalog entries for the tables ``region`` already holds (a standby's replicas), without creating a table
    or committing to one (comments are left as replicated); returns their names. The ``skip``ped tables (already
    registered by an earlier call) are not looked at again."""
    if not skip:
        _ensure_databases(spark, region)
    found = [s for s in SPECS.values() if s.name not in skip and DeltaTable.isDeltaTable(spark, uri(region, s.name))]
    if found or not skip:
        _mark(spark, "")  # the catalog's entries change outside ensure_all: its next call checks every table again
    for spec in found:
        delta.register(spark, spec, uri(region, spec.name), comments=False)
    return [spec.name for spec in found]


def uri(region: RegionConfig, name: str) -> str:
    """Location of table ``name`` in ``region``."""
    return tables.table_uri(region, name)


ENSURED = "lakehouse.ensured"  # property of the ops database: the fingerprint of the last complete ensure_all
MARKER_DATABASE = "ops"


def fingerprint(region: RegionConfig, skip: Collection[str] = ()) -> str:
    """What :func:`ensure_all` makes true, as one hash: databases, and each table's name, location, schema,
    comments, partitioning and properties (the ``skip``ped tables left out)."""
    parts: list[object] = [region.warehouse_uri, sorted(DATABASES.items())]
    for spec in SPECS.values():
        if spec.name not in skip:
            parts.append([spec.name, uri(region, spec.name), spec.commented_schema.json(), spec.partition_by,
                          spec.comment, sorted(spec.properties)])  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _ensured(spark: SparkSession, region: RegionConfig, mark: str, skip: Collection[str]) -> bool:
    """The catalog says the last complete ensure_all had this fingerprint and still names every table, and each
    table's log still exists."""
    if not spark.catalog.databaseExists(MARKER_DATABASE):
        return False
    properties = spark.sql(f"DESCRIBE DATABASE EXTENDED {MARKER_DATABASE}").where("info_name = 'Properties'").first()
    if properties is None or f"({ENSURED},{mark})" not in str(properties["info_value"]):
        return False
    wanted = [s.name for s in SPECS.values() if s.name not in skip]
    named = {f"{db}.{r['tableName']}" for db in DATABASES for r in spark.sql(f"SHOW TABLES IN {db}").collect()}
    return set(wanted) <= named and all(delta.log_exists(spark, uri(region, name)) for name in wanted)


def _mark(spark: SparkSession, mark: str) -> None:
    spark.sql(f"ALTER DATABASE {MARKER_DATABASE} SET DBPROPERTIES ({delta.sql_string(ENSURED)} = '{mark}')")


def ensure_all(spark: SparkSession, region: RegionConfig, skip: Collection[str] = ()) -> list[str]:
    """The one place tables come to be: create the region's databases and every table that does not exist yet,
    register each in the session's catalog (the persistent metastore, in a session from `build_spark`) and
    bring table and column comments up to date. Idempotent; a run that changes nothing commits nothing.
    Tables in ``skip`` (registered already, e.g. by a standby) are left as they are.

    A complete pass leaves its :func:`fingerprint` on the catalog's ops database; a later call with the same
    fingerprint, whose tables are all in the catalog and still have their log, returns at once (a cold pass
    costs a job ~30 s on two cores). Registering outside this function (:func:`register_existing`) clears
    the mark. Returns the tables it checked and registered (none on the fast path)."""
    mark = fingerprint(region, skip)
    if _ensured(spark, region, mark, skip):
        return []
    _ensure_databases(spark, region)
    checked = []
    for spec in SPECS.values():
        if spec.name in skip:
            continue
        location = uri(region, spec.name)
        delta.ensure_table(spark, location, spec)
        delta.register(spark, spec, location)
        checked.append(spec.name)
    _mark(spark, mark)
    return checked
