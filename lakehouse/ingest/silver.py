"""Bronze -> silver transforms: parse, recognise the dialect, normalize, validate, deduplicate, enrich.

Pure ``DataFrame -> DataFrame`` functions over plain values (dialects, catalogue, seconds); they work on
batch frames as well as inside the streaming ``foreachBatch`` of :mod:`lakehouse.ingest.silver_job`.
Every bronze record ends as exactly one of: an accepted message, a quarantined message, or a duplicate;
every measurement of an accepted message ends in ``silver.vitals`` or ``silver.quarantine``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.ingest.contract import MAX_MESSAGE_BYTES, REQUIRED_FIELDS, Catalogue, Dialect, FieldRule, MeasurementRule

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"

RAW_MEASUREMENT = T.StructType(
    [
        T.StructField("source_code", T.StringType()),
        T.StructField("vital", T.StringType()),
        T.StructField("value_raw", T.StringType()),
        T.StructField("unit_raw", T.StringType()),
    ]
)

# silver.vitals: one row per accepted measurement; key (message_id, measurement_index); UCUM units, LOINC coded.
SILVER_VITALS_SCHEMA = T.StructType(
    [
        T.StructField("message_id", T.StringType(), False),
        T.StructField("measurement_index", T.IntegerType(), False),
        T.StructField("device_id", T.StringType(), False),
        T.StructField("device_type", T.StringType(), True),
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("ward", T.StringType(), True),
        T.StructField("event_time", T.TimestampType(), False),
        T.StructField("event_date", T.DateType(), False),
        T.StructField("seq", T.LongType(), False),
        T.StructField("vital", T.StringType(), False),
        T.StructField("loinc", T.StringType(), False),
        T.StructField("value", T.DoubleType(), False),
        T.StructField("unit", T.StringType(), False),
        T.StructField("source_code", T.StringType(), True),
        T.StructField("source_value", T.StringType(), True),
        T.StructField("source_unit", T.StringType(), True),
        T.StructField("dialect", T.StringType(), False),
        T.StructField("kafka_topic", T.StringType(), False),
        T.StructField("kafka_partition", T.IntegerType(), False),
        T.StructField("kafka_offset", T.LongType(), False),
        T.StructField("ingest_time", T.TimestampType(), False),
    ]
)

# silver.quarantine: one row per rejected message (measurement_index -1) or measurement, with the raw payload;
# key (kafka_topic, kafka_partition, kafka_offset, measurement_index).
QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("kafka_topic", T.StringType(), False),
        T.StructField("kafka_partition", T.IntegerType(), False),
        T.StructField("kafka_offset", T.LongType(), False),
        T.StructField("measurement_index", T.IntegerType(), False),
        T.StructField("level", T.StringType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType(), True),
        T.StructField("dialect", T.StringType(), True),
        T.StructField("message_id", T.StringType(), True),
        T.StructField("device_id", T.StringType(), True),
        T.StructField("event_time", T.TimestampType(), True),
        T.StructField("raw_value", T.BinaryType(), True),
        T.StructField("ingest_time", T.TimestampType(), False),
        T.StructField("ingest_date", T.DateType(), False),
    ]
)


# silver.accepted_messages: one row per accepted (non-duplicate) message; key (kafka_topic, kafka_partition,
# kafka_offset); the index duplicates are found in, by message_id and by (device_id, seq).
ACCEPTED_MESSAGES_SCHEMA = T.StructType(
    [
        T.StructField("message_id", T.StringType(), False),
        T.StructField("device_id", T.StringType(), False),
        T.StructField("seq", T.LongType(), False),
        T.StructField("patient_ref", T.StringType(), False),
        T.StructField("dialect", T.StringType(), False),
        T.StructField("event_time", T.TimestampType(), False),
        T.StructField("event_date", T.DateType(), False),
        T.StructField("measurements", T.IntegerType(), False),
        T.StructField("kafka_topic", T.StringType(), False),
        T.StructField("kafka_partition", T.IntegerType(), False),
        T.StructField("kafka_offset", T.LongType(), False),
        T.StructField("ingest_time", T.TimestampType(), False),
    ]
)


KAFKA_POSITION = ("kafka_topic", "kafka_partition", "kafka_offset")  # where a record is: unique per record
_POSITION_ORDER = ("kafka_partition", "kafka_offset", "kafka_topic")  # arrival order within a batch's topic


def _by_dialect(dialects: Sequence[Dialect], build: dict[str, Column]) -> Column:
    """CASE dialect WHEN name THEN build[name] ... END."""
    cases = [(d.name, build[d.name]) for d in dialects]
    expr = F.when(F.col("dialect") == F.lit(cases[0][0]), cases[0][1])
    for name, col in cases[1:]:
        expr = expr.when(F.col("dialect") == F.lit(name), col)
    return expr


_SIMPLE_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _dialect_paths(d: Dialect) -> list[str]:
    """Every JSON path a dialect reads."""
    paths = [d.match_path, *(r.path for r in d.fields.values() if r.path)]
    for m in (d.measurements, *d.measurements.rules):
        paths += [p for p in (m.path, m.code, m.value, m.unit) if p]
        paths += [f.path for f in m.fields]
    return paths


def payload_schema(dialects: Sequence[Dialect]) -> T.StructType:
    """One struct schema covering every simple path (``$.a.b``) of every dialect, leaves as strings, so a
    message is parsed once (``from_json``) instead of once per field (``get_json_object``). A JSON value of
    any type is kept as its JSON text in a string leaf, exactly as ``get_json_object`` returns it."""
    tree: dict[str, Any] = {}
    leaves: set[tuple[str, ...]] = set()
    for path in {p for d in dialects for p in _dialect_paths(d) if _SIMPLE_PATH.match(p)}:
        parts = tuple(path[2:].split("."))
        leaves.add(parts)
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node.setdefault(parts[-1], {})

    def build(node: dict[str, Any], prefix: tuple[str, ...]) -> T.StructType:
        fields = []
        for name in sorted(node):
            here = (*prefix, name)
            if node[name] and here in leaves:  # both a value and a parent: read it with get_json_object
                continue
            fields.append(T.StructField(name, build(node[name], here) if node[name] else T.StringType()))
        return T.StructType(fields)

    return T.StructType([*build(tree, ()).fields, T.StructField(CORRUPT, T.StringType())])


CORRUPT = "_corrupt_record"


def _json_at(path: str, schema: T.StructType | None = None) -> Column:
    """The value at ``path`` from the once-parsed ``doc`` when the payload schema has it, else by path."""
    if _SIMPLE_PATH.match(path):
        col: Column = F.col("doc")
        node: T.DataType = schema if schema is not None else T.StructType()
        parts = path[2:].split(".")
        for part in parts:
            if not isinstance(node, T.StructType) or part not in node.fieldNames():
                return F.get_json_object(F.col("json"), path)
            node = node[part].dataType
            col = col.getField(part)
        if isinstance(node, T.StringType):
            return col
    return F.get_json_object(F.col("json"), path)


def _raw_field(rule: FieldRule, schema: T.StructType) -> Column:
    if rule.const is not None:
        return F.lit(rule.const)
    value = _json_at(rule.path or "$", schema)
    if rule.strip_prefix:
        prefix = F.lit(rule.strip_prefix)
        value = F.when(value.startswith(prefix), F.substring(value, len(rule.strip_prefix) + 1, 1 << 20)).otherwise(
            value
        )
    return value


def _timestamp(rule: FieldRule, raw: Column) -> Column:
    if rule.format == "epoch_millis":
        return F.timestamp_millis(raw.try_cast("long"))
    return F.try_to_timestamp(raw)


def _raw_measurements(d: Dialect, schema: T.StructType) -> Column:
    return _measurements_of(d.measurements, schema)


def _mapped(raw: Column, mapping: Mapping[str, str] | None) -> Column:
    """``raw`` through ``mapping`` when the rule has one (unmapped values stay as sent)."""
    if not mapping:
        return raw
    return F.coalesce(F.try_element_at(F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv]), raw), raw)


def _measurements_of(m: MeasurementRule, schema: T.StructType) -> Column:
    if m.kind == "any":
        parts = [F.filter(_measurements_of(r, schema), lambda x: x["value_raw"].isNotNull()) for r in m.rules]
        return F.concat(*(F.coalesce(p, F.array().cast(T.ArrayType(RAW_MEASUREMENT))) for p in parts))
    if m.kind == "array" and any(n.startswith("$") for n in (m.item_vital, m.item_value, m.item_unit)):
        raw_items = F.from_json(_json_at(m.path or "$", schema), T.ArrayType(T.StringType()))

        def item_at(x: Column, name: str) -> Column:
            return F.get_json_object(x, name) if name.startswith("$") else F.get_json_object(x, f"$.{name}")

        return F.transform(
            raw_items,
            lambda x: F.struct(
                item_at(x, m.item_vital).alias("source_code"),
                _mapped(item_at(x, m.item_vital), m.codes).alias("vital"),
                item_at(x, m.item_value).alias("value_raw"),
                _mapped(item_at(x, m.item_unit), m.units).alias("unit_raw"),
            ),
        )
    if m.kind == "array":
        item = T.StructType([T.StructField(n, T.StringType()) for n in (m.item_vital, m.item_value, m.item_unit)])
        items = F.from_json(_json_at(m.path or "$", schema), T.ArrayType(item))
        return F.transform(
            items,
            lambda x: F.struct(
                x[m.item_vital].alias("source_code"),
                _mapped(x[m.item_vital], m.codes).alias("vital"),
                x[m.item_value].alias("value_raw"),
                _mapped(x[m.item_unit], m.units).alias("unit_raw"),
            ),
        )
    if m.kind == "single":
        code = _json_at(m.code or "$", schema)
        unit = _json_at(m.unit or "$", schema)
        codes = F.create_map(*[F.lit(x) for kv in (m.codes or {}).items() for x in kv])
        units = F.create_map(*[F.lit(x) for kv in (m.units or {"": ""}).items() for x in kv])
        return F.array(
            F.struct(
                code.alias("source_code"),
                F.try_element_at(codes, code).alias("vital"),
                _json_at(m.value or "$", schema).alias("value_raw"),
                F.coalesce(F.try_element_at(units, unit), unit).alias("unit_raw"),
            )
        )
    present = [
        F.struct(
            F.lit(f.path).alias("source_code"),
            F.lit(f.vital).alias("vital"),
            _json_at(f.path, schema).alias("value_raw"),
            F.lit(f.unit).alias("unit_raw"),
        )
        for f in m.fields
    ]
    return F.filter(F.array(*present), lambda x: x["value_raw"].isNotNull())


def with_payload(bronze: DataFrame, dialects: Sequence[Dialect]) -> DataFrame:
    """Decode the raw Kafka value ``raw_value``: adds ``json`` (text), ``doc`` (parsed once with
    :func:`payload_schema`) and ``payload_error`` (null for a JSON object; a payload over
    ``MAX_MESSAGE_BYTES`` is not decoded at all)."""
    oversized = F.length("raw_value") > F.lit(MAX_MESSAGE_BYTES)
    undecoded = F.when(~oversized, F.col("raw_value")).cast("string")
    valid_utf8 = F.is_valid_utf8(undecoded)
    text = F.make_valid_utf8(undecoded)
    schema = payload_schema(dialects)
    doc = F.from_json(text, schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    is_object = F.trim(text).startswith("{") & F.col("doc").isNotNull() & F.col("doc")[CORRUPT].isNull()
    return (
        bronze.withColumn("json", text)
        .withColumn("doc", doc)
        .withColumn(
            "payload_error",
            F.when(F.col("raw_value").isNull() | (F.length("raw_value") == 0), F.lit("empty_payload"))
            .when(oversized, F.lit("oversized_payload"))
            .when(~valid_utf8, F.lit("invalid_utf8"))
            .when(~is_object, F.lit("malformed_json")),
        )
    )


def normalize_messages(df: DataFrame, dialects: Sequence[Dialect]) -> DataFrame:
    """Recognise each message's dialect and map it onto the contract (header fields + raw measurements)."""
    schema = payload_schema(dialects)
    match = [
        (
            d.name,
            _json_at(d.match_path, schema) == F.lit(d.match_equals)
            if d.match_equals is not None
            else _json_at(d.match_path, schema).isNotNull(),
        )
        for d in dialects
    ]
    dialect = reduce(lambda acc, nm: acc.when(nm[1], F.lit(nm[0])), match[1:], F.when(match[0][1], F.lit(match[0][0])))
    out = df.withColumn("dialect", F.when(F.col("payload_error").isNull(), dialect))
    for name in ("message_id", "device_id", "device_type", "patient_ref"):
        out = out.withColumn(
            name, _by_dialect(dialects, {d.name: _raw_field(d.fields[name], schema) for d in dialects})
        )
    out = out.withColumn(
        "event_time_raw", _by_dialect(dialects, {d.name: _raw_field(d.fields["event_time"], schema) for d in dialects})
    ).withColumn(
        "event_time",
        _by_dialect(
            dialects,
            {d.name: _timestamp(d.fields["event_time"], _raw_field(d.fields["event_time"], schema)) for d in dialects},
        ),
    )
    out = out.withColumn(
        "seq_raw", _by_dialect(dialects, {d.name: _raw_field(d.fields["seq"], schema) for d in dialects})
    )
    out = out.withColumn("seq", F.col("seq_raw").try_cast("long"))
    return out.withColumn(
        "measurements",
        _by_dialect(dialects, {d.name: _raw_measurements(d, schema) for d in dialects}).cast(
            T.ArrayType(RAW_MEASUREMENT)
        ),
    ).drop("doc")


def with_message_checks(df: DataFrame, future_tolerance_s: int, max_age_s: int) -> DataFrame:
    """Adds ``reason`` and ``detail`` (null when the message is acceptable), checked in a fixed order.

    Times are judged against the record's ``ingest_time`` (not the clock) so reprocessing a batch
    classifies it the same way.
    """
    checks: list[tuple[Column, Column, Column]] = [
        (
            F.col("payload_error").isNotNull(),
            F.col("payload_error"),
            F.when(F.col("payload_error") == "oversized_payload", F.length("raw_value").cast("string")),  # bytes
        ),
        (F.col("dialect").isNull(), F.lit("unknown_dialect"), F.substring("json", 1, 200)),
    ]
    raw = {"event_time": "event_time_raw", "seq": "seq_raw"}
    for name in REQUIRED_FIELDS:
        col = F.col(raw.get(name, name))
        checks.append((col.isNull() | (F.trim(col) == ""), F.lit("missing_field"), F.lit(name)))
    checks += [
        (~F.col("device_id").rlike(DEVICE_ID_PATTERN), F.lit("invalid_device_id"), F.substring("device_id", 1, 80)),
        (F.col("event_time").isNull(), F.lit("invalid_event_time"), F.col("event_time_raw")),
        (F.col("seq").isNull() | (F.col("seq") < 0), F.lit("invalid_seq"), F.col("seq_raw")),
        (
            F.col("event_time") > F.col("ingest_time") + F.make_interval(secs=F.lit(future_tolerance_s)),
            F.lit("future_event_time"),
            F.col("event_time_raw"),
        ),
        (
            F.col("event_time") < F.col("ingest_time") - F.make_interval(secs=F.lit(max_age_s)),
            F.lit("stale_event_time"),
            F.col("event_time_raw"),
        ),
        (F.coalesce(F.size("measurements"), F.lit(0)) < 1, F.lit("no_measurements"), F.lit(None)),
    ]
    reason = reduce(lambda acc, c: acc.when(c[0], c[1]), checks[1:], F.when(checks[0][0], checks[0][1]))
    detail = reduce(lambda acc, c: acc.when(c[0], c[2]), checks[1:], F.when(checks[0][0], checks[0][2]))
    return df.withColumn("reason", reason).withColumn("detail", detail.cast("string"))


def with_duplicate_flag(messages: DataFrame, seen: DataFrame) -> DataFrame:
    """Adds ``is_duplicate``: another record with the same message id, or device id + seq, came first.

    ``messages`` are acceptable messages of one batch; ``seen`` holds (message_id, device_id, seq,
    kafka_topic, kafka_partition, kafka_offset) of messages accepted before. A record is never a
    duplicate of itself, so reprocessing a batch classifies it the same way.

    Only the keys travel: the batch's keys and ``seen`` are unioned and each key's group summarized with
    window aggregates (the batch's first record, the lowest and highest record of ``seen``); the positions
    found duplicate are then broadcast back onto the batch, whose rows are never shuffled.
    """
    here = F.struct(*_POSITION_ORDER)  # a record's position (unique), compared in arrival order
    keys = ["message_id", "device_id", "seq", *KAFKA_POSITION]
    both = messages.select(*keys, F.lit(False).alias("_seen")).unionByName(
        seen.select(*keys, F.lit(True).alias("_seen"))
    )

    def duplicate_by(*key: str) -> Column:
        group = Window.partitionBy(*key)
        first_here = F.min(F.when(~F.col("_seen"), here)).over(group)  # the batch's first record of the key
        seen_lo = F.min(F.when(F.col("_seen"), here)).over(group)
        seen_hi = F.max(F.when(F.col("_seen"), here)).over(group)
        seen_other = seen_lo.isNotNull() & ((seen_lo != here) | (seen_hi != here))  # seen: a record not this one
        return seen_other | (first_here != here)

    duplicates = (
        both.withColumn("_dup", duplicate_by("message_id") | duplicate_by("device_id", "seq"))
        .filter(~F.col("_seen") & F.col("_dup"))
        .select(*KAFKA_POSITION, F.lit(True).alias("is_duplicate"))
    )
    flagged = messages.join(F.broadcast(duplicates), list(KAFKA_POSITION), "left")
    return flagged.select(*messages.columns, F.coalesce(F.col("is_duplicate"), F.lit(False)).alias("is_duplicate"))


def _lookup(mapping: dict[str, object], key: Column) -> Column:
    return F.try_element_at(F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv]), key)


def explode_measurements(messages: DataFrame, catalogue: Catalogue) -> DataFrame:
    """One row per measurement: canonical vital, LOINC, value converted to the canonical UCUM unit.

    Adds ``reason``/``detail`` (null when the measurement is acceptable): unknown_vital, missing_value,
    non_numeric_value, unknown_unit, incompatible_unit, implausible_value.
    """
    v, u = catalogue.vitals, catalogue.units
    rows = messages.drop("reason", "detail").select("*", F.posexplode("measurements").alias("measurement_index", "m"))
    vital, unit_raw, value_raw = F.col("m.vital"), F.col("m.unit_raw"), F.col("m.value_raw")
    number = value_raw.try_cast("double")
    canonical_unit = _lookup({k: x.unit for k, x in v.items()}, vital)
    target = _lookup({k: x.to for k, x in u.items()}, unit_raw)
    value = F.round(
        number * _lookup({k: x.factor for k, x in u.items()}, unit_raw)
        + _lookup({k: x.offset for k, x in u.items()}, unit_raw),
        3,
    )
    low, high = _lookup({k: x.low for k, x in v.items()}, vital), _lookup({k: x.high for k, x in v.items()}, vital)
    checks: list[tuple[Column, str, Column]] = [
        (canonical_unit.isNull(), "unknown_vital", F.coalesce(F.col("m.source_code"), F.lit("<none>"))),
        (value_raw.isNull(), "missing_value", vital),
        (number.isNull(), "non_numeric_value", F.substring(value_raw, 1, 80)),
        (target.isNull(), "unknown_unit", unit_raw),
        (target != canonical_unit, "incompatible_unit", F.concat_ws(" ", vital, unit_raw)),
        (
            F.isnan(value) | (value < low) | (value > high),
            "implausible_value",
            F.concat_ws(" ", vital, value.cast("string"), canonical_unit),
        ),
    ]
    reason = reduce(lambda acc, c: acc.when(c[0], F.lit(c[1])), checks[1:], F.when(checks[0][0], F.lit(checks[0][1])))
    detail = reduce(lambda acc, c: acc.when(c[0], c[2]), checks[1:], F.when(checks[0][0], checks[0][2]))
    return (
        rows.withColumn("measurement_index", F.col("measurement_index").cast("int"))
        .withColumn("vital", vital)
        .withColumn("loinc", _lookup({k: x.loinc for k, x in v.items()}, vital))
        .withColumn("value", value)
        .withColumn("unit", canonical_unit)
        .withColumn("source_code", F.col("m.source_code"))
        .withColumn("source_value", value_raw)
        .withColumn("source_unit", unit_raw)
        .withColumn("reason", reason)
        .withColumn("detail", detail.cast("string"))
        .drop("m", "measurements")  # the message's array would otherwise ride along on every measurement row
    )


def with_registry(measurements: DataFrame, registry: DataFrame) -> DataFrame:
    """Adds ``ward`` from the device registry row valid at the measurement's event time (as-of join)."""
    r = registry.select(
        F.col("device_id").alias("r_device_id"),
        F.col("ward").alias("r_ward"),
        F.col("valid_from").alias("r_from"),
        F.col("valid_to").alias("r_to"),
    )
    cond = (
        (F.col("r_device_id") == F.col("device_id"))
        & (F.col("event_time") >= F.col("r_from"))
        & (F.col("r_to").isNull() | (F.col("event_time") < F.col("r_to")))
    )
    return (
        measurements.join(r, cond, "left")
        .withColumn("ward", F.col("r_ward"))
        .drop("r_device_id", "r_ward", "r_from", "r_to")
    )


def with_payload_of(rows: DataFrame, messages: DataFrame) -> DataFrame:
    """``rows`` of a batch whose payload was cut off to keep them narrow, with ``raw_value`` back from the batch's
    parsed ``messages`` (joined on the Kafka position): for the few that go to quarantine."""
    return rows.drop("raw_value").join(messages.select(*KAFKA_POSITION, "raw_value"), list(KAFKA_POSITION), "left")


def to_silver_vitals(measurements: DataFrame) -> DataFrame:
    """Accepted measurements in the ``silver.vitals`` column order and types."""
    return (
        measurements.filter(F.col("reason").isNull())
        .withColumn("event_date", F.to_date("event_time"))
        .select(*[F.col(f.name).cast(f.dataType) for f in SILVER_VITALS_SCHEMA])
    )


def to_quarantine(rejected: DataFrame, level: str) -> DataFrame:
    """Rejected messages (``level='message'``) or measurements in the ``silver.quarantine`` layout."""
    index = F.col("measurement_index") if level == "measurement" else F.lit(-1)
    return rejected.filter(F.col("reason").isNotNull()).select(
        F.col("kafka_topic"),
        F.col("kafka_partition").cast("int"),
        F.col("kafka_offset").cast("long"),
        index.cast("int").alias("measurement_index"),
        F.lit(level).alias("level"),
        F.col("reason"),
        F.col("detail"),
        F.col("dialect"),
        F.col("message_id"),
        F.col("device_id"),
        F.col("event_time"),
        F.col("raw_value"),
        F.col("ingest_time"),
        F.to_date("ingest_time").alias("ingest_date"),
    )


def to_accepted_messages(fresh: DataFrame) -> DataFrame:
    """Accepted, non-duplicate messages in the ``silver.accepted_messages`` layout."""
    return (
        fresh.withColumn("event_date", F.to_date("event_time"))
        .withColumn("measurements", F.size("measurements"))
        .select(*[F.col(f.name).cast(f.dataType) for f in ACCEPTED_MESSAGES_SCHEMA])
    )


def parse_bronze(bronze: DataFrame, dialects: Sequence[Dialect], future_tolerance_s: int, max_age_s: int) -> DataFrame:
    """Bronze rows -> one row per message with contract fields, raw measurements and a rejection reason."""
    return (
        bronze.withColumnRenamed("topic", "kafka_topic")
        .withColumnRenamed("partition", "kafka_partition")
        .withColumnRenamed("offset", "kafka_offset")
        .withColumnRenamed("value", "raw_value")
        .transform(with_payload, dialects)
        .transform(normalize_messages, dialects)
        .transform(with_message_checks, future_tolerance_s, max_age_s)
    )
