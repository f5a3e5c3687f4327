"""The simulator's bad data becomes exactly the outcome it promises, through the real silver transforms."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.devices.simulator import BAD_KINDS, Simulator, make_fleet
from lakehouse.ingest import contract, silver
from tests.unit.test_silver import BRONZE

CATALOGUE = contract.load_catalogue()
DIALECTS = contract.load_dialects(catalogue=CATALOGUE)


def test_fleet_and_determinism() -> None:
    fleet = make_fleet(10, seed=3)
    assert Counter(d.device_type for d in fleet) == {"bedside_monitor": 5, "wearable": 5}
    t0 = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    a = list(Simulator(10, seed=3, bad_fraction=0.3, start=t0).messages(300, rate=50))
    b = list(Simulator(10, seed=3, bad_fraction=0.3, start=t0).messages(300, rate=50))
    assert a == b and len(a) == 300
    with pytest.raises(ValueError):
        Simulator(3, bad_fraction=1.5)


def test_expected_outcome_matches_silver_transforms_exactly(spark: SparkSession) -> None:
    start = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
    sim = Simulator(12, seed=11, bad_fraction=0.35, start=start)
    sent = list(sim.messages(1200, rate=10))
    e = sim.expected
    assert e.messages == len(sent) == e.messages_accepted + e.messages_quarantined + e.messages_duplicate
    assert set(e.bad_kinds) == set(BAD_KINDS)  # every kind of bad data occurs at this size

    ingest = dt.datetime(2026, 11, 26, 8, 2, 0)  # after the last event (120 s of events at 10/s)
    rows = [(k, v, "t", 0, i, ingest, ingest) for i, (k, v) in enumerate(sent)]
    bronze = spark.createDataFrame(rows, BRONZE)
    msgs = silver.parse_bronze(bronze, DIALECTS, future_tolerance_s=300, max_age_s=86400).persist()
    rejected = Counter(r["reason"] for r in msgs.filter(F.col("reason").isNotNull()).select("reason").collect())
    assert rejected == e.message_rejects

    empty_seen = spark.createDataFrame([], "message_id string, device_id string, seq long, kafka_topic string,"
                                       " kafka_partition int, kafka_offset long")  # fmt: skip
    flagged = silver.with_duplicate_flag(msgs.filter(F.col("reason").isNull()), empty_seen)
    assert flagged.filter("is_duplicate").count() == e.messages_duplicate
    fresh = flagged.filter("NOT is_duplicate")
    assert fresh.count() == e.messages_accepted
    measurements = silver.explode_measurements(fresh, CATALOGUE)
    assert measurements.filter(F.col("reason").isNull()).count() == e.measurements_accepted
    bad = Counter(r["reason"] for r in measurements.filter(F.col("reason").isNotNull()).select("reason").collect())
    assert bad == e.measurement_rejects
