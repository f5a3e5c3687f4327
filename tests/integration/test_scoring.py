"""The sepsis model in service, on the real stack (HDFS, Kafka, MLflow) in a sandbox of its own: a model trained on
the committed PhysioNet sample and promoted in a sandbox registry name; the live scorer follows silver.vitals,
writes gold.features_hourly and gold.risk_scores, announces sepsis_risk alerts on the alerts topic, and picks up
a newly promoted champion without a restart; batch scoring, `ml evaluate --psv-dir` and `ml cv` in fresh processes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import tables
from lakehouse.config import Config, write_sandbox_profile
from lakehouse.devices import physionet
from lakehouse.ingest.silver import SILVER_VITALS_SCHEMA
from lakehouse.io import kafka
from lakehouse.ml import build, scoring, train
from lakehouse.ml import features as fx
from lakehouse.security import pseudonyms
from tests.conftest import copy_sample_patients, free_port, run_cli, sample_patients_to_train, with_ml_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

PATIENTS = 60
SPLIT_H = 12  # the scorer sees hours [0, 12) first, then [12, 24) after the champion moved


@dataclass
class Served:
    cfg: Config
    env: dict[str, str]
    run_id: str
    first: int  # champion version while the scorer read the first hours
    second: int  # the version promoted while it ran
    query_ids: list[str]
    active_throughout: bool


def _read(spark: SparkSession, cfg: Config, table: str) -> DataFrame:
    return spark.read.format("delta").load(tables.uri(cfg.primary, table))


def _silver_rows(
    spark: SparkSession, records: list[physionet.PatientRecord], lo: int, hi: int, key: bytes
) -> DataFrame:
    """The patients' measurements of ICU hours [lo, hi) as silver.vitals rows (what the replay lands there,
    patients pseudonymized under ``key``)."""
    m = pseudonyms.pseudonymize(fx.measurements_from_records(spark, records), key)
    start = fx.PSV_ORIGIN.replace(tzinfo=None)
    m = m.where(
        (F.col("event_time") >= F.lit(start + timedelta(hours=lo)))
        & (F.col("event_time") < F.lit(start + timedelta(hours=hi)))
    )
    filled = m.select(
        F.concat_ws("-", "patient_ref", F.col("event_time").cast("long"), "vital").alias("message_id"),
        F.lit(0).alias("measurement_index"), F.concat(F.lit("dev-"), "patient_ref").alias("device_id"),
        F.lit("bedside_monitor").alias("device_type"), "patient_ref", F.lit("icu").alias("ward"), "event_time",
        F.to_date("event_time").alias("event_date"), F.col("event_time").cast("long").alias("seq"), "vital",
        F.lit("0-0").alias("loinc"), "value", F.lit("1").alias("unit"), F.lit(None).alias("source_code"),
        F.lit(None).alias("source_value"), F.lit(None).alias("source_unit"), F.lit("physionet").alias("dialect"),
        F.lit("test").alias("kafka_topic"), F.lit(0).alias("kafka_partition"), F.lit(0).alias("kafka_offset"),
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip
    return filled.select(*[F.col(f.name).cast(f.dataType) for f in SILVER_VITALS_SCHEMA])


def _wait(check: Any, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(3)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def served(stack: Config, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("scoring")
    path = write_sandbox_profile(stack.source, folder, "scoring")
    cfg = with_ml_settings(path, experiment=f"test-{path.stem}", model_name=f"sepsis_risk_{path.stem}", max_iter=5,
                   max_depth=3, scorer_trigger_s=2)  # fmt: skip
    ml, region = cfg.ml, cfg.primary
    kafka.ensure_topic(region, cfg.topics.alerts, cfg.topics)
    key = pseudonyms.patient_key(cfg)  # silver and gold name patients by pseudonym
    patients = sample_patients_to_train(spark, key, PATIENTS, ml.validation_pct)
    records = list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE, patients))
    build.from_psv(spark, region, physionet.SAMPLE_ARCHIVE, patients, progress=print, patient_key=key)
    trained = train.train(spark, cfg, region, progress=print)
    first = train.register(cfg, trained.model_uri, trained.run_id)
    assert train.gate(spark, cfg, region, progress=print).promoted
    # an alert threshold some hours cross: the 80th percentile of the model's training scores
    import mlflow.spark as mlspark

    model = mlspark.load_model(trained.model_uri)
    q = train.score(model, train.training_data(spark, region, ml.validation_pct).frame).approxQuantile(
        "score", [0.8], 0
    )
    cfg = with_ml_settings(path, alert_threshold=float(q[0]))

    # the live scorer follows silver.vitals; the first hours arrive, then the champion moves, then more hours
    silver = tables.uri(region, "silver.vitals")
    _silver_rows(spark, records, 0, SPLIT_H, key).write.format("delta").mode("append").save(silver)
    query = scoring.start_scorer(spark, cfg, region, once=False, progress=print)
    ids, active = [str(query.id)], True
    try:
        _wait(lambda: _read(spark, cfg, "gold.risk_scores").count() > 0, "the first scores")
        client = train._mlflow(cfg).MlflowClient()
        import mlflow

        second = int(mlflow.register_model(trained.model_uri, ml.model_name).version)
        client.set_registered_model_alias(ml.model_name, train.CHAMPION, str(second))
        _silver_rows(spark, records, SPLIT_H, 2 * SPLIT_H, key).write.format("delta").mode("append").save(silver)
        _wait(lambda: _read(spark, cfg, "gold.risk_scores").where(F.col("model_version") == second).count() > 0,
              "scores of the newly promoted champion")  # fmt: skip
        _wait(
            lambda: query.lastProgress is not None and query.status["isDataAvailable"] is False, "an idle scorer", 120
        )
        ids.append(str(query.id))
        active = query.isActive
    finally:
        query.stop()
    env = {**os.environ, "LAKEHOUSE_ENV": str(path)}
    yield Served(cfg, env, trained.run_id, first, second, ids, active)


def test_the_model_is_logged_with_its_pinned_requirements(served: Served) -> None:
    """Given explicitly (MLflow does not load the model in a second process to infer them), pinned to this
    environment, and complete enough that the registered model loaded and scored (the fixture)."""
    mlflow = train._mlflow(served.cfg)
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{served.run_id}/model"))
    requirements = (folder / "requirements.txt").read_text().split()
    assert sorted(requirements) == sorted(train.model_requirements())
    assert all("==" in r for r in requirements) and any(r.startswith("pyspark==") for r in requirements)


def test_the_scorer_writes_risk_scores_from_the_live_stream(served: Served, spark: SparkSession) -> None:
    scores = _read(spark, served.cfg, "gold.risk_scores")
    feats = _read(spark, served.cfg, "gold.features_hourly")
    start = fx.PSV_ORIGIN.replace(tzinfo=None)
    live = feats.where(F.col("hour_start") < F.lit(start + timedelta(hours=2 * SPLIT_H)))
    # every feature row of the hours the stream brought has exactly one score, and nothing else is scored
    assert scores.count() == scores.select("patient_ref", "hour_start").distinct().count()
    assert scores.join(live, ["patient_ref", "hour_start"], "left_anti").count() == 0
    assert live.join(scores, ["patient_ref", "hour_start"], "left_anti").count() == 0
    # every patient the stream brought is scored: not every patient trained on (p000061, the sample's 61st, has no
    # vital sign in its first 24 ICU hours, and more than 60 are trained on under some keys)
    streamed = _read(spark, served.cfg, "silver.vitals").select("patient_ref").distinct().count()
    row = scores.agg(F.min("risk_score"), F.max("risk_score"), F.countDistinct("patient_ref")).first()
    assert row is not None and 0 <= row[0] < row[1] <= 1 and row[2] == streamed >= PATIENTS


def test_a_newly_promoted_champion_is_picked_up_without_a_restart(served: Served, spark: SparkSession) -> None:
    assert served.active_throughout and len(set(served.query_ids)) == 1, "the scorer query ran on, unrestarted"
    scores = _read(spark, served.cfg, "gold.risk_scores")
    split = fx.PSV_ORIGIN.replace(tzinfo=None) + timedelta(hours=SPLIT_H)
    before = {
        r[0] for r in scores.where(F.col("hour_start") < F.lit(split)).select("model_version").distinct().collect()
    }
    after = {
        r[0] for r in scores.where(F.col("hour_start") >= F.lit(split)).select("model_version").distinct().collect()
    }
    assert before == {served.first} and after == {served.second}, (before, after)


def test_the_champion_replicates_to_the_secondary_and_scores_there_without_the_registry(
    served: Served, spark: SparkSession
) -> None:
    """The champion (files, manifest, alias) lands on europe's HDFS once; with the MLflow registry unreachable, a
    scorer in europe loads it from there and scores exactly as the registry's champion; a region without a replica
    says what to do."""
    from dataclasses import replace

    from lakehouse.errors import LakehouseError
    from lakehouse.replication import models

    cfg, europe = served.cfg, served.cfg.regions["europe"]
    first = models.replicate_champion(cfg, europe)
    assert (first.status, first.version) == ("replicated", served.second) and first.files > 0 and first.bytes > 0
    again = models.replicate_champion(cfg, europe)
    assert (again.status, again.version, again.files) == ("up_to_date", served.second, 0)
    manifest = models.read_champion(europe, cfg.ml.model_name)
    assert manifest["run_id"] == served.run_id and any(f["path"].startswith("sparkml/") for f in manifest["files"])

    offline = replace(cfg, mlflow=replace(cfg.mlflow, tracking_uri="http://127.0.0.1:9"))  # nothing listens there
    assert models.registry_answers(cfg) and not models.registry_answers(offline)
    replica = scoring.ChampionWatcher(offline, print, europe).current()
    registry = scoring.ChampionWatcher(cfg, print).current()
    assert (replica.version, replica.run_id, replica.threshold) == (
        registry.version,
        registry.run_id,
        registry.threshold,
    )
    rows = _read(spark, cfg, "gold.features_hourly").orderBy("patient_ref", "hour_start").limit(300).cache()
    scored = [
        sorted(
            tuple(r) for r in scoring.score_rows(rows, c).select("patient_ref", "hour_start", "risk_score").collect()
        )
        for c in (replica, registry)
    ]
    assert scored[0] == scored[1] and len(scored[0]) == 300
    with pytest.raises(LakehouseError, match="no replica of model"):
        scoring.ChampionWatcher(offline, print, cfg.primary).current()


def test_a_lost_registry_is_rebuilt_in_the_regions_own_mlflow_from_the_replica(
    served: Served, spark: SparkSession, tmp_path: Path
) -> None:
    """europe's own MLflow registry: a second real tracking server (`lakehouse stack up --service mlflow` of a profile
    with its own state folder and port), empty. `replicate restore-model --target europe` registers the champion
    replicated into europe there (files checked against the manifest, the run's metrics, the version's tags,
    `replica.of`) and points the champion alias at it, once (a rerun finds it); a scorer on that registry loads
    `models:/...` from it and scores exactly as the primary's champion; the restore is in europe's audit log."""
    from lakehouse import audit
    from lakehouse.config import load_config
    from lakehouse.replication import models

    cfg, europe = served.cfg, served.cfg.regions["europe"]
    models.replicate_champion(cfg, europe)  # idempotent: the replica the previous test made, or made now
    data = yaml.safe_load(cfg.source.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["mlflow"] = {**data["mlflow"], "tracking_uri": f"http://127.0.0.1:{free_port()}"}
    profile = tmp_path / "europe-registry.yaml"
    profile.write_text(yaml.safe_dump(data))
    env = {**os.environ, "LAKEHOUSE_ENV": str(profile)}
    up = run_cli("stack", "up", "--service", "mlflow", env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        first = run_cli("replicate", "restore-model", "--target", "europe", env=env)
        assert first.returncode == 0 and "restored as version 1" in first.stdout, first.stdout + first.stderr
        again = run_cli("replicate", "restore-model", "--target", "europe", env=env)
        assert again.returncode == 0 and "up_to_date as version 1" in again.stdout, again.stdout + again.stderr

        own = load_config(str(profile))
        client = train._mlflow(own).MlflowClient()
        version = client.get_model_version_by_alias(own.ml.model_name, train.CHAMPION)
        assert version.version == "1" and version.tags[models.REPLICA_TAG].endswith(f"@{served.run_id}")
        assert len(client.search_model_versions(f"name = '{own.ml.model_name}'")) == 1
        restored = scoring.ChampionWatcher(own, print).current()
        primary = scoring.ChampionWatcher(cfg, print).current()
        assert restored.threshold == primary.threshold and restored.version == 1
        rows = _read(spark, cfg, "gold.features_hourly").orderBy("patient_ref", "hour_start").limit(200).cache()
        scored = [
            sorted(tuple(r) for r in scoring.score_rows(rows, c).select("patient_ref", "risk_score").collect())
            for c in (restored, primary)
        ]
        assert scored[0] == scored[1] and len(scored[0]) == 200
        (row, *_) = [r for r in audit.read(europe, "model.restore") if r["outcome"] == "restored"][-1:]
        assert (
            row["target"] == f"{own.ml.model_name}/1"
            and json.loads(row["detail"])["registry"] == own.mlflow.tracking_uri
        )
    finally:
        down = run_cli("stack", "down", "--service", "mlflow", env=env)
        assert down.returncode == 0, down.stderr
        train._mlflow(cfg)  # this module's registry again for the tests after this one


def test_every_risk_alert_episode_was_announced_once_on_the_alerts_topic(served: Served, spark: SparkSession) -> None:
    scores = _read(spark, served.cfg, "gold.risk_scores")
    above = scores.where("above_threshold")
    assert above.count() > 0, "the threshold (80th percentile of training scores) was crossed"
    assert above.where(F.col("alert_id").isNull()).count() == 0
    assert scores.where(~F.col("above_threshold") & F.col("alert_id").isNotNull()).count() == 0
    records = spark.read.format("kafka").option("kafka.bootstrap.servers", served.cfg.primary.kafka.bootstrap) \
        .option("subscribe", served.cfg.topics.alerts).option("startingOffsets", "earliest").load()  # fmt: skip
    events = [json.loads(r[0]) for r in records.select(F.col("value").cast("string")).collect()]
    risk = [e for e in events if e["level"] == "sepsis_risk"]
    opened = {e["alert_id"] for e in risk if e["status"] == "open"}
    episodes = {r[0] for r in scores.where(F.col("alert_id").isNotNull()).select("alert_id").distinct().collect()}
    assert opened == episodes
    for e in risk:  # complete rows: a close carries its episode's opening
        assert (
            e["patient_ref"]
            and e["ward"] == "icu"  # routed like NEWS2 alerts: the patient's ward in silver
            and e["opened_observation_time"]
            and any(p.startswith("risk_score=") for p in e["triggering_parameters"])
        )
    closed = {e["alert_id"] for e in risk if e["status"] == "closed"}
    assert closed <= opened


def test_batch_scoring_in_a_fresh_process_replaces_scores_and_keeps_episodes(
    served: Served, spark: SparkSession
) -> None:
    start = fx.PSV_ORIGIN.replace(tzinfo=None)
    span = ["--start", f"{start:%Y-%m-%dT%H:%M}", "--end", f"{start + timedelta(days=3):%Y-%m-%dT%H:%M}"]
    env = served.env
    out = run_cli("ml", "score", *span, "--json", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    feats = _read(spark, served.cfg, "gold.features_hourly").where(
        (F.col("hour_start") >= F.lit(start)) & (F.col("hour_start") < F.lit(start + timedelta(days=3)))
    )
    assert result["rows"] == feats.count() and result["model_version"] == served.second
    scores = _read(spark, served.cfg, "gold.risk_scores")
    assert scores.count() == scores.select("patient_ref", "hour_start").distinct().count(), "a re-score replaces"
    assert scores.where(F.col("above_threshold") & F.col("alert_id").isNull() & (F.col("hour_start") < F.lit(start + timedelta(hours=2 * SPLIT_H)))).count() == 0, "episodes kept"  # fmt: skip
    # drift through the CLI: tests/integration/test_nightly_retraining.py (the DAG's drift task)


def test_ml_evaluate_scores_a_psv_folder_through_the_feature_code(served: Served, tmp_path: Path) -> None:
    folder = tmp_path / "external"
    folder.mkdir()
    last = sorted(patient_id for patient_id, _, _ in physionet.iter_psv_files(physionet.SAMPLE_ARCHIVE))[-12:]
    assert len(copy_sample_patients(folder, last)) == 12
    records = list(physionet.iter_patients(folder))
    uri = f"models:/{served.cfg.ml.model_name}@champion"
    out = run_cli("ml", "evaluate", "--psv-dir", str(folder), "--model-uri", uri, "--json", env=served.env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["patients"] == len(records) == 12
    assert result["rows"] == sum(len(r.rows) for r in records), "every labelled hour is scored"
    assert result["positives"] == sum(h.sepsis_label for r in records for h in r.rows)
    assert 0 <= result["auroc"] <= 1 and -2 <= result["utility"] <= 1
    bad = run_cli("ml", "evaluate", "--psv-dir", str(tmp_path / "missing"), "--model-uri", uri, env=served.env)
    assert bad.returncode != 0 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_ml_cv_cross_validates_by_patient_and_logs_to_mlflow(served: Served) -> None:
    # two folds check "each patient in exactly one fold" as well as three would, with a third less training
    out = run_cli("ml", "cv", "--psv-dir", str(physionet.SAMPLE_ARCHIVE), "--patients", "60", "--folds", "2", "--json",
                  env=served.env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    records = list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE, 60))
    folds = result["per_fold"]
    assert [f["fold"] for f in folds] == [0, 1]
    assert sum(f["patients"] for f in folds) == len(records) == result["patients"], "each patient in one fold"
    assert sum(f["rows"] for f in folds) == result["hours"] == sum(len(r.rows) for r in records)
    for metric in ("auroc", "utility"):
        values = [f[metric] for f in folds]
        assert result["summary"][metric]["mean"] == pytest.approx(sum(values) / 2, abs=1e-4)
    assert result["jvm_peak_rss_mib"] > 100
    run = train._mlflow(served.cfg).MlflowClient().get_run(result["mlflow_run_id"])
    assert run.data.tags["kind"] == "cross_validation" and "cv_auroc_mean" in run.data.metrics
