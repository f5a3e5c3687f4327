"""Every table of a region, as data: name, schema, partitioning and what one row means.

Names are the contract analysts and ops use; each region holds the same set on its own HDFS.
"""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakehouse.config import RegionConfig
from lakehouse.ingest.bronze import BRONZE_SCHEMA
from lakehouse.ingest.gold import ALERTS_SCHEMA, NEWS2_SCHEMA, WINDOW_SCHEMA
from lakehouse.ingest.registry import REGISTRY_SCHEMA
from lakehouse.ingest.silver import ACCEPTED_MESSAGES_SCHEMA, QUARANTINE_SCHEMA, SILVER_VITALS_SCHEMA
from lakehouse.io import delta, tables
from lakehouse.io.delta import TableSpec

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

SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in (
        TableSpec("bronze.telemetry", BRONZE_SCHEMA, ("ingest_date",),
                  "Every Kafka record as received; one row per (topic, partition, offset); append-only."),
        TableSpec("silver.vitals", SILVER_VITALS_SCHEMA, ("event_date",),
                  "One row per accepted measurement; key (message_id, measurement_index); UCUM units, LOINC codes."),
        TableSpec("silver.quarantine", QUARANTINE_SCHEMA, ("ingest_date",),
                  "Every rejected message (measurement_index -1) or measurement, with reason and raw payload."),
        TableSpec("silver.accepted_messages", ACCEPTED_MESSAGES_SCHEMA, ("event_date",),
                  "One row per accepted (non-duplicate) message: the deduplication index by message id and device seq."),
        TableSpec("silver.device_registry", REGISTRY_SCHEMA, (),
                  "Device to patient, ward and region assignments over time (SCD2); valid_to null is current."),
        TableSpec("gold.vitals_minute", WINDOW_SCHEMA, ("window_date",),
                  "Per patient, vital and event-time minute: n, min, max, mean, stddev; late data policy in docs."),
        TableSpec("gold.vitals_hourly", WINDOW_SCHEMA, ("window_date",),
                  "Per patient, vital and event-time hour: n, min, max, mean, stddev; late data policy in docs."),
        TableSpec("gold.news2", NEWS2_SCHEMA, ("observation_date",),
                  "NEWS2 per final patient observation; key (patient_ref, observation_time); parameters present.",
                  # appended every half second: a log checkpoint (a few seconds here) every 100 commits, not 10
                  (("delta.enableChangeDataFeed", "true"), ("delta.checkpointInterval", "100"))),
        TableSpec("gold.alerts", ALERTS_SCHEMA, ("opened_date",),
                  "NEWS2 alert episodes: medium (>=5), single_parameter (a 3), high (>=7); one open per patient and level."),
        TableSpec("ops.ingest_batches", INGEST_BATCHES_SCHEMA, (),
                  "Counts of every silver micro-batch; records = accepted + quarantined + duplicate messages."),
    )
}  # fmt: skip


def uri(region: RegionConfig, name: str) -> str:
    """Location of table ``name`` in ``region``."""
    return tables.table_uri(region, name)


def ensure_all(spark: SparkSession, region: RegionConfig) -> None:
    """Create every table of the region that does not exist yet and register all of them in the catalog."""
    for spec in SPECS.values():
        location = uri(region, spec.name)
        delta.ensure_table(spark, location, spec)
        delta.register(spark, spec, location)


def register_all(spark: SparkSession, region: RegionConfig) -> None:
    """Register the region's existing tables in this session's catalog (``SELECT * FROM gold.news2``)."""
    from delta.tables import DeltaTable

    for spec in SPECS.values():
        location = uri(region, spec.name)
        if DeltaTable.isDeltaTable(spark, location):
            delta.register(spark, spec, location)
