"""The device registry ``silver.device_registry``: which patient and ward a device serves, over time (SCD2)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import Config, RegionConfig
from lakehouse.io.delta import ensure_table

# silver.device_registry: one row per device assignment period; key (device_id, valid_from); valid_to null = current.
REGISTRY_SCHEMA = T.StructType(
    [
        T.StructField("device_id", T.StringType(), False),
        T.StructField("device_type", T.StringType(), True),
        T.StructField("patient_ref", T.StringType(), True),
        T.StructField("ward", T.StringType(), True),
        T.StructField("region", T.StringType(), True),
        T.StructField("valid_from", T.TimestampType(), False),
        T.StructField("valid_to", T.TimestampType(), True),
        T.StructField("is_current", T.BooleanType(), False),
    ]
)

ASSIGNMENT_SCHEMA = T.StructType(
    [
        T.StructField("device_id", T.StringType(), False),
        T.StructField("device_type", T.StringType(), True),
        T.StructField("patient_ref", T.StringType(), True),
        T.StructField("ward", T.StringType(), True),
        T.StructField("region", T.StringType(), True),
        T.StructField("effective_from", T.TimestampType(), False),
    ]
)
TRACKED = ("device_type", "patient_ref", "ward", "region")


@dataclass(frozen=True)
class Assignment:
    """A device assigned to a patient and ward from ``effective_from`` on."""

    device_id: str
    device_type: str
    patient_ref: str
    ward: str
    region: str
    effective_from: datetime


def staged_changes(current: DataFrame, incoming: DataFrame) -> DataFrame:
    """SCD2 staging: rows to MERGE so changed assignments close the old period and open a new one.

    ``merge_key`` is the device id for rows that match (close, or insert a new device) and null for
    the insert half of a change; unchanged assignments are dropped.
    """
    cur = current.filter("is_current").select(
        "device_id", F.lit(True).alias("has_current"), *[F.col(c).alias(f"cur_{c}") for c in TRACKED]
    )
    joined = incoming.join(cur, "device_id", "left")
    is_new = F.col("has_current").isNull()
    changed = F.expr(" OR ".join(f"NOT (cur_{c} <=> {c})" for c in TRACKED))
    relevant = joined.filter(is_new | changed)
    columns = ["device_id", *TRACKED, "effective_from"]
    keyed = relevant.select(F.col("device_id").alias("merge_key"), *columns)
    opens = relevant.filter(~is_new).select(F.lit(None).cast("string").alias("merge_key"), *columns)
    return keyed.unionByName(opens)


def register(spark: SparkSession, uri: str, assignments: Iterable[Assignment]) -> None:
    """Apply ``assignments`` to the registry at ``uri`` (idempotent: re-registering changes nothing)."""
    rows = [(a.device_id, a.device_type, a.patient_ref, a.ward, a.region, a.effective_from) for a in assignments]
    if not rows:
        return
    incoming = spark.createDataFrame(rows, ASSIGNMENT_SCHEMA).dropDuplicates(["device_id"])
    table = DeltaTable.forPath(spark, uri)
    staged = staged_changes(table.toDF(), incoming)
    changed = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c in TRACKED)
    (
        table.alias("t")
        .merge(staged.alias("s"), "t.device_id = s.merge_key AND t.is_current")
        .whenMatchedUpdate(condition=changed, set={"is_current": "false", "valid_to": "s.effective_from"})
        .whenNotMatchedInsert(
            values={
                **{c: f"s.{c}" for c in ("device_id", *TRACKED)},
                "valid_from": "s.effective_from",
                "valid_to": "CAST(NULL AS TIMESTAMP)",
                "is_current": "true",
            }
        )
        .execute()
    )


def register_assignments(cfg: Config, region: RegionConfig, rows: Iterable[Assignment]) -> int:
    """Open a Spark session and apply ``rows`` to the region's registry (creating the table if needed). The
    registry is silver: it holds each patient's pseudonym, and ``restricted.patient_identities`` the way back."""
    from lakehouse.io.hdfs import Hdfs
    from lakehouse.security import pseudonyms
    from lakehouse.session import build_spark
    from lakehouse.tables import SPECS, uri

    key = pseudonyms.patient_key(cfg)
    items = list(rows)
    named = [replace(a, patient_ref=pseudonyms.pseudonym(a.patient_ref, key)) for a in items]
    spark = build_spark(cfg, "device-registry")
    location = uri(region, "silver.device_registry")
    ensure_table(spark, location, SPECS["silver.device_registry"])
    ids = uri(region, pseudonyms.IDENTITIES_TABLE)
    Hdfs(region).secure_folders()  # restricted/ is the pipeline user's alone before the table is created in it
    ensure_table(spark, ids, SPECS[pseudonyms.IDENTITIES_TABLE])
    pseudonyms.record_identities(spark, ids, [a.patient_ref for a in items], key)
    register(spark, location, named)
    return len(items)
