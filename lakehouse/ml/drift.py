"""Model drift: the population stability index (PSI) of every model feature and of the risk score, a live
window against the champion's training data, written to ``gold.model_drift`` and pushed to Prometheus.

Bins are the deciles of the reference (fewer when values repeat, as for indicators and counts) plus one bin for
missing values, so a vital that stops being measured drifts too. PSI = sum over bins of (live - ref) * ln(live /
ref), with shares floored at ``EPSILON`` so an empty bin stays finite. Reading: below 0.1 no shift, 0.1-0.25
moderate, 0.25 and above major.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import tables
from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.ml import features as fx
from lakehouse.ml import scoring, train
from lakehouse.ml.schemas import MODEL_DRIFT_SCHEMA

Progress = Callable[[str], None]
EPSILON = 1e-4
BINS = 10
SCORE = "risk_score"


def level_of(psi: float) -> str:
    """ok (< 0.1), moderate (< 0.25) or major."""
    return "ok" if psi < 0.1 else "moderate" if psi < 0.25 else "major"


def psi_of_shares(reference: Sequence[float], live: Sequence[float]) -> float:
    """PSI of two distributions over the same bins (shares; each is floored at EPSILON)."""
    total = 0.0
    for r, a in zip(reference, live, strict=True):
        r, a = max(r, EPSILON), max(a, EPSILON)
        total += (a - r) * math.log(a / r)
    return total


def edges_of(values: Sequence[float], bins: int = BINS) -> list[float]:
    """Interior bin edges: the distinct quantiles 1/bins .. (bins-1)/bins of ``values`` (sorted, non-missing)."""
    if not values:
        return []
    ordered = sorted(values)
    cuts = {ordered[min(len(ordered) - 1, int(len(ordered) * k / bins))] for k in range(1, bins)}
    return sorted(cuts)


def shares(values: Sequence[float | None], edges: Sequence[float]) -> list[float]:
    """Share of ``values`` per bin: len(edges) + 1 value bins (a value equal to an edge goes right), then missing."""
    counts = [0] * (len(edges) + 2)
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            counts[-1] += 1
        else:
            counts[bisect.bisect_right(edges, v)] += 1
    n = max(1, len(values))
    return [c / n for c in counts]


def psi(reference: Sequence[float | None], live: Sequence[float | None], bins: int = BINS) -> float:
    """PSI of two samples, binned by the reference's quantiles (plus a missing bin); the pure-Python twin of
    :func:`psi_by_column`, for tests and small data."""
    present = [v for v in reference if v is not None and not (isinstance(v, float) and math.isnan(v))]
    edges = edges_of(present, bins)
    return psi_of_shares(shares(reference, edges), shares(live, edges))


def _bin(col: Column, edges: Sequence[float]) -> Column:
    """Bin index of ``col`` as :func:`shares` numbers them (missing: len(edges) + 1)."""
    expr = F.when(col.isNull() | F.isnan(col), F.lit(len(edges) + 1))
    for i, edge in enumerate(edges):
        expr = expr.when(col < F.lit(edge), F.lit(i))
    return expr.otherwise(F.lit(len(edges)))


def _shares_by_column(frame: DataFrame, edges: dict[str, list[float]]) -> tuple[int, dict[str, list[float]]]:
    """Row count and per-column bin shares of ``frame`` in one pass: each row's bin per column, unpivoted to
    (column, bin) pairs and counted (one small expression per column, not one aggregate per column and bin)."""
    names = list(edges)
    bins = [
        F.struct(F.lit(i).alias("c"), _bin(F.col(c).cast("double"), edges[c]).alias("b")) for i, c in enumerate(names)
    ]
    pairs = frame.select(F.explode(F.array(*bins)).alias("p"))
    counts: dict[tuple[int, int], int] = {
        (int(r["c"]), int(r["b"])): int(r["count"]) for r in pairs.groupBy("p.c", "p.b").count().collect()
    }
    n = sum(v for (c, _), v in counts.items() if c == 0)  # every row falls in exactly one bin of each column
    return n, {c: [counts.get((i, k), 0) / max(1, n) for k in range(len(edges[c]) + 2)] for i, c in enumerate(names)}


def psi_by_column(reference: DataFrame, live: DataFrame, columns: Sequence[str], bins: int = BINS) -> dict[str, dict]:
    """PSI per column of live vs reference: edges from the reference's approximate deciles (relative error
    0.001), counts in one pass over each frame. Returns column -> {psi, bins, reference_rows, live_rows}."""
    probs = [k / bins for k in range(1, bins)]
    numeric = reference.select(*(F.col(c).cast("double").alias(c) for c in columns))
    quantiles = numeric.approxQuantile(list(columns), probs, 0.001)
    edges = {
        c: sorted({float(q) for q in qs if q is not None and not math.isnan(q)})
        for c, qs in zip(columns, quantiles, strict=True)
    }
    ref_n, ref = _shares_by_column(reference, edges)
    live_n, now = _shares_by_column(live, edges)
    return {
        c: {
            "psi": psi_of_shares(ref[c], now[c]),
            "bins": len(edges[c]) + 2,
            "reference_rows": ref_n,
            "live_rows": live_n,
        }
        for c in columns
    }


@dataclass(frozen=True)
class DriftRun:
    """One drift check: the model version, the window and the PSI per feature (score included)."""

    model_name: str
    model_version: int
    window_start: str
    window_end: str
    reference: str
    reference_rows: int
    live_rows: int
    psi: dict[str, float]

    def worst(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(self.psi.items(), key=lambda kv: -kv[1])[:n]

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "worst": self.worst()}


def check_drift(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    end: datetime | None = None,
    hours: int | None = None,
    progress: Progress = print,
) -> DriftRun:
    """PSI of the live window [end - hours, end) of gold.features_hourly (and of gold.risk_scores, for the
    score) against the champion's training rows; appends the rows to gold.model_drift and records the
    Prometheus gauges. ``end`` defaults to now, ``hours`` to ``ml.drift_window_h``."""
    from lakehouse.observability import metrics
    from lakehouse.replication import fencing

    hours = hours or cfg.ml.drift_window_h
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(hours=hours)
    champion = scoring.ChampionWatcher(cfg, progress).current()
    tables.ensure_all(spark, region)
    params = train._mlflow(cfg).MlflowClient().get_run(champion.run_id).data.params
    ref_uri, ref_version = params["features_uri"], int(params["features_version"])
    reference = (
        spark.read.format("delta").option("versionAsOf", ref_version).load(ref_uri)
        .where(fx.split_of(F.col("patient_ref"), cfg.ml.validation_pct) == "train")
    )  # fmt: skip
    window = fx.hour_range(start, end)
    live = spark.read.format("delta").load(tables.uri(region, "gold.features_hourly")).where(window)
    live = live.cache()
    if live.isEmpty():
        live.unpersist()
        raise LakehouseError(
            f"no gold.features_hourly rows in the live window [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC",
            fix="run the live scorer (`lakehouse ml scorer`) or the feature job, or give --end/--hours",
        )
    reference = reference.cache()
    progress(
        f"drift: {len(fx.FEATURE_COLUMNS)} features, live window {hours} h vs {ref_uri}@v{ref_version} (train split)"
    )
    result = psi_by_column(reference, live, fx.FEATURE_COLUMNS)
    scores_ref = scoring.score_rows(reference, champion).select(F.col("risk_score"))
    scores_live = (
        spark.read.format("delta").load(tables.uri(region, "gold.risk_scores"))
        .where(window & (F.col("model_version") == champion.version)).select("risk_score")
    )  # fmt: skip
    if not scores_live.isEmpty():
        result[SCORE] = psi_by_column(scores_ref, scores_live, [SCORE])[SCORE]
    reference.unpersist()
    live.unpersist()
    moment = datetime.now(UTC).replace(tzinfo=None)
    ref_text = f"{ref_uri}@v{ref_version}"
    naive = lambda t: t.astimezone(UTC).replace(tzinfo=None)
    rows = [
        (moment, moment.date(), champion.name, champion.version, name, float(r["psi"]), level_of(float(r["psi"])),
         int(r["bins"]), int(r["reference_rows"]), int(r["live_rows"]), naive(start), naive(end), ref_text)
        for name, r in result.items()
    ]  # fmt: skip
    frame = spark.createDataFrame(rows, MODEL_DRIFT_SCHEMA)
    fencing.check()
    frame.write.format("delta").mode("append").save(tables.uri(region, "gold.model_drift"))
    by_feature = {name: float(r["psi"]) for name, r in result.items()}
    metrics.record_drift(champion.name, by_feature)
    run = DriftRun(champion.name, champion.version, f"{naive(start):%Y-%m-%d %H:%M:%S}", f"{naive(end):%Y-%m-%d %H:%M:%S}",
                   ref_text, next(iter(result.values()))["reference_rows"], next(iter(result.values()))["live_rows"],
                   by_feature)  # fmt: skip
    levels = [level_of(v) for v in by_feature.values()]
    progress(
        f"drift: {levels.count('major')} major, {levels.count('moderate')} moderate, {levels.count('ok')} ok; worst "
        + ", ".join(f"{k} {v:.3f}" for k, v in run.worst(3))
    )
    return run
