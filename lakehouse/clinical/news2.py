"""NEWS2 (National Early Warning Score 2, RCP 2017): per-observation parameter scores, total and risk band.

Grain: one row per patient observation (a wide row of vital signs); the transform adds columns and never
drops, reorders or filters rows. The band tables below are data; the Spark expressions are built from them.
``score_observation`` is an independent plain-Python implementation of the same chart, kept deliberately
different in form (literal chart ranges in if/else) so tests can use it as an oracle for the Spark version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

# The seven NEWS2 parameters in chart order; `parameters_present` / `parameters_missing` use these names.
NEWS2_PARAMETERS = (
    "respiratory_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "heart_rate",
    "consciousness",
    "temperature",
)
SCORE_COLUMNS = tuple(f"score_{name}" for name in NEWS2_PARAMETERS)

# Input observation: one row per patient observation; every column nullable; other columns pass through.
NEWS2_INPUT_SCHEMA = T.StructType(
    [
        T.StructField("respiratory_rate", T.DoubleType(), True),  # /min
        T.StructField("spo2", T.DoubleType(), True),  # %
        T.StructField("fio2", T.DoubleType(), True),  # % inspired oxygen; > 21 means supplemental oxygen
        T.StructField("on_oxygen", T.BooleanType(), True),  # explicit air/oxygen flag; wins over fio2
        T.StructField("systolic_bp", T.DoubleType(), True),  # mm[Hg]
        T.StructField("heart_rate", T.DoubleType(), True),  # /min
        T.StructField("temperature", T.DoubleType(), True),  # Cel
        T.StructField("consciousness", T.StringType(), True),  # ACVPU letter; null => assumed Alert
        T.StructField("spo2_scale", T.IntegerType(), True),  # 1 or 2; anything but 2 (or null) => Scale 1
    ]
)

# Columns `with_news2` appends, in this order.
NEWS2_OUTPUT_SCHEMA = T.StructType(
    [
        *(T.StructField(name, T.IntegerType(), True) for name in SCORE_COLUMNS),
        T.StructField("oxygen_inferred", T.BooleanType(), False),
        T.StructField("consciousness_assumed", T.BooleanType(), False),
        T.StructField("news2_total", T.IntegerType(), True),
        T.StructField("parameters_present", T.ArrayType(T.StringType(), False), False),
        T.StructField("parameters_missing", T.ArrayType(T.StringType(), False), False),
        T.StructField("any_parameter_3", T.BooleanType(), False),
        T.StructField("news2_risk", T.StringType(), True),
    ]
)

# A band table: rows of (upper bound inclusive, score), bounds increasing, the last bound +inf.
# Values are rounded to the chart's precision before banding, so "92-93" is simply "<= 93 after 91".
Bands = tuple[tuple[float, int], ...]

RESPIRATORY_RATE_BANDS: Bands = ((8, 3), (11, 1), (20, 0), (24, 2), (math.inf, 3))
SPO2_SCALE_1_BANDS: Bands = ((91, 3), (93, 2), (95, 1), (math.inf, 0))
SPO2_SCALE_2_AIR_BANDS: Bands = ((83, 3), (85, 2), (87, 1), (math.inf, 0))
SPO2_SCALE_2_OXYGEN_BANDS: Bands = ((83, 3), (85, 2), (87, 1), (92, 0), (94, 1), (96, 2), (math.inf, 3))
SYSTOLIC_BP_BANDS: Bands = ((90, 3), (100, 2), (110, 1), (219, 0), (math.inf, 3))
HEART_RATE_BANDS: Bands = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (math.inf, 3))
TEMPERATURE_BANDS: Bands = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (math.inf, 2))

# Decimal places each measured value is rounded to (half-up) before banding.
CHART_DECIMALS: dict[str, int] = {
    "respiratory_rate": 0,
    "spo2": 0,
    "systolic_bp": 0,
    "heart_rate": 0,
    "temperature": 1,
}

# ACVPU: Alert scores 0; new Confusion, Voice, Pain, Unresponsive score 3.
CONSCIOUSNESS_SCORES: dict[str, int] = {"A": 0, "C": 3, "V": 3, "P": 3, "U": 3}

AIR_SCORE = 0
OXYGEN_SCORE = 2
ROOM_AIR_FIO2_PERCENT = 21.0

# Aggregate risk by total (upper bound inclusive); any single parameter scoring 3 lifts 'low' to 'low-medium'.
RISK_BANDS: tuple[tuple[float, str], ...] = ((4, "low"), (6, "medium"), (math.inf, "high"))
SINGLE_3_RISK = "low-medium"


def band(value: Column, bands: Sequence[tuple[float, int | str]]) -> Column:
    """The label of the first band whose inclusive upper bound ``value`` does not exceed; null for null."""
    (first_bound, first_label), *rest = bands
    expr = F.when(value <= F.lit(first_bound), F.lit(first_label))
    for bound, label in rest:
        expr = expr.when(value <= F.lit(bound), F.lit(label))
    return expr


def _number(name: str) -> Column:
    """Column ``name`` as a double, NaN treated as not measured (null)."""
    raw = F.col(name).cast("double")
    return F.when(~F.isnan(raw), raw)


def _charted(name: str) -> Column:
    """Measured value of ``name`` rounded half-up to the chart's precision; null when not measured."""
    return F.round(_number(name), CHART_DECIMALS[name])


def _on_oxygen() -> Column:
    """Effective oxygen status: the explicit flag, else FiO2 > 21 %, else air (never null)."""
    return F.coalesce(F.col("on_oxygen").cast("boolean"), _number("fio2") > F.lit(ROOM_AIR_FIO2_PERCENT), F.lit(False))


def _oxygen_known() -> Column:
    """True when air/oxygen was recorded, either explicitly or through a FiO2 value."""
    return F.col("on_oxygen").isNotNull() | _number("fio2").isNotNull()


def _acvpu() -> Column:
    """Consciousness as an upper-case ACVPU letter; blank becomes null."""
    code = F.upper(F.trim(F.col("consciousness").cast("string")))
    return F.when(code != F.lit(""), code)


def _spo2_score() -> Column:
    """SpO2 score on the patient's scale: Scale 2 only when spo2_scale == 2, and then oxygen matters >= 93 %."""
    spo2 = _charted("spo2")
    scale_2 = F.coalesce(F.col("spo2_scale").cast("int") == F.lit(2), F.lit(False))
    return (
        F.when(scale_2 & _on_oxygen(), band(spo2, SPO2_SCALE_2_OXYGEN_BANDS))
        .when(scale_2, band(spo2, SPO2_SCALE_2_AIR_BANDS))
        .otherwise(band(spo2, SPO2_SCALE_1_BANDS))
    )


def _consciousness_score() -> Column:
    """ACVPU score; null consciousness is assumed Alert (0); an unrecognised code stays null (not scored)."""
    code = _acvpu()
    expr = F.when(code.isNull(), F.lit(CONSCIOUSNESS_SCORES["A"]))
    for letter, score in CONSCIOUSNESS_SCORES.items():
        expr = expr.when(code == F.lit(letter), F.lit(score))
    return expr


def _is_present(name: str) -> Column:
    """True when parameter ``name`` was actually measured (not missing, assumed or defaulted)."""
    if name == "air_or_oxygen":
        return _oxygen_known()
    if name == "consciousness":
        return _acvpu().isNotNull() & F.col("score_consciousness").isNotNull()
    return F.col(f"score_{name}").isNotNull()


def with_news2(df: DataFrame) -> DataFrame:
    """Observations -> the same rows plus NEWS2 parameter scores, flags, total, presence lists and risk band.

    Scores are null for a missing measurement, except that missing air/oxygen scores as air (0) and missing
    consciousness as Alert (0, ``consciousness_assumed``); both are then listed in ``parameters_missing``.
    ``news2_total`` sums the scores present and, with ``news2_risk``, is null when nothing was measured.
    """
    missing = [field.name for field in NEWS2_INPUT_SCHEMA if field.name not in df.columns]
    if missing:
        raise ValueError(f"with_news2 needs input columns {missing}; present: {df.columns}")

    scored = df.withColumns(
        {
            "score_respiratory_rate": band(_charted("respiratory_rate"), RESPIRATORY_RATE_BANDS),
            "score_spo2": _spo2_score(),
            "score_air_or_oxygen": F.when(_on_oxygen(), F.lit(OXYGEN_SCORE)).otherwise(F.lit(AIR_SCORE)),
            "score_systolic_bp": band(_charted("systolic_bp"), SYSTOLIC_BP_BANDS),
            "score_heart_rate": band(_charted("heart_rate"), HEART_RATE_BANDS),
            "score_consciousness": _consciousness_score(),
            "score_temperature": band(_charted("temperature"), TEMPERATURE_BANDS),
            "oxygen_inferred": F.col("on_oxygen").isNull() & _number("fio2").isNotNull(),
            "consciousness_assumed": _acvpu().isNull(),
        }
    )

    present = F.array_compact(F.array(*(F.when(_is_present(p), F.lit(p)) for p in NEWS2_PARAMETERS)))
    absent = F.array_compact(F.array(*(F.when(~_is_present(p), F.lit(p)) for p in NEWS2_PARAMETERS)))
    total = reduce(lambda acc, c: acc + c, (F.coalesce(F.col(c), F.lit(0)) for c in SCORE_COLUMNS))
    any_3 = reduce(lambda acc, c: acc | c, (F.coalesce(F.col(c) == F.lit(3), F.lit(False)) for c in SCORE_COLUMNS))
    totalled = scored.withColumns(
        {
            "news2_total": F.when(F.size(present) > F.lit(0), total),
            "parameters_present": present,
            "parameters_missing": absent,
            "any_parameter_3": any_3,
        }
    )

    by_total = band(F.col("news2_total"), RISK_BANDS)
    risk = F.when(F.col("any_parameter_3") & (by_total == F.lit("low")), F.lit(SINGLE_3_RISK)).otherwise(by_total)
    return totalled.withColumn("news2_risk", risk)


# --- Plain-Python reference ---------------------------------------------------------------------------


def _round_half_up(value: float | None, decimals: int) -> float | None:
    """``value`` rounded half-up on its shortest decimal form (as Spark's ``round`` does); NaN -> None."""
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return float(value)
    quantum = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_UP))


def _unreachable(name: str, value: float) -> int:
    """Raise: a rounded value fell between the chart's ranges, which means a rounding bug."""
    raise AssertionError(f"{name}={value!r} fits no NEWS2 range")


def _respiratory_rate_score(rr: float) -> int:
    """Chart row 'Respiration rate' on a whole-number rate."""
    if rr <= 8:
        return 3
    if 9 <= rr <= 11:
        return 1
    if 12 <= rr <= 20:
        return 0
    if 21 <= rr <= 24:
        return 2
    if rr >= 25:
        return 3
    return _unreachable("respiratory_rate", rr)


def _spo2_score_py(spo2: float, scale: int, oxygen: bool) -> int:
    """Chart rows 'SpO2 Scale 1' and 'SpO2 Scale 2' on a whole-number saturation."""
    if scale != 2:
        if spo2 <= 91:
            return 3
        if 92 <= spo2 <= 93:
            return 2
        if 94 <= spo2 <= 95:
            return 1
        if spo2 >= 96:
            return 0
        return _unreachable("spo2", spo2)
    if spo2 <= 83:
        return 3
    if 84 <= spo2 <= 85:
        return 2
    if 86 <= spo2 <= 87:
        return 1
    if 88 <= spo2 <= 92:
        return 0
    if spo2 >= 93 and not oxygen:
        return 0
    if 93 <= spo2 <= 94:
        return 1
    if 95 <= spo2 <= 96:
        return 2
    if spo2 >= 97:
        return 3
    return _unreachable("spo2", spo2)


def _systolic_bp_score(sbp: float) -> int:
    """Chart row 'Systolic BP' on whole mmHg."""
    if sbp <= 90:
        return 3
    if 91 <= sbp <= 100:
        return 2
    if 101 <= sbp <= 110:
        return 1
    if 111 <= sbp <= 219:
        return 0
    if sbp >= 220:
        return 3
    return _unreachable("systolic_bp", sbp)


def _heart_rate_score(hr: float) -> int:
    """Chart row 'Pulse' on a whole-number rate."""
    if hr <= 40:
        return 3
    if 41 <= hr <= 50:
        return 1
    if 51 <= hr <= 90:
        return 0
    if 91 <= hr <= 110:
        return 1
    if 111 <= hr <= 130:
        return 2
    if hr >= 131:
        return 3
    return _unreachable("heart_rate", hr)


def _temperature_score(t: float) -> int:
    """Chart row 'Temperature' on a value rounded to 0.1 Cel."""
    if t <= 35.0:
        return 3
    if 35.1 <= t <= 36.0:
        return 1
    if 36.1 <= t <= 38.0:
        return 0
    if 38.1 <= t <= 39.0:
        return 1
    if t >= 39.1:
        return 2
    return _unreachable("temperature", t)


def score_observation(
    *,
    respiratory_rate: float | None = None,
    spo2: float | None = None,
    fio2: float | None = None,
    on_oxygen: bool | None = None,
    systolic_bp: float | None = None,
    heart_rate: float | None = None,
    temperature: float | None = None,
    consciousness: str | None = None,
    spo2_scale: int | None = None,
) -> dict[str, Any]:
    """One observation -> the columns ``with_news2`` adds, computed in plain Python (reference and test oracle).

    Written independently of the band tables (literal chart ranges, if/else) so that a mistake in either
    implementation shows up as a disagreement; use it to score a single observation outside Spark too.
    """
    rr = _round_half_up(respiratory_rate, 0)
    sat = _round_half_up(spo2, 0)
    sbp = _round_half_up(systolic_bp, 0)
    hr = _round_half_up(heart_rate, 0)
    temp = _round_half_up(temperature, 1)
    fio2_value = None if fio2 is None or math.isnan(fio2) else fio2

    if on_oxygen is not None:
        oxygen, oxygen_inferred, oxygen_known = bool(on_oxygen), False, True
    elif fio2_value is not None:
        oxygen, oxygen_inferred, oxygen_known = fio2_value > 21, True, True
    else:
        oxygen, oxygen_inferred, oxygen_known = False, False, False

    code = consciousness.strip().upper() if consciousness is not None else ""
    consciousness_assumed = code == ""
    if consciousness_assumed or code == "A":
        consciousness_score: int | None = 0
    elif code in ("C", "V", "P", "U"):
        consciousness_score = 3
    else:
        consciousness_score = None

    scores: dict[str, int | None] = {
        "respiratory_rate": None if rr is None else _respiratory_rate_score(rr),
        "spo2": None if sat is None else _spo2_score_py(sat, 2 if spo2_scale == 2 else 1, oxygen),
        "air_or_oxygen": 2 if oxygen else 0,
        "systolic_bp": None if sbp is None else _systolic_bp_score(sbp),
        "heart_rate": None if hr is None else _heart_rate_score(hr),
        "consciousness": consciousness_score,
        "temperature": None if temp is None else _temperature_score(temp),
    }
    measured = {
        **{name: scores[name] is not None for name in scores},
        "air_or_oxygen": oxygen_known,
        "consciousness": consciousness_score is not None and not consciousness_assumed,
    }
    present = [name for name in NEWS2_PARAMETERS if measured[name]]
    any_3 = any(score == 3 for score in scores.values())
    total = sum(score for score in scores.values() if score is not None) if present else None
    if total is None:
        risk = None
    elif total >= 7:
        risk = "high"
    elif total >= 5:
        risk = "medium"
    elif any_3:
        risk = "low-medium"
    else:
        risk = "low"

    return {
        **{f"score_{name}": scores[name] for name in NEWS2_PARAMETERS},
        "oxygen_inferred": oxygen_inferred,
        "consciousness_assumed": consciousness_assumed,
        "news2_total": total,
        "parameters_present": present,
        "parameters_missing": [name for name in NEWS2_PARAMETERS if not measured[name]],
        "any_parameter_3": any_3,
        "news2_risk": risk,
    }
