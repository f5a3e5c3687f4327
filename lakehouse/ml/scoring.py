"""Applying the champion model: batch scoring of a range, the live scorer stream and sepsis-risk alerts.

``gold.risk_scores`` holds one row per patient-hour (key ``patient_ref, hour_start``): the risk the champion
gave that hour's features, the threshold it was judged against, which model version scored it and, while the
risk stays at or above the threshold, the ``sepsis_risk`` alert episode the hour belongs to.

The live scorer (:func:`start_scorer`) follows ``silver.vitals``: each micro-batch rebuilds the features of the
hours it touched (``gold.features_hourly``, the same code as the nightly job), scores them with the current
champion and MERGEs the scores. Crossing the threshold opens a ``sepsis_risk`` alert and falling below it
closes the alert; both events go to the ``alerts.news2`` topic beside the NEWS2 alerts (so ``gold.alerts``
holds them too, one open alert per patient and level). The champion is looked up in the registry on every
batch and reloaded when the alias has moved: promoting a model needs no restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from lakehouse import tables
from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io import delta, streaming
from lakehouse.io import tables as io_tables
from lakehouse.ml import build, train
from lakehouse.ml import features as fx
from lakehouse.ml.schemas import RISK_SCORES_SCHEMA
from lakehouse.security import pseudonyms

Progress = Callable[[str], None]
QUERY = "gold.risk_scores"
ALERT_LEVEL = "sepsis_risk"

# --------------------------------------------------------------------------- the champion


@dataclass(frozen=True)
class Champion:
    """The model version behind the ``champion`` alias, loaded, with the threshold its alerts use."""

    name: str
    version: int
    run_id: str
    threshold: float
    model: Any  # pyspark.ml.PipelineModel


class ChampionWatcher:
    """The registry's current champion; :meth:`current` asks the registry each time and reloads the model only
    when the alias has moved to another version (a cheap REST call otherwise). Given the ``region`` it scores
    in, it falls back to the champion replicated into that region (lakehouse.replication.models) while the
    registry does not answer (a region lost with it)."""

    def __init__(self, cfg: Config, progress: Progress = print, region: RegionConfig | None = None) -> None:
        self._cfg = cfg
        self._progress = progress
        self._region = region
        self._current: Champion | None = None

    def _from_replica(self, region: RegionConfig) -> Champion:
        from lakehouse.replication import models

        name = self._cfg.ml.model_name
        manifest = models.read_champion(region, name)
        version = int(manifest["version"])
        if self._current is not None and self._current.version == version:
            return self._current
        threshold = self._cfg.ml.alert_threshold
        if threshold is None:
            threshold = float(manifest["metrics"].get("threshold", 0.5))
        model = models.load_champion_model(region, manifest)
        self._current = Champion(name, version, str(manifest["run_id"]), threshold, model)
        self._progress(
            f"scorer: the MLflow registry at {self._cfg.mlflow.tracking_uri} does not answer; champion of {name} is"
            f" version {version} as replicated into {region.name} (alert threshold {threshold:.3f})"
        )
        return self._current

    def current(self) -> Champion:
        import mlflow.spark as mlspark

        from lakehouse.replication import models

        if self._region is not None and not models.registry_answers(self._cfg):
            return self._from_replica(self._region)
        mlflow = train._mlflow(self._cfg)
        client = mlflow.MlflowClient()
        name = self._cfg.ml.model_name
        try:
            version = client.get_model_version_by_alias(name, train.CHAMPION)
        except Exception:  # noqa: BLE001 - MlflowException: no such model or alias
            raise LakehouseError(
                f"no champion of model {name!r} in the MLflow registry at {self._cfg.mlflow.tracking_uri}",
                fix="train and promote one first: trigger the nightly_retraining DAG (`lakehouse dags trigger "
                "nightly_retraining`)",
            ) from None
        if self._current is not None and self._current.version == int(version.version):
            return self._current
        threshold = self._cfg.ml.alert_threshold
        if threshold is None:
            threshold = float(client.get_run(version.run_id).data.metrics.get("threshold", 0.5))
        model = mlspark.load_model(f"models:/{name}/{version.version}")
        before = self._current
        self._current = Champion(name, int(version.version), str(version.run_id), threshold, model)
        moved = f"moved from version {before.version} to" if before else "is"
        self._progress(
            f"scorer: champion of {name} {moved} version {version.version} (alert threshold {threshold:.3f})"
        )
        return self._current


# --------------------------------------------------------------------------- transforms


def score_rows(features: DataFrame, champion: Champion, now: datetime | None = None) -> DataFrame:
    """gold.features_hourly rows -> gold.risk_scores rows (no alert episode yet: alert_id, alert_since null)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    scored = train.score(champion.model, features)
    return scored.select(
        "patient_ref",
        "hour_start",
        F.to_date("hour_start").alias("hour_date"),
        F.col("score").alias("risk_score"),
        F.lit(champion.threshold).alias("threshold"),
        (F.col("score") >= F.lit(champion.threshold)).alias("above_threshold"),
        F.col("news2_total").cast("int").alias("news2_total"),
        F.lit(champion.name).alias("model_name"),
        F.lit(champion.version).alias("model_version"),
        F.lit(None).cast("string").alias("alert_id"),
        F.lit(None).cast("timestamp").alias("alert_since"),
        F.lit(moment).cast("timestamp").alias("scored_time"),
    )


def alert_id(patient_ref: str, since: datetime, tag: str) -> str:
    """The id of a sepsis_risk alert episode (what :func:`with_alert_episodes` computes in Spark)."""
    text = f"{patient_ref}|{ALERT_LEVEL}|{since.strftime('%Y-%m-%d %H:%M:%S')}|{tag}"
    return hashlib.sha256(text.encode()).hexdigest()


def with_alert_episodes(scores: DataFrame, stored: DataFrame, tag: str) -> DataFrame:
    """Assign each scored hour to its alert episode and mark where one opens or closes.

    ``scores``: new gold.risk_scores rows (several hours per patient possible); ``stored``: the table as it
    was (the patient's latest row at or before the first new hour is its state: an hour scored again takes
    the place of its earlier score). An hour at or above the threshold opens an episode unless the hour
    before it belongs to an open one; an hour below closes the open one. Adds ``event`` (open, close or
    null) and ``event_alert_id`` / ``event_since`` (the episode the event is about); alert ids are
    sha-256 of patient, level, opening hour and ``tag`` (the micro-batch: a retried batch gets the same ids,
    an episode reopened later a new one).
    """
    first = scores.groupBy("patient_ref").agg(F.min("hour_start").alias("_first"))
    latest = Window.partitionBy("patient_ref").orderBy(F.col("hour_start").desc())
    state = (
        stored.join(first, "patient_ref")
        .where(F.col("hour_start") <= F.col("_first"))
        .withColumn("_rn", F.row_number().over(latest))
        .where("_rn = 1")
        .select(
            "patient_ref",
            (F.col("above_threshold") & F.col("alert_id").isNotNull()).alias("_s_open"),
            F.col("alert_id").alias("_s_alert"),
            F.col("alert_since").alias("_s_since"),
        )
    )
    w = Window.partitionBy("patient_ref").orderBy("hour_start")
    upto = w.rowsBetween(Window.unboundedPreceding, 0)
    df = scores.drop("alert_id", "alert_since").join(state, "patient_ref", "left")
    first_row = F.lag("hour_start").over(w).isNull()
    prev_open = F.when(first_row, F.coalesce(F.col("_s_open"), F.lit(False))).otherwise(
        F.lag("above_threshold").over(w)
    )
    df = df.withColumn("_prev_open", prev_open).withColumn("_start", F.col("above_threshold") & ~F.col("_prev_open"))
    new_id = F.sha2(
        F.concat_ws(
            "|", "patient_ref", F.lit(ALERT_LEVEL), F.date_format("hour_start", "yyyy-MM-dd HH:mm:ss"), F.lit(tag)
        ),
        256,
    )
    started_id = F.last(F.when(F.col("_start"), new_id), ignorenulls=True).over(upto)
    started_at = F.last(F.when(F.col("_start"), F.col("hour_start")), ignorenulls=True).over(upto)
    df = df.withColumn(
        "alert_id", F.when(F.col("above_threshold"), F.coalesce(started_id, F.col("_s_alert")))
    ).withColumn("alert_since", F.when(F.col("above_threshold"), F.coalesce(started_at, F.col("_s_since"))))
    prev_alert = F.when(first_row, F.col("_s_alert")).otherwise(F.lag("alert_id").over(w))
    prev_since = F.when(first_row, F.col("_s_since")).otherwise(F.lag("alert_since").over(w))
    closes = ~F.col("above_threshold") & F.col("_prev_open")
    return df.withColumns(
        {
            "event": F.when(F.col("_start"), F.lit("open")).when(closes, F.lit("close")),
            "event_alert_id": F.when(F.col("_start"), F.col("alert_id")).when(closes, prev_alert),
            "event_since": F.when(F.col("_start"), F.col("alert_since")).when(closes, prev_since),
        }
    ).drop("_s_open", "_s_alert", "_s_since", "_prev_open", "_start")


def alert_events(
    episodes: DataFrame, now: datetime | None = None, wards: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The open/close events of :func:`with_alert_episodes` as gold.alerts rows (the ``alerts.news2`` topic's
    JSON), in hour order. An event carries its episode's opening fields, so a close that reaches gold.alerts
    before its open still inserts a complete row. ``wards``: each patient's latest ward (null when unknown)."""
    wards = wards or {}
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    rows = episodes.where(F.col("event").isNotNull()).orderBy("patient_ref", "hour_start").collect()
    events = []
    for r in rows:
        since: datetime = r["event_since"]
        closing = r["event"] == "close"
        events.append({
            "alert_id": r["event_alert_id"], "patient_ref": r["patient_ref"], "ward": wards.get(r["patient_ref"]), "level": ALERT_LEVEL,
            "status": "closed" if closing else "open", "news2_total": r["news2_total"],
            "triggering_parameters": [f"risk_score={r['risk_score']:.3f}", f"threshold={r['threshold']:.3f}",
                                      f"model={r['model_name']}/{r['model_version']}"],
            "opened_observation_time": since, "opened_event_time": since, "opened_time": moment,
            "latest_observation_time": r["hour_start"], "latest_total": r["news2_total"],
            "closed_observation_time": r["hour_start"] if closing else None, "closed_time": moment if closing else None,
            "opened_date": since.date(),
        })  # fmt: skip
    return events


# --------------------------------------------------------------------------- batch scoring


@dataclass(frozen=True)
class ScoreRun:
    """What one scoring pass wrote."""

    start: str
    end: str
    rows: int
    patients: int
    above_threshold: int
    model_version: int
    threshold: float
    risk_scores_version: int
    alerts_opened: int = 0
    alerts_closed: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _merge_scores(spark: SparkSession, uri: str, rows: DataFrame, keep_episodes: bool) -> None:
    """Upsert by (patient_ref, hour_start); ``keep_episodes``: a re-scored row keeps its alert episode."""
    from delta.tables import DeltaTable

    from lakehouse.replication import fencing

    fencing.check()
    columns = [f.name for f in RISK_SCORES_SCHEMA]
    kept = ("alert_id", "alert_since") if keep_episodes else ()
    (
        DeltaTable.forPath(spark, uri)
        .alias("t")
        .merge(rows.select(*columns).alias("s"), "t.patient_ref = s.patient_ref AND t.hour_start = s.hour_start")
        .whenMatchedUpdate(set={c: f"s.`{c}`" for c in columns if c not in kept})
        .whenNotMatchedInsertAll()
        .execute()
    )


def batch_score(
    spark: SparkSession, cfg: Config, region: RegionConfig, start: datetime, end: datetime, progress: Progress = print
) -> ScoreRun:
    """Score the gold.features_hourly rows of [start, end) with the champion into gold.risk_scores (a re-run
    replaces the scores; alert episodes are the live scorer's and stay as they were; no alerts are raised)."""
    if end <= start:
        raise LakehouseError(f"empty range: end {end} is not after start {start}", fix="give --start < --end")
    champion = ChampionWatcher(cfg, progress, region).current()
    tables.ensure_all(spark, region)
    features_uri = tables.uri(region, "gold.features_hourly")
    features = spark.read.format("delta").load(features_uri).where(fx.hour_range(start, end))
    scores = score_rows(features, champion).localCheckpoint(eager=True)
    uri = tables.uri(region, QUERY)
    try:
        agg = scores.agg(
            F.count(F.lit(1)).alias("n"), F.countDistinct("patient_ref").alias("p"),
            F.sum(F.col("above_threshold").cast("int")).alias("above"),
        ).first()  # fmt: skip
        assert agg is not None
        if int(agg["n"]):
            _merge_scores(spark, uri, scores, keep_episodes=True)
    finally:
        scores.unpersist()
    progress(
        f"risk scores ({region.name}): {agg['n']} patient-hours of {agg['p']} patients scored by "
        f"{champion.name} v{champion.version}; {agg['above'] or 0} at or above {champion.threshold:.3f}"
    )
    from lakehouse.observability import metrics

    metrics.record_scoring(champion.name, int(agg["n"]), 0)
    fmt = "%Y-%m-%d %H:%M:%S"
    return ScoreRun(start.astimezone(UTC).strftime(fmt), end.astimezone(UTC).strftime(fmt), int(agg["n"]),
                    int(agg["p"]), int(agg["above"] or 0), champion.version, champion.threshold,
                    delta.table_version(spark, uri))  # fmt: skip


# --------------------------------------------------------------------------- the live scorer


def _latest_wards(vitals: DataFrame, episodes: DataFrame) -> dict[str, str]:
    """Each alerted patient's ward in its latest silver row of the batch (alert routing, as for NEWS2)."""
    alerted = episodes.where(F.col("event").isNotNull()).select("patient_ref").distinct()
    latest = vitals.join(alerted, "patient_ref").groupBy("patient_ref").agg(F.max_by("ward", "event_time").alias("w"))
    return {r["patient_ref"]: r["w"] for r in latest.collect() if r["w"] is not None}


def score_live_batch(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    vitals: DataFrame,
    batch_id: int,
    watcher: ChampionWatcher,
    progress: Progress = print,
) -> ScoreRun | None:
    """One micro-batch of new silver.vitals rows: features of the hours they touched, scores, alert events.

    Alerts are published before the scores are MERGEd, so a batch retried after a crash finds the same
    state, decides the same events and resends them (consumers dedupe on alert id and status)."""
    from lakehouse.ingest import news2_job
    from lakehouse.observability import metrics

    span = vitals.agg(F.min("event_time").alias("lo"), F.max("event_time").alias("hi")).first()
    if span is None or span["lo"] is None:
        return None
    champion = watcher.current()
    start = span["lo"].replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
    end = span["hi"].replace(minute=0, second=0, microsecond=0, tzinfo=UTC) + timedelta(hours=1)
    run = build.from_silver(spark, region, start, end, progress=progress, ensure_tables=False)
    features = (
        spark.read.format("delta")
        .option("versionAsOf", run.features_version)
        .load(run.features_uri)
        .where(fx.hour_range(start, end))
    )
    uri = tables.uri(region, QUERY)
    scores = score_rows(features, champion).localCheckpoint(eager=True)
    episodes = with_alert_episodes(scores, spark.read.format("delta").load(uri), tag=str(batch_id))
    episodes = episodes.localCheckpoint(eager=True)
    try:
        events = alert_events(episodes, wards=_latest_wards(vitals, episodes))
        if events:  # clinical systems get the raw patient reference, as NEWS2 alerts carry it
            known = spark.read.format("delta").load(tables.uri(region, pseudonyms.IDENTITIES_TABLE))
            raw = pseudonyms.raw_refs(known, {e["patient_ref"] for e in events})
            events = [{**e, "patient_ref": raw.get(e["patient_ref"], e["patient_ref"])} for e in events]
            news2_job.send_alerts(events, region.kafka, cfg.topics.alerts)
        _merge_scores(spark, uri, episodes, keep_episodes=False)
        agg = episodes.agg(
            F.count(F.lit(1)).alias("n"), F.countDistinct("patient_ref").alias("p"),
            F.sum(F.col("above_threshold").cast("int")).alias("above"),
        ).first()  # fmt: skip
        assert agg is not None
    finally:
        episodes.unpersist()
        scores.unpersist()
    opened = sum(1 for e in events if e["status"] == "open")
    metrics.record_scoring(champion.name, int(agg["n"]), opened)
    progress(
        f"scorer batch {batch_id} ({region.name}): {agg['n']} patient-hours scored by v{champion.version}, "
        f"{agg['above'] or 0} above {champion.threshold:.3f}; alerts opened {opened}, closed {len(events) - opened}"
    )
    fmt = "%Y-%m-%d %H:%M:%S"
    return ScoreRun(start.strftime(fmt), end.strftime(fmt), int(agg["n"]), int(agg["p"]), int(agg["above"] or 0),
                    champion.version, champion.threshold, delta.table_version(spark, uri), opened,
                    len(events) - opened)  # fmt: skip


def start_scorer(
    spark: SparkSession, cfg: Config, region: RegionConfig, once: bool, progress: Progress = print
) -> StreamingQuery:
    """Start the live scorer over silver.vitals (availableNow when ``once``, else every ``ml.scorer_trigger_s``).
    Fails at once, before any batch, when the registry has no champion."""
    tables.ensure_all(spark, region)
    watcher = ChampionWatcher(cfg, progress, region)
    watcher.current()

    def each(batch: DataFrame, batch_id: int) -> None:
        from lakehouse.observability import exporter

        if score_live_batch(spark, cfg, region, batch, batch_id, watcher, progress) is not None:
            exporter.push(cfg, "model-scorer", region.name)

    source = delta.read_stream(spark, tables.uri(region, "silver.vitals"))
    writer = (
        source.select("patient_ref", "ward", "event_time")
        .writeStream.foreachBatch(each)
        .option("checkpointLocation", io_tables.checkpoint_uri(region, QUERY))
        .queryName(f"risk_scores_{region.name}")
    )
    return streaming.start(writer, cfg, once, interval_s=cfg.ml.scorer_trigger_s)
