"""NEWS2 scoring: every chart band boundary and rounding edge, totals and risk, missing data, and oracle agreement."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from typing import Any, NamedTuple

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from lakehouse.clinical.news2 import (
    HEART_RATE_BANDS,
    NEWS2_INPUT_SCHEMA,
    NEWS2_OUTPUT_SCHEMA,
    NEWS2_PARAMETERS,
    RESPIRATORY_RATE_BANDS,
    SCORE_COLUMNS,
    SPO2_SCALE_1_BANDS,
    SPO2_SCALE_2_AIR_BANDS,
    SPO2_SCALE_2_OXYGEN_BANDS,
    SYSTOLIC_BP_BANDS,
    TEMPERATURE_BANDS,
    score_observation,
    with_news2,
)

INPUT_NAMES = [field.name for field in NEWS2_INPUT_SCHEMA]
OUTPUT_NAMES = [field.name for field in NEWS2_OUTPUT_SCHEMA]

# Test observations: one row per case, keyed by case_id, then the NEWS2 input columns.
OBSERVATION_SCHEMA = T.StructType([T.StructField("case_id", T.StringType(), False), *NEWS2_INPUT_SCHEMA.fields])

# A normal adult on air: every parameter present and scoring 0.
NORMAL: dict[str, Any] = {
    "respiratory_rate": 16.0,
    "spo2": 97.0,
    "on_oxygen": False,
    "systolic_bp": 120.0,
    "heart_rate": 70.0,
    "temperature": 37.0,
    "consciousness": "A",
}


def observation(case_id: str, **values: Any) -> tuple[Any, ...]:
    """A row of OBSERVATION_SCHEMA: ``values`` by input column name, everything else null."""
    unknown = set(values) - set(INPUT_NAMES)
    assert not unknown, unknown
    return (case_id, *(values.get(name) for name in INPUT_NAMES))


def inputs_of(row: tuple[Any, ...]) -> dict[str, Any]:
    """The NEWS2 input values of an OBSERVATION_SCHEMA row, as keyword arguments for the oracle."""
    return dict(zip(INPUT_NAMES, row[1:], strict=True))


class Boundary(NamedTuple):
    """One band-edge case: inputs, the score column under test and the chart's expected score."""

    case_id: str
    column: str
    expected: int | None
    inputs: dict[str, Any]


def edge(column: str, expected: int | None, label: str = "", **inputs: Any) -> Boundary:
    """A Boundary whose id reads like '<score column> <inputs> [label] -> <expected>'."""
    shown = " ".join(f"{k}={v}" for k, v in inputs.items())
    return Boundary(f"{column} {shown}{' ' + label if label else ''} -> {expected}", column, expected, inputs)


RR, SPO2, AIR, SBP, HR, ACVPU, TEMP = SCORE_COLUMNS

BOUNDARIES: list[Boundary] = [
    # Respiration rate: <=8 3 | 9-11 1 | 12-20 0 | 21-24 2 | >=25 3
    edge(RR, 3, respiratory_rate=0.0),
    edge(RR, 3, respiratory_rate=8.0),
    edge(RR, 1, respiratory_rate=9.0),
    edge(RR, 1, respiratory_rate=11.0),
    edge(RR, 0, respiratory_rate=12.0),
    edge(RR, 0, respiratory_rate=20.0),
    edge(RR, 2, respiratory_rate=21.0),
    edge(RR, 2, respiratory_rate=24.0),
    edge(RR, 3, respiratory_rate=25.0),
    edge(RR, 3, respiratory_rate=60.0),
    edge(RR, 3, "rounds to 8", respiratory_rate=8.49),
    edge(RR, 1, "rounds to 9", respiratory_rate=8.5),
    edge(RR, 1, "rounds to 11", respiratory_rate=11.49),
    edge(RR, 0, "rounds to 12", respiratory_rate=11.5),
    edge(RR, 0, "rounds to 20", respiratory_rate=20.4),
    edge(RR, 2, "rounds to 21", respiratory_rate=20.5),
    edge(RR, 2, "rounds to 24", respiratory_rate=24.49),
    edge(RR, 3, "rounds to 25", respiratory_rate=24.5),
    # SpO2 Scale 1 (default when spo2_scale is null): <=91 3 | 92-93 2 | 94-95 1 | >=96 0; oxygen irrelevant
    edge(SPO2, 3, spo2=50.0),
    edge(SPO2, 3, spo2=91.0),
    edge(SPO2, 2, spo2=92.0),
    edge(SPO2, 2, spo2=93.0),
    edge(SPO2, 1, spo2=94.0),
    edge(SPO2, 1, spo2=95.0),
    edge(SPO2, 0, spo2=96.0),
    edge(SPO2, 0, spo2=100.0),
    edge(SPO2, 3, spo2=91.0, spo2_scale=1),
    edge(SPO2, 2, spo2=92.0, spo2_scale=1),
    edge(SPO2, 0, spo2=96.0, spo2_scale=1, on_oxygen=True),
    edge(SPO2, 0, spo2=100.0, spo2_scale=1, on_oxygen=True),
    edge(SPO2, 3, "rounds to 91", spo2=91.49),
    edge(SPO2, 2, "rounds to 92", spo2=91.5),
    edge(SPO2, 2, "rounds to 93", spo2=93.49),
    edge(SPO2, 1, "rounds to 94", spo2=93.5),
    edge(SPO2, 1, "rounds to 95", spo2=95.49),
    edge(SPO2, 0, "rounds to 96", spo2=95.5),
    # SpO2 Scale 2: <=83 3 | 84-85 2 | 86-87 1 | 88-92 0 | >=93 on air 0 | on O2 93-94 1, 95-96 2, >=97 3
    edge(SPO2, 3, spo2=83.0, spo2_scale=2),
    edge(SPO2, 2, spo2=84.0, spo2_scale=2),
    edge(SPO2, 2, spo2=85.0, spo2_scale=2),
    edge(SPO2, 1, spo2=86.0, spo2_scale=2),
    edge(SPO2, 1, spo2=87.0, spo2_scale=2),
    edge(SPO2, 0, spo2=88.0, spo2_scale=2),
    edge(SPO2, 0, spo2=92.0, spo2_scale=2),
    edge(SPO2, 3, spo2=83.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 2, spo2=84.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 1, spo2=87.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 0, spo2=88.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 0, spo2=92.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 0, spo2=93.0, spo2_scale=2, on_oxygen=False),
    edge(SPO2, 0, spo2=94.0, spo2_scale=2, on_oxygen=False),
    edge(SPO2, 0, spo2=95.0, spo2_scale=2, on_oxygen=False),
    edge(SPO2, 0, spo2=96.0, spo2_scale=2, on_oxygen=False),
    edge(SPO2, 0, spo2=97.0, spo2_scale=2, on_oxygen=False),
    edge(SPO2, 0, spo2=100.0, spo2_scale=2, on_oxygen=False),
    edge(SPO2, 1, spo2=93.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 1, spo2=94.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 2, spo2=95.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 2, spo2=96.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 3, spo2=97.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 3, spo2=100.0, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 3, "oxygen inferred from FiO2", spo2=97.0, spo2_scale=2, fio2=40.0),
    edge(SPO2, 0, "FiO2 21 is air", spo2=97.0, spo2_scale=2, fio2=21.0),
    edge(SPO2, 0, "oxygen unknown, treated as air", spo2=97.0, spo2_scale=2),
    edge(SPO2, 0, "rounds to 92", spo2=92.49, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 1, "rounds to 93", spo2=92.5, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 2, "rounds to 96", spo2=96.49, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 3, "rounds to 97", spo2=96.5, spo2_scale=2, on_oxygen=True),
    edge(SPO2, 3, "rounds to 83", spo2=83.49, spo2_scale=2),
    edge(SPO2, 2, "rounds to 84", spo2=83.5, spo2_scale=2),
    edge(SPO2, 1, "rounds to 87", spo2=87.49, spo2_scale=2),
    edge(SPO2, 0, "rounds to 88", spo2=87.5, spo2_scale=2),
    # Air or oxygen: oxygen 2, air 0; explicit flag wins over FiO2; FiO2 > 21 % means oxygen
    edge(AIR, 2, on_oxygen=True),
    edge(AIR, 0, on_oxygen=False),
    edge(AIR, 2, on_oxygen=True, fio2=21.0),
    edge(AIR, 0, on_oxygen=False, fio2=60.0),
    edge(AIR, 0, fio2=21.0),
    edge(AIR, 2, fio2=21.5),
    edge(AIR, 2, fio2=100.0),
    edge(AIR, 0, fio2=20.9),
    edge(AIR, 0, "unknown, treated as air"),
    # Systolic BP: <=90 3 | 91-100 2 | 101-110 1 | 111-219 0 | >=220 3
    edge(SBP, 3, systolic_bp=60.0),
    edge(SBP, 3, systolic_bp=90.0),
    edge(SBP, 2, systolic_bp=91.0),
    edge(SBP, 2, systolic_bp=100.0),
    edge(SBP, 1, systolic_bp=101.0),
    edge(SBP, 1, systolic_bp=110.0),
    edge(SBP, 0, systolic_bp=111.0),
    edge(SBP, 0, systolic_bp=219.0),
    edge(SBP, 3, systolic_bp=220.0),
    edge(SBP, 3, systolic_bp=280.0),
    edge(SBP, 3, "rounds to 90", systolic_bp=90.49),
    edge(SBP, 2, "rounds to 91", systolic_bp=90.5),
    edge(SBP, 1, "rounds to 110", systolic_bp=110.49),
    edge(SBP, 0, "rounds to 111", systolic_bp=110.5),
    edge(SBP, 0, "rounds to 219", systolic_bp=219.49),
    edge(SBP, 3, "rounds to 220", systolic_bp=219.5),
    # Pulse: <=40 3 | 41-50 1 | 51-90 0 | 91-110 1 | 111-130 2 | >=131 3
    edge(HR, 3, heart_rate=30.0),
    edge(HR, 3, heart_rate=40.0),
    edge(HR, 1, heart_rate=41.0),
    edge(HR, 1, heart_rate=50.0),
    edge(HR, 0, heart_rate=51.0),
    edge(HR, 0, heart_rate=90.0),
    edge(HR, 1, heart_rate=91.0),
    edge(HR, 1, heart_rate=110.0),
    edge(HR, 2, heart_rate=111.0),
    edge(HR, 2, heart_rate=130.0),
    edge(HR, 3, heart_rate=131.0),
    edge(HR, 3, heart_rate=200.0),
    edge(HR, 3, "rounds to 40", heart_rate=40.49),
    edge(HR, 1, "rounds to 41", heart_rate=40.5),
    edge(HR, 0, "rounds to 90", heart_rate=90.4),
    edge(HR, 1, "rounds to 91", heart_rate=90.5),
    edge(HR, 2, "rounds to 130", heart_rate=130.49),
    edge(HR, 3, "rounds to 131", heart_rate=130.5),
    # Consciousness: A 0 | C, V, P, U 3 | null assumed Alert 0 | unrecognised not scored
    edge(ACVPU, 0, consciousness="A"),
    edge(ACVPU, 3, consciousness="C"),
    edge(ACVPU, 3, consciousness="V"),
    edge(ACVPU, 3, consciousness="P"),
    edge(ACVPU, 3, consciousness="U"),
    edge(ACVPU, 3, "case and blanks ignored", consciousness=" v "),
    edge(ACVPU, 0, "case and blanks ignored", consciousness="a"),
    edge(ACVPU, 0, "assumed Alert"),
    edge(ACVPU, 0, "blank is assumed Alert", consciousness="  "),
    edge(ACVPU, None, "unrecognised", consciousness="X"),
    # Temperature (0.1 Cel): <=35.0 3 | 35.1-36.0 1 | 36.1-38.0 0 | 38.1-39.0 1 | >=39.1 2
    edge(TEMP, 3, temperature=33.0),
    edge(TEMP, 3, temperature=35.0),
    edge(TEMP, 1, temperature=35.1),
    edge(TEMP, 1, temperature=36.0),
    edge(TEMP, 0, temperature=36.1),
    edge(TEMP, 0, temperature=38.0),
    edge(TEMP, 1, temperature=38.1),
    edge(TEMP, 1, temperature=39.0),
    edge(TEMP, 2, temperature=39.1),
    edge(TEMP, 2, temperature=41.5),
    edge(TEMP, 3, "rounds to 35.0", temperature=35.04),
    edge(TEMP, 1, "rounds to 35.1", temperature=35.05),
    edge(TEMP, 1, "rounds to 36.0", temperature=36.04),
    edge(TEMP, 0, "rounds to 36.1", temperature=36.05),
    edge(TEMP, 0, "rounds to 38.0", temperature=38.04),
    edge(TEMP, 1, "rounds to 38.1", temperature=38.05),
    edge(TEMP, 1, "rounds to 39.0", temperature=39.04),
    edge(TEMP, 2, "rounds to 39.1", temperature=39.05),
    # Not measured: null or NaN gives a null score
    edge(RR, None, "missing"),
    edge(SPO2, None, "missing", on_oxygen=True, spo2_scale=2),
    edge(SBP, None, "missing"),
    edge(HR, None, "missing"),
    edge(TEMP, None, "missing"),
    edge(RR, None, "NaN", respiratory_rate=math.nan),
    edge(SPO2, None, "NaN", spo2=math.nan),
    edge(SBP, None, "NaN", systolic_bp=math.nan),
    edge(HR, None, "NaN", heart_rate=math.nan),
    edge(TEMP, None, "NaN", temperature=math.nan),
    edge(AIR, 0, "NaN FiO2 is unknown, treated as air", fio2=math.nan),
]


@pytest.fixture(scope="module")
def boundary_rows(spark: SparkSession) -> dict[str, Row]:
    """Every boundary case scored by Spark in a single job, keyed by case id."""
    assert len({case.case_id for case in BOUNDARIES}) == len(BOUNDARIES), "duplicate boundary case ids"
    frame = spark.createDataFrame([observation(c.case_id, **c.inputs) for c in BOUNDARIES], OBSERVATION_SCHEMA)
    return {row["case_id"]: row for row in with_news2(frame).collect()}


@pytest.mark.parametrize("case", BOUNDARIES, ids=[case.case_id for case in BOUNDARIES])
def test_band_boundaries(boundary_rows: dict[str, Row], case: Boundary) -> None:
    assert boundary_rows[case.case_id][case.column] == case.expected
    assert score_observation(**case.inputs)[case.column] == case.expected


@pytest.mark.parametrize(
    "bands",
    [
        RESPIRATORY_RATE_BANDS,
        SPO2_SCALE_1_BANDS,
        SPO2_SCALE_2_AIR_BANDS,
        SPO2_SCALE_2_OXYGEN_BANDS,
        SYSTOLIC_BP_BANDS,
        HEART_RATE_BANDS,
        TEMPERATURE_BANDS,
    ],
)
def test_band_tables_are_increasing_and_open_ended(bands: Sequence[tuple[float, int]]) -> None:
    bounds = [bound for bound, _ in bands]
    assert bounds == sorted(set(bounds))
    assert bounds[-1] == math.inf
    assert {score for _, score in bands} <= {0, 1, 2, 3}


class Totalled(NamedTuple):
    """A whole observation and its expected total, single-3 flag and risk band."""

    case_id: str
    inputs: dict[str, Any]
    total: int | None
    any_3: bool
    risk: str | None


TOTALS: list[Totalled] = [
    Totalled("all normal", NORMAL, 0, False, "low"),
    Totalled(
        "1+2+1 = 4", {**NORMAL, "heart_rate": 95.0, "respiratory_rate": 22.0, "temperature": 38.5}, 4, False, "low"
    ),
    Totalled("new confusion alone", {**NORMAL, "consciousness": "C"}, 3, True, "low-medium"),
    Totalled("RR 25 alone", {**NORMAL, "respiratory_rate": 25.0}, 3, True, "low-medium"),
    Totalled("3+1 = 4 with a 3", {**NORMAL, "respiratory_rate": 25.0, "heart_rate": 95.0}, 4, True, "low-medium"),
    Totalled("3+2 = 5 with a 3", {**NORMAL, "respiratory_rate": 25.0, "on_oxygen": True}, 5, True, "medium"),
    Totalled(
        "2+2+1 = 5", {**NORMAL, "respiratory_rate": 22.0, "on_oxygen": True, "heart_rate": 95.0}, 5, False, "medium"
    ),
    Totalled(
        "2+2+2 = 6", {**NORMAL, "respiratory_rate": 22.0, "on_oxygen": True, "systolic_bp": 95.0}, 6, False, "medium"
    ),
    Totalled(
        "2+2+2+1 = 7",
        {**NORMAL, "respiratory_rate": 22.0, "on_oxygen": True, "systolic_bp": 95.0, "heart_rate": 95.0},
        7,
        False,
        "high",
    ),
    Totalled("3+3+1 = 7", {**NORMAL, "systolic_bp": 85.0, "consciousness": "U", "temperature": 38.5}, 7, True, "high"),
    Totalled(
        "every parameter at its worst",
        {
            "respiratory_rate": 30.0,
            "spo2": 85.0,
            "on_oxygen": True,
            "systolic_bp": 80.0,
            "heart_rate": 140.0,
            "consciousness": "U",
            "temperature": 34.0,
        },
        20,
        True,
        "high",
    ),
    Totalled("scale 2 on oxygen at 97", {**NORMAL, "spo2_scale": 2, "on_oxygen": True}, 5, True, "medium"),
    Totalled("scale 2 on air at 97", {**NORMAL, "spo2_scale": 2}, 0, False, "low"),
    Totalled("only a pulse of 140", {"heart_rate": 140.0}, 3, True, "low-medium"),
    Totalled("only on oxygen", {"on_oxygen": True}, 2, False, "low"),
    Totalled("only consciousness V", {"consciousness": "V"}, 3, True, "low-medium"),
    Totalled("nothing measured", {}, None, False, None),
    Totalled("nothing measured, NaN vitals", {"heart_rate": math.nan, "fio2": math.nan}, None, False, None),
    Totalled("consciousness unrecognised only", {"consciousness": "X"}, None, False, None),
]


@pytest.fixture(scope="module")
def totalled_rows(spark: SparkSession) -> dict[str, Row]:
    """Every TOTALS case scored by Spark in a single job, keyed by case id."""
    frame = spark.createDataFrame([observation(c.case_id, **c.inputs) for c in TOTALS], OBSERVATION_SCHEMA)
    return {row["case_id"]: row for row in with_news2(frame).collect()}


@pytest.mark.parametrize("case", TOTALS, ids=[case.case_id for case in TOTALS])
def test_total_and_risk(totalled_rows: dict[str, Row], case: Totalled) -> None:
    row = totalled_rows[case.case_id]
    assert (row["news2_total"], row["any_parameter_3"], row["news2_risk"]) == (case.total, case.any_3, case.risk)
    oracle = score_observation(**case.inputs)
    assert (oracle["news2_total"], oracle["any_parameter_3"], oracle["news2_risk"]) == (
        case.total,
        case.any_3,
        case.risk,
    )


def test_presence_flags_and_defaults(spark: SparkSession) -> None:
    rows = [
        observation("complete", **{**NORMAL, "on_oxygen": None, "fio2": 28.0}),
        observation("nothing"),
        observation("pulse and fio2 only", heart_rate=140.0, fio2=21.0),
        observation("explicit air, no consciousness", **{**NORMAL, "consciousness": None}),
        observation("unrecognised consciousness", consciousness="drowsy", on_oxygen=False),
    ]
    columns = [
        "score_air_or_oxygen",
        "score_consciousness",
        "oxygen_inferred",
        "consciousness_assumed",
        "parameters_present",
        "parameters_missing",
        "news2_total",
    ]
    every = list(NEWS2_PARAMETERS)
    expected = {
        "complete": (2, 0, True, False, every, [], 2),
        "nothing": (0, 0, False, True, [], every, None),
        "pulse and fio2 only": (
            0,
            0,
            True,
            True,
            ["air_or_oxygen", "heart_rate"],
            ["respiratory_rate", "spo2", "systolic_bp", "consciousness", "temperature"],
            3,
        ),
        "explicit air, no consciousness": (
            0,
            0,
            False,
            True,
            [p for p in every if p != "consciousness"],
            ["consciousness"],
            0,
        ),
        "unrecognised consciousness": (
            0,
            None,
            False,
            False,
            ["air_or_oxygen"],
            ["respiratory_rate", "spo2", "systolic_bp", "heart_rate", "consciousness", "temperature"],
            0,
        ),
    }
    out = with_news2(spark.createDataFrame(rows, OBSERVATION_SCHEMA)).select("case_id", *columns)
    assertDataFrameEqual(out.collect(), [Row(case_id, *values) for case_id, values in expected.items()])
    for row in rows:
        oracle = score_observation(**inputs_of(row))
        assert tuple(oracle[c] for c in columns) == expected[row[0]], row[0]


def test_output_schema_and_pass_through_columns(spark: SparkSession) -> None:
    schema = T.StructType(
        [
            T.StructField("patient_ref", T.StringType(), False),
            T.StructField("observed_at", T.TimestampType(), True),
            *NEWS2_INPUT_SCHEMA.fields,
            T.StructField("device_id", T.StringType(), True),
        ]
    )
    t0 = dt.datetime(2026, 1, 5, 9, 30)
    source = spark.createDataFrame(
        [
            ("patient-1", t0, 16.0, 97.0, None, False, 120.0, 70.0, 37.0, "A", None, "dev-1"),
            ("patient-2", None, None, None, None, None, None, None, None, None, None, None),
        ],
        schema,
    )
    out = with_news2(source)
    assert out.columns == [*schema.names, *OUTPUT_NAMES]
    assert [f.dataType for f in out.schema.fields[len(schema) :]] == [f.dataType for f in NEWS2_OUTPUT_SCHEMA]
    assertDataFrameEqual(out.select(*schema.names), source, checkRowOrder=False)


def test_missing_input_column_is_reported(spark: SparkSession) -> None:
    without_fio2 = T.StructType([field for field in NEWS2_INPUT_SCHEMA if field.name != "fio2"])
    with pytest.raises(ValueError, match="fio2"):
        with_news2(spark.createDataFrame([], without_fio2))


AGREEMENT_ROWS = 500
INTEGER_OFFSETS = (-1.0, -0.5, -0.49, 0.0, 0.49, 0.5, 0.51, 1.0)
TEMPERATURE_OFFSETS = (-0.1, -0.05, -0.04, 0.0, 0.04, 0.05, 0.06, 0.1)
POSSIBLE_SCORES: dict[str, set[int | None]] = {
    RR: {None, 0, 1, 2, 3},
    SPO2: {None, 0, 1, 2, 3},
    AIR: {0, 2},
    SBP: {None, 0, 1, 2, 3},
    HR: {None, 0, 1, 2, 3},
    ACVPU: {None, 0, 3},
    TEMP: {None, 0, 1, 2, 3},
}


def near_bands(
    rng: random.Random, bands: Sequence[tuple[float, int]], low: float, high: float, offsets: Sequence[float]
) -> float | None:
    """A value that is often just either side of a band edge, sometimes anywhere in [low, high], sometimes missing."""
    draw = rng.random()
    if draw < 0.08:
        return None
    if draw < 0.10:
        return math.nan
    if draw < 0.55:
        edges = [bound for bound, _ in bands if bound != math.inf]
        return round(rng.choice(edges) + rng.choice(offsets), 2)
    return round(rng.uniform(low, high), 2)


def random_observation(rng: random.Random, case_id: str) -> tuple[Any, ...]:
    """One random observation exercising every band, scale, oxygen source and consciousness code."""
    return observation(
        case_id,
        respiratory_rate=near_bands(rng, RESPIRATORY_RATE_BANDS, 4, 40, INTEGER_OFFSETS),
        spo2=near_bands(rng, rng.choice([SPO2_SCALE_1_BANDS, SPO2_SCALE_2_OXYGEN_BANDS]), 75, 100, INTEGER_OFFSETS),
        fio2=rng.choice([None, None, 20.9, 21.0, 21.5, 24.0, 28.0, 40.0, 60.0, 100.0]),
        on_oxygen=rng.choice([None, None, True, False]),
        systolic_bp=near_bands(rng, SYSTOLIC_BP_BANDS, 60, 250, INTEGER_OFFSETS),
        heart_rate=near_bands(rng, HEART_RATE_BANDS, 30, 180, INTEGER_OFFSETS),
        temperature=near_bands(rng, TEMPERATURE_BANDS, 33.5, 41.5, TEMPERATURE_OFFSETS),
        consciousness=rng.choice([None, "A", "A", "A", "C", "V", "P", "U", "a", " u ", "", "X"]),
        spo2_scale=rng.choice([None, 1, 2, 2]),
    )


def test_spark_agrees_with_python_oracle(spark: SparkSession) -> None:
    rng = random.Random(20170101)
    rows = [random_observation(rng, f"obs-{i:03d}") for i in range(AGREEMENT_ROWS)]
    actual = with_news2(spark.createDataFrame(rows, OBSERVATION_SCHEMA)).select("case_id", *OUTPUT_NAMES).collect()
    expected = [Row(case_id=row[0], **score_observation(**inputs_of(row))) for row in rows]
    assertDataFrameEqual(actual, expected, maxErrors=10)
    # the sample really exercised the chart: every risk band and every possible score of every parameter
    assert {row["news2_risk"] for row in expected} >= {"low", "low-medium", "medium", "high"}
    for column, scores in POSSIBLE_SCORES.items():
        assert {row[column] for row in expected} == scores, column
