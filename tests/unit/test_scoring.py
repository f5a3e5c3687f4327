"""Model serving transforms: sepsis_risk alert episodes over scored hours (open, carry, close, reopen, retry) and
the population stability index (hand-checked values; the Spark version equals the pure-Python twin)."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from lakehouse.ml import drift, scoring
from lakehouse.ml.schemas import RISK_SCORES_SCHEMA

T0 = datetime(2026, 3, 1, 8, 0)
THRESHOLD = 0.5


def _score(patient: str, hour: int, risk: float, alert: str | None = None, since: int | None = None) -> tuple[Any, ...]:
    at = T0 + timedelta(hours=hour)
    return (patient, at, at.date(), risk, THRESHOLD, risk >= THRESHOLD, 3, "sepsis_risk", 1, alert,
            None if since is None else T0 + timedelta(hours=since), T0)  # fmt: skip


def _frame(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, RISK_SCORES_SCHEMA)


def _episodes(spark: SparkSession, new: list[tuple[Any, ...]], stored: list[tuple[Any, ...]], tag: str = "7") -> dict:
    out = scoring.with_alert_episodes(_frame(spark, new), _frame(spark, stored), tag).collect()
    return {(r["patient_ref"], int((r["hour_start"] - T0).total_seconds() // 3600)): r for r in out}


def test_an_episode_opens_on_crossing_carries_while_above_and_closes_below(spark: SparkSession) -> None:
    rows = _episodes(spark, [_score("a", h, r) for h, r in enumerate([0.1, 0.7, 0.8, 0.2, 0.3])], [])
    opened = scoring.alert_id("a", T0 + timedelta(hours=1), "7")
    assert [rows[("a", h)]["event"] for h in range(5)] == [None, "open", None, "close", None]
    assert [rows[("a", h)]["alert_id"] for h in range(5)] == [None, opened, opened, None, None]
    assert rows[("a", 1)]["event_alert_id"] == rows[("a", 3)]["event_alert_id"] == opened
    assert rows[("a", 3)]["event_since"] == rows[("a", 2)]["alert_since"] == T0 + timedelta(hours=1)


def test_the_stored_state_decides_the_first_new_hour(spark: SparkSession) -> None:
    stored = [
        _score("b", 4, 0.9, "B", since=2),  # open episode B; hour 5 goes below: B closes
        _score("c", 4, 0.9, "C", since=4),  # open episode C; hour 5 stays above: no event, still C
        _score("d", 4, 0.9),  # above but never alerted (batch-scored): the next hour above opens one
        _score("e", 5, 0.9, "E", since=5),  # hour 5 scored again below (a partial hour re-scored): E closes
        _score("f", 1, 0.9, "F", since=1), _score("f", 3, 0.1),  # the latest stored row counts: F closed already
    ]  # fmt: skip
    new = [_score("b", 5, 0.2), _score("c", 5, 0.8), _score("d", 5, 0.8), _score("e", 5, 0.4), _score("f", 4, 0.2)]
    rows = _episodes(spark, new, stored)
    assert (rows[("b", 5)]["event"], rows[("b", 5)]["event_alert_id"], rows[("b", 5)]["alert_id"]) == (
        "close",
        "B",
        None,
    )
    assert rows[("b", 5)]["event_since"] == T0 + timedelta(hours=2)
    assert (rows[("c", 5)]["event"], rows[("c", 5)]["alert_id"], rows[("c", 5)]["alert_since"]) == (
        None, "C", T0 + timedelta(hours=4),
    )  # fmt: skip
    assert rows[("d", 5)]["event"] == "open" and rows[("d", 5)]["alert_id"] == scoring.alert_id(
        "d", T0 + timedelta(hours=5), "7"
    )
    assert (rows[("e", 5)]["event"], rows[("e", 5)]["event_alert_id"]) == ("close", "E")
    assert rows[("f", 4)]["event"] is None


def test_a_retried_batch_decides_the_same_events_and_a_later_reopening_gets_a_new_id(spark: SparkSession) -> None:
    new = [_score("a", 0, 0.9), _score("a", 1, 0.1)]
    first = _episodes(spark, new, [], tag="3")
    again = _episodes(spark, new, [], tag="3")
    assert [(r["event"], r["event_alert_id"]) for r in first.values()] == [
        (r["event"], r["event_alert_id"]) for r in again.values()
    ]
    stored = [_score("a", 0, 0.9, first[("a", 0)]["alert_id"], since=0), _score("a", 1, 0.1)]
    later = _episodes(spark, [_score("a", 0, 0.9)], stored, tag="4")  # hour 0 re-scored: the latest stored is hour 1
    assert later[("a", 0)]["event"] is None
    reopened = _episodes(spark, [_score("a", 2, 0.9)], stored, tag="4")
    assert reopened[("a", 2)]["event"] == "open"
    assert reopened[("a", 2)]["alert_id"] not in (None, first[("a", 0)]["alert_id"])


def test_alert_events_are_complete_gold_alerts_rows(spark: SparkSession) -> None:
    from lakehouse.ingest.gold import ALERTS_SCHEMA

    out = scoring.with_alert_episodes(_frame(spark, [_score("a", 0, 0.9), _score("a", 1, 0.2)]), _frame(spark, []), "1")
    events = scoring.alert_events(out, now=T0, wards={"a": "icu-2"})
    assert [e["status"] for e in events] == ["open", "closed"]
    assert {e["ward"] for e in events} == {"icu-2"}
    assert scoring.alert_events(out, now=T0)[0]["ward"] is None  # ward unknown: routed to no ward
    required = {f.name for f in ALERTS_SCHEMA if not f.nullable}
    for e in events:
        assert set(e) == {f.name for f in ALERTS_SCHEMA}
        assert all(e[k] is not None for k in required), e
        assert e["level"] == "sepsis_risk" and e["opened_observation_time"] == T0
    assert events[1]["closed_observation_time"] == T0 + timedelta(hours=1)
    assert "threshold=0.500" in events[0]["triggering_parameters"]


# --------------------------------------------------------------------------- PSI


def test_psi_hand_checked() -> None:
    assert drift.psi_of_shares([0.5, 0.5], [0.5, 0.5]) == 0
    expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert drift.psi_of_shares([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)
    assert drift.psi_of_shares([1.0, 0.0], [1.0, 0.0]) == 0  # an empty bin on both sides adds nothing
    assert drift.level_of(0.05) == "ok" and drift.level_of(0.1) == "moderate" and drift.level_of(0.3) == "major"


def test_psi_sees_a_shift_and_missing_values_but_not_resampling() -> None:
    rng = random.Random(3)
    reference = [rng.gauss(80, 10) for _ in range(5000)]
    same = [rng.gauss(80, 10) for _ in range(5000)]
    shifted = [rng.gauss(95, 10) for _ in range(5000)]
    unmeasured: list[float | None] = [None if i % 2 else v for i, v in enumerate(same)]
    assert drift.psi(reference, same) < 0.02
    assert drift.psi(reference, shifted) > 0.25
    assert drift.psi(reference, unmeasured) > 0.25  # half the values stop coming: the missing bin moves


def test_spark_psi_equals_the_pure_python_twin(spark: SparkSession) -> None:
    rng = random.Random(5)
    ref = [(float(rng.randint(0, 30)) if rng.random() > 0.1 else None, rng.random()) for _ in range(2000)]
    live = [(float(rng.randint(5, 40)) if rng.random() > 0.3 else None, rng.random() ** 2) for _ in range(1500)]
    schema = "x double, y double"
    got = drift.psi_by_column(spark.createDataFrame(ref, schema), spark.createDataFrame(live, schema), ["x", "y"])
    for i, col in enumerate(("x", "y")):
        ref_values = [r[i] for r in ref]
        # the same edges the Spark version took (approximate quantiles), applied by the pure-Python bins
        present = sorted(v for v in ref_values if v is not None)
        edges = sorted({present[min(len(present) - 1, int(len(present) * k / 10))] for k in range(1, 10)})
        want = drift.psi_of_shares(drift.shares(ref_values, edges), drift.shares([r[i] for r in live], edges))
        assert got[col]["psi"] == pytest.approx(want, abs=0.02), col
        assert got[col]["reference_rows"] == 2000 and got[col]["live_rows"] == 1500
    assert got["x"]["psi"] > 0.25 and got["y"]["psi"] > 0.1
