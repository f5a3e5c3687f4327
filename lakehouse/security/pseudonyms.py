"""Patient pseudonyms: raw patient identifiers stop at the silver boundary.

Devices send a raw patient reference (a hospital number). Bronze keeps it, as received. Every table from silver
on (``silver.vitals``, ``silver.accepted_messages``, ``silver.device_registry``, ``gold.*``, the features, labels
and scores built on them) holds the patient's pseudonym instead: ``pt-`` + the first 32 hex digits of
HMAC-SHA256(patient key, raw reference). The same patient gets the same pseudonym in every table and both regions,
so joins work; without the key nobody can compute or reverse it.

The key comes from a secret file: ``$LAKEHOUSE_PSEUDONYM_KEY_FILE``, else ``<state_dir>/secrets/pseudonym.key``
(generated once, mode 0600). It is never in code or committed config. The site key is not used directly:
each use derives its own key (:func:`purpose_key`), so the pseudonyms of the tables and the references of a FHIR
export (:mod:`lakehouse.interop.export`) cannot be linked to each other without the site key.

Re-identification is kept in its own restricted table, ``restricted.patient_identities`` (pseudonym -> raw
reference). Its folder is readable by the pipeline user only, it keeps no file statistics, and it is not
replicated to another region.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.security import credentials

KEY_ENV = "LAKEHOUSE_PSEUDONYM_KEY_FILE"
PREFIX = "pt-"
DIGITS = 32  # 128 bits of the HMAC: collisions are out of reach for any number of patients
PATIENT_PURPOSE = b"lakehouse/patient-pseudonym/v1"
IDENTITIES_TABLE = "restricted.patient_identities"

# restricted.patient_identities: one row per pseudonymized patient; key pseudonym; the way back to the raw reference.
IDENTITIES_SCHEMA = T.StructType(
    [
        T.StructField("pseudonym", T.StringType(), False),
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("first_seen_time", T.TimestampType(), False),
    ]
)
IDENTITIES_COMMENTS = {
    "pseudonym": "The patient_ref that silver and gold tables hold for this patient. Key.",
    "patient_ref": "The raw patient identifier as devices and the registry send it.",
    "first_seen_time": "When the pipeline first wrote this pair, UTC.",
}


def site_key(cfg: Config, key_file: Path | None = None) -> bytes:
    """The site's pseudonymization key: ``key_file``, else ``$LAKEHOUSE_PSEUDONYM_KEY_FILE``, else
    ``<state_dir>/secrets/pseudonym.key`` (created once, 32 random bytes, mode 0600). Never in config or code."""
    path = key_file or (Path(os.environ[KEY_ENV]) if os.environ.get(KEY_ENV) else None)
    if path is not None:
        if not path.is_file():
            raise LakehouseError(f"pseudonymization key file {path} does not exist", fix="give an existing key file")
        key = path.read_bytes().strip()
        if len(key) < 16:
            raise LakehouseError(f"pseudonymization key in {path} is shorter than 16 bytes", fix="use 32 random bytes")
        return key
    path = credentials.secret_file(cfg, "pseudonym.key")
    if not path.is_file():  # the pipeline starts its queries together: one creates it, all read the same key
        credentials.write_private(path, secrets.token_hex(32).encode(), exclusive=True)
    return path.read_bytes().strip()


def purpose_key(key: bytes, purpose: bytes) -> bytes:
    """A key for one use, derived from the site key (HMAC-SHA256(site key, purpose))."""
    return hmac.new(key, purpose, hashlib.sha256).digest()


def patient_key(cfg: Config) -> bytes:
    """The key of the patient pseudonyms in silver and gold."""
    return purpose_key(site_key(cfg), PATIENT_PURPOSE)


def pseudonym(patient_ref: str, key: bytes) -> str:
    """The pseudonym of one raw patient reference (the same as :func:`pseudonym_of` computes in Spark)."""
    return PREFIX + hmac.new(key, patient_ref.encode(), hashlib.sha256).hexdigest()[:DIGITS]


def keyed_id(value: str, key: bytes) -> str:
    """An id that names a patient's record without revealing it: HMAC-SHA256(key, value), 64 hex digits."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def hmac_sha256(value: Column, key: bytes) -> Column:
    """HMAC-SHA256 of ``value`` (a string column, UTF-8) under ``key``, as 64 lower-case hex digits
    (RFC 2104, in Spark SQL: no Python UDF); equal to Python's ``hmac.new(key, v, sha256).hexdigest()``."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = F.lit(bytes(b ^ 0x36 for b in key))
    outer = F.lit(bytes(b ^ 0x5C for b in key))
    first = F.unhex(F.sha2(F.concat(inner, F.encode(value, "UTF-8")), 256))
    return F.sha2(F.concat(outer, first), 256)


PATTERN = rf"^{PREFIX}[0-9a-f]{{{DIGITS}}}$"


def pseudonym_of(value: Column, key: bytes) -> Column:
    """The pseudonym of a raw patient reference column. Null stays null, and so does a value that is a pseudonym
    already (a risk alert on the alert topic names a patient the scorer could not re-identify): applying it
    twice changes nothing."""
    hashed = F.concat(F.lit(PREFIX), F.substring(hmac_sha256(value, key), 1, DIGITS))
    return F.when(value.isNull() | value.rlike(PATTERN), value).otherwise(hashed)


def pseudonymize(df: DataFrame, key: bytes, column: str = "patient_ref") -> DataFrame:
    """``df`` with the raw patient references in ``column`` replaced by their pseudonyms (same position)."""
    return df.withColumn(column, pseudonym_of(F.col(column), key))


def identities(df: DataFrame, key: bytes, column: str = "patient_ref") -> DataFrame:
    """The distinct (pseudonym, patient_ref) pairs of the raw references in ``column``: rows for
    ``restricted.patient_identities``."""
    raw = df.select(F.col(column).alias("patient_ref")).where(F.col("patient_ref").isNotNull()).distinct()
    return raw.select(pseudonym_of(F.col("patient_ref"), key).alias("pseudonym"), "patient_ref")


def new_identities(found: DataFrame, known: DataFrame) -> DataFrame:
    """The pairs of ``found`` whose pseudonym ``known`` (the identities table) does not hold yet, stamped now."""
    return found.join(known.select("pseudonym"), "pseudonym", "left_anti").withColumn(
        "first_seen_time", F.current_timestamp()
    )


def record_identities(spark: SparkSession, location: str, patient_refs: Iterable[str], key: bytes) -> None:
    """Add the raw references ``patient_refs`` that ``restricted.patient_identities`` at ``location`` lacks, with
    their pseudonyms (an idempotent MERGE, for one-off writers such as the device registry and a PhysioNet backfill;
    the silver stream appends per batch instead)."""
    from delta.tables import DeltaTable

    pairs = sorted({(pseudonym(ref, key), ref) for ref in patient_refs})
    if not pairs:
        return
    found = spark.createDataFrame(pairs, "pseudonym string, patient_ref string")
    (
        DeltaTable.forPath(spark, location)
        .alias("t")
        .merge(found.withColumn("first_seen_time", F.current_timestamp()).alias("s"), "t.pseudonym = s.pseudonym")
        .whenNotMatchedInsertAll()
        .execute()
    )


def raw_refs(known: DataFrame, names: set[str]) -> dict[str, str]:
    """The raw patient reference of each pseudonym in ``names`` that ``known`` (the identities table) holds."""
    if not names:
        return {}
    rows = known.where(F.col("pseudonym").isin(sorted(names))).select("pseudonym", "patient_ref").collect()
    return {r["pseudonym"]: r["patient_ref"] for r in rows}
