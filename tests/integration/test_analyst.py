"""The analyst's side on the real local stack: the persistent catalog across processes and a metastore restart,
`lakehouse sql`, every notebook executed headlessly, and gold through the Spark Connect server; and the jobs on a
real Spark standalone cluster (`lakehouse stack up --spark-cluster`, `lakehouse submit --master cluster`).

One sandbox (its own lakehouse root and topics on the shared stack, and a metastore of its own, which the catalog
test restarts without disturbing the tests of the other lane) is filled by two catch-up passes: the first in the
tests' warm session (a new JVM's first pass costs minutes on two cores), the second as production runs it: `lakehouse
submit --master cluster pipeline -- --once`, spark-submit of jobs/pipeline.py on the standalone cluster (a master
and two workers of pyspark's own distribution, started for this module and stopped after it), which registers every
table in the sandbox's persistent catalog; gold.news2 has a version before and after the second pass. Then the
model's tables (a sandbox champion, trained by `lakehouse submit --master cluster train`, its scores and drift) and
one replication pass to the secondary, verified by `lakehouse submit --master cluster replicate -- verify`, for the
model and DR notebooks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse import notebook, pipeline, sql
from lakehouse.config import Config, SparkClusterConfig, load_config, write_sandbox_profile
from lakehouse.devices import physionet, simulator
from lakehouse.ingest.registry import register_assignments
from lakehouse.ml import build, drift, scoring, train
from lakehouse.replication import replicator
from lakehouse.security import encryption, pseudonyms
from lakehouse.tables import DATABASES, uri
from tests.conftest import free_port, run_cli, sample_patients_to_train, with_ml_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]  # the module fixture runs two pipeline passes


@dataclass(frozen=True)
class Sandbox:
    """A filled sandbox: its profile, a moment between the two pipeline passes, the dates its data spans."""

    path: Path
    cfg: Config
    between: datetime
    first_date: date
    last_date: date
    replay_origin: datetime  # event time of ICU hour 0 of the replayed PhysioNet patients
    replayed: int  # patients replayed
    expected: tuple[int, int, int]  # messages accepted, quarantined, duplicate over both passes (the producers' own)
    cluster_app: dict[str, Any]  # the standalone master's record of the second pass
    cluster_jobs: dict[str, dict[str, Any]]  # its records of the submitted training and replica verification

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LAKEHOUSE_ENV": str(self.path)}


def count(spark: SparkSession, cfg: Config, table: str) -> int:
    """Rows of a sandbox table, read by path (no catalog involved)."""
    return spark.read.format("delta").load(uri(cfg.primary, table)).count()


def master_status(url: str) -> Any:
    """The standalone master's (or a worker's) JSON status page."""
    with urllib.request.urlopen(url.rstrip("/") + "/json/", timeout=10) as response:
        return json.loads(response.read().decode())


def executors_per_worker(cluster: SparkClusterConfig, app_id: str) -> list[int]:
    """How many executors of the application each worker of the cluster ran (running or finished)."""
    counts = []
    for i in range(1, cluster.workers + 1):
        worker = master_status(f"http://127.0.0.1:{cluster.worker_web_port + i}")
        counts.append(sum(e["appid"] == app_id for e in worker["finishedexecutors"] + worker["executors"]))
    return counts


def _on_the_cluster(
    box_env: dict[str, str], cluster: SparkClusterConfig, job: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`lakehouse submit --master cluster JOB -- ARGS`; returns its output and the master's record of the application."""
    before = {a["id"] for a in master_status(cluster.web_url)["completedapps"]}
    result = run_cli("submit", "--master", "cluster", job, "--", *args, env=box_env, timeout=1500)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"on {cluster.master_url}" in result.stderr
    (app,) = [a for a in master_status(cluster.web_url)["completedapps"] if a["id"] not in before]
    return result, dict(app)


def _pipeline_on_the_cluster(box_env: dict[str, str], cluster: SparkClusterConfig) -> dict[str, Any]:
    """`lakehouse submit --master cluster pipeline -- --once`; returns the master's record of the application."""
    result, app = _on_the_cluster(box_env, cluster, "pipeline", "--once")
    assert "balanced" in result.stdout
    return app


ML_PATIENTS = 60  # the replayed patients among them, so model risk joins NEWS2 by patient


def _model_and_replica(
    spark: SparkSession, path: Path, cluster: SparkClusterConfig
) -> tuple[Config, dict[str, dict[str, Any]]]:
    """What the nightly DAG and the replicator leave for the model and DR notebooks: features and labels of
    PhysioNet patients, a champion of the sandbox's own model name (trained by `lakehouse submit --master cluster
    train`), its scores, two drift checks, and one replication pass of two tables to the secondary
    (ops.replication_state there), verified by `lakehouse submit --master cluster replicate -- verify`. Returns the
    profile and the master's records of the training and the verification."""
    cfg = with_ml_settings(path, experiment=f"test-{path.stem}", model_name=f"sepsis_risk_{path.stem}", max_iter=5,
                           max_depth=3)  # fmt: skip
    region = cfg.primary
    box_env = {**os.environ, "LAKEHOUSE_ENV": str(path)}
    key = pseudonyms.patient_key(cfg)
    patients = sample_patients_to_train(spark, key, ML_PATIENTS, cfg.ml.validation_pct)
    records = list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE, patients))
    build.from_psv(spark, region, physionet.SAMPLE_ARCHIVE, patients, progress=print, patient_key=key)
    result, trained_app = _on_the_cluster(box_env, cluster, "train", "train")
    # the job's one JSON line (its MLflow run), among spark-submit's merged output
    (trained,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"run_id"')]
    train.register(cfg, trained["model_uri"], trained["run_id"])
    assert train.gate(spark, cfg, region, progress=print).promoted
    start, end = build.psv_range(records)
    scoring.batch_score(spark, cfg, region, start, end, progress=print)
    half = (end - start) / 2
    for until in (start + half, end):  # drift "over time": two checks of consecutive windows
        drift.check_drift(spark, cfg, region, end=until, hours=int(half.total_seconds() // 3600), progress=print)
    secondary = next(r.name for r in cfg.regions.values() if r.role == "secondary")
    # two small tables: a first pass over every table copies each version of each (minutes on two cores)
    assert replicator.replicator(cfg, region.name, secondary).run_pass(list(REPLICATED)).ok
    tables = [a for t in REPLICATED for a in ("--table", t)]
    result, verified_app = _on_the_cluster(box_env, cluster, "replicate", "verify", "--source", region.name,
                                           "--target", secondary, *tables)  # fmt: skip
    assert f"verify {region.name} -> {secondary}: OK" in result.stdout + result.stderr
    return cfg, {"train": trained_app, "replicate verify": verified_app}


REPLICATED = ("gold.alerts", "gold.model_drift")


def _own_state_profile(profile: Path, folder: Path, **changes: Any) -> dict[str, str]:
    """The environment of `lakehouse stack` for a service of the sandbox's own: a copy of its profile with its
    own state folder (so the service's home, pid file and data never meet the shared stack's), the deployment's
    master keys (the tables' encrypted columns are unreadable without them) and ``changes`` at top level."""
    data = {**yaml.safe_load(profile.read_text()), "state_dir": str(folder / "state"), **changes}
    own = folder / "profile.yaml"
    own.write_text(yaml.safe_dump(data))
    keys = encryption.key_file(load_config(str(profile)))
    return {**os.environ, "LAKEHOUSE_ENV": str(own), encryption.KEY_FILE_ENV: str(keys)}


@pytest.fixture(scope="module")
def metastore(stack: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The sandbox's profile, whose primary region's catalog is a metastore of its own (a Derby server on a free
    port, started by `lakehouse stack up --service metastore-<region>`), and the environment that starts and stops
    it: restarting it disturbs no other test's catalog (the suite runs in two lanes at once)."""
    path = write_sandbox_profile(stack.source, tmp_path_factory.mktemp("analyst"), "analyst")
    primary = load_config(str(path)).primary.name
    data = yaml.safe_load(path.read_text())
    data["regions"][primary]["metastore"]["derby_port"] = free_port()
    path.write_text(yaml.safe_dump(data))
    env = _own_state_profile(path, tmp_path_factory.mktemp("metastore"))
    service = f"metastore-{primary}"
    up = run_cli("stack", "up", "--service", service, env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield path, env
    finally:
        down = run_cli("stack", "down", "--service", service, env=env)
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="module")
def cluster(stack: Config) -> Iterator[SparkClusterConfig]:
    """The Spark standalone cluster, started as ops start it, and stopped after the module (no other one uses it)."""
    assert stack.spark_cluster is not None
    up = run_cli("stack", "up", "--spark-cluster", timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield stack.spark_cluster
    finally:
        down = run_cli("stack", "down", "--spark-cluster")
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def sandbox(metastore: tuple[Path, dict[str, str]], cluster: SparkClusterConfig, spark: SparkSession) -> Sandbox:
    path = metastore[0]
    cfg = load_config(str(path))
    env = {**os.environ, "LAKEHOUSE_ENV": str(path)}
    region = cfg.primary
    records = list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE, 12))
    origin = physionet.default_origin(records)
    register_assignments(cfg, region, physionet.assignments(records, origin, region.name))
    replayed = physionet.replay(cfg, physionet.SAMPLE_ARCHIVE, 12, speed=0, progress=lambda _: None)
    first = simulator.make_fleet(12, seed=21, prefix="an1")
    register_assignments(cfg, region, simulator.fleet_assignments(first, origin, region.name))
    sim1, _ = simulator.simulate(
        cfg, 12, rate=10, seconds=120, bad_fraction=0.2, seed=21, realtime=False, prefix="an1", progress=lambda _: None
    )
    pipeline.run_once(spark, cfg, region, progress=lambda _: None)  # in-memory catalog: the CLI pass registers
    time.sleep(1.5)  # commit timestamps have millisecond resolution; keep "between" clear of both passes
    between = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    time.sleep(1.5)
    second = simulator.make_fleet(6, seed=22, prefix="an2")
    register_assignments(cfg, region, simulator.fleet_assignments(second, origin, region.name))
    sim2, _ = simulator.simulate(
        cfg, 6, rate=10, seconds=60, bad_fraction=0.1, seed=22, realtime=False, prefix="an2", progress=lambda _: None
    )
    app = _pipeline_on_the_cluster(env, cluster)
    e1, e2 = sim1.expected, sim2.expected
    expected = (
        replayed.messages + e1.messages_accepted + e2.messages_accepted,
        e1.messages_quarantined + e2.messages_quarantined,
        e1.messages_duplicate + e2.messages_duplicate,
    )
    cfg, jobs = _model_and_replica(spark, path, cluster)
    news2 = spark.read.format("delta").load(uri(region, "gold.news2"))
    span = news2.agg(F.min("observation_date"), F.max("observation_date")).first()
    assert span is not None and span[0] is not None
    today = datetime.now(UTC).date()
    return Sandbox(path, cfg, between, span[0], max(span[1], today), origin, len(records), expected, app, jobs)


def test_the_feature_job_takes_labels_from_the_replayed_stream(sandbox: Sandbox, spark: SparkSession) -> None:
    """Silver mode with labels: features of the replay's hours from silver.vitals, labels from what the replay
    sent (bronze.telemetry), one per patient-hour it sent a message for, equal to the files' SepsisLabel."""
    from datetime import timedelta

    records = list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE, sandbox.replayed))
    start = sandbox.replay_origin - timedelta(hours=1)  # the replay took its own origin: the same hour or the next
    end = start + timedelta(hours=max(r.max_iculos for r in records) + 3)
    region = sandbox.cfg.primary
    run = build.from_silver(spark, region, start, end, progress=print, label_key=pseudonyms.patient_key(sandbox.cfg))
    key = pseudonyms.patient_key(sandbox.cfg)  # gold names patients by pseudonym
    sent = {
        (pseudonyms.pseudonym(r.patient_id, key), h.iculos): h.sepsis_label
        for r in records
        for h in r.rows
        if h.has_device_vitals()
    }
    assert run.label_rows == len(sent) > 0 and run.labels_version is not None
    naive = lambda moment: F.lit(moment.replace(tzinfo=None))
    labels = spark.read.format("delta").load(uri(region, "gold.sepsis_labels"))
    mine = labels.where((F.col("hour_start") >= naive(start)) & (F.col("hour_start") < naive(end)))
    assert {(r["patient_ref"], r["iculos"]): r["sepsis_label"] for r in mine.collect()} == sent
    # every labelled hour between a patient's first and last hour in silver has its feature row
    silver = spark.read.format("delta").load(uri(region, "silver.vitals"))
    spans = silver.groupBy("patient_ref").agg(
        F.date_trunc("hour", F.min("event_time")).alias("lo"), F.date_trunc("hour", F.max("event_time")).alias("hi")
    )
    inside = mine.join(spans, "patient_ref").where(F.col("hour_start").between(F.col("lo"), F.col("hi")))
    feats = spark.read.format("delta").load(run.features_uri)
    assert inside.count() > 0.9 * len(sent)
    assert inside.join(feats, ["patient_ref", "hour_start"]).count() == inside.count()


# --------------------------------------------------------------------------- the persistent catalog

CATALOG_PROBE = """
import json
from lakehouse.config import load_config
from lakehouse.session import build_spark
spark = build_spark(load_config(), "catalog-probe")  # no ensure_all, no registration: the metastore knows
comments = {r["col_name"]: r["comment"] for r in spark.sql("DESCRIBE TABLE gold.news2").collect()}
print(json.dumps({
    "news2": spark.sql("SELECT * FROM gold.news2").count(),
    "alerts": spark.sql("SELECT count(*) FROM gold.alerts").first()[0],
    "databases": sorted(r[0] for r in spark.sql("SHOW DATABASES").collect()),
    "table_comment": spark.sql("DESCRIBE TABLE EXTENDED gold.news2").where("col_name = 'Comment'").first()[1],
    "news2_total": comments["news2_total"],
    "operations": sorted({r["operation"] for r in spark.sql("DESCRIBE HISTORY gold.news2").collect()}),
}))
"""


def test_stack_up_spark_cluster_starts_a_master_with_its_workers(cluster: SparkClusterConfig) -> None:
    master = master_status(cluster.web_url)
    assert master["status"] == "ALIVE" and master["url"] == cluster.master_url
    alive = [w for w in master["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == cluster.workers and all(w["cores"] == cluster.worker_cores for w in alive)
    listed = run_cli("stack", "status", "--spark-cluster", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)["services"]}
    assert set(rows) == {"spark-master", *(f"spark-worker-{i}" for i in range(1, cluster.workers + 1))}
    assert all(r["healthy"] and r["pid"] for r in rows.values())


def test_the_pipeline_pass_on_the_cluster_ran_executors_on_every_worker_and_counts_reconcile(
    sandbox: Sandbox, cluster: SparkClusterConfig, spark: SparkSession
) -> None:
    """The second pass (submitted to the standalone cluster) finished as an application of the master, each worker
    ran executors of it, and over both passes the counts reconcile exactly with what the producers sent."""
    app = sandbox.cluster_app
    assert app["name"] == f"lakehouse-pipeline-{sandbox.cfg.primary.name}" and app["state"] == "FINISHED", app
    per_worker = executors_per_worker(cluster, app["id"])
    assert all(per_worker), f"a worker ran no executor of {app['id']}: {per_worker}"
    rec = pipeline.reconcile(spark, sandbox.cfg.primary)
    assert rec.balanced and (rec.accepted, rec.quarantined, rec.duplicate) == sandbox.expected


def test_training_and_replica_verification_ran_as_applications_of_the_cluster(
    sandbox: Sandbox, cluster: SparkClusterConfig
) -> None:
    """The sandbox's champion was trained, and its replica verified, by jobs submitted to the standalone cluster:
    each finished as an application of the master whose executors ran on its workers."""
    region = sandbox.cfg.primary.name
    names = {"train": f"sepsis-train-{region}", "replicate verify": "lakehouse-replicate-verify"}
    for job, app in sandbox.cluster_jobs.items():
        assert app["name"] == names[job] and app["state"] == "FINISHED", (job, app)
        assert sum(executors_per_worker(cluster, app["id"])) > 0, f"no worker ran an executor of {job} ({app['id']})"


def test_catalog_survives_a_metastore_restart_and_serves_several_new_processes_at_once(
    sandbox: Sandbox, spark: SparkSession, metastore: tuple[Path, dict[str, str]]
) -> None:
    service, env = f"metastore-{sandbox.cfg.primary.name}", metastore[1]
    assert run_cli("stack", "down", "--service", service, env=env).returncode == 0
    restarted = run_cli("stack", "up", "--service", service, env=env)
    assert restarted.returncode == 0, restarted.stderr
    command = [sys.executable, "-c", CATALOG_PROBE]
    procs = [
        subprocess.Popen(command, env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    answers = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert answers[0] == answers[1]
    answer = answers[0]
    assert answer["news2"] == count(spark, sandbox.cfg, "gold.news2") > 0
    assert answer["alerts"] == count(spark, sandbox.cfg, "gold.alerts") > 0
    assert set(DATABASES) <= set(answer["databases"])
    assert "patient observation" in answer["table_comment"]
    assert "NEWS2 aggregate score" in answer["news2_total"]
    # two pipeline passes each ran ensure_all: comments were written at creation, never altered again
    assert answer["operations"] == ["CREATE TABLE", "WRITE"]  # gold.news2 is append-only


def test_ensure_all_returns_at_once_only_while_its_fingerprint_and_every_log_hold(
    sandbox: Sandbox, spark: SparkSession
) -> None:
    """The fast path of ensure_all (each job's start): the ops database carries the fingerprint of the last
    complete pass; a catalog change outside it (a standby's registration, a dropped entry), another set of
    tables or a table whose log is gone makes it check and register every table again."""
    from lakehouse import tables
    from lakehouse.io import delta

    region = sandbox.cfg.primary
    tables.ensure_all(spark, region)  # whatever the session's catalog held before, it now carries the mark
    assert tables.ensure_all(spark, region) == [], "an unchanged region is not visited table by table"
    assert tables.fingerprint(region) != tables.fingerprint(region, skip={"gold.news2"})
    spark.sql("DROP TABLE gold.news2")  # an external table: the entry goes, the data stays
    assert tables.ensure_all(spark, region) == list(tables.SPECS), "a dropped entry makes it check every table"
    assert spark.catalog.tableExists("gold.news2"), "a dropped entry is restored"
    tables.register_existing(spark, region)
    assert tables.ensure_all(spark, region) == list(tables.SPECS), "after a registration outside ensure_all"
    assert delta.log_exists(spark, uri(region, "gold.news2"))
    assert not delta.log_exists(spark, uri(region, "gold.news2") + "_missing")


# --------------------------------------------------------------------------- lakehouse sql


def test_sql_command_answers_in_json_and_names_a_missing_table_in_one_line(
    sandbox: Sandbox, spark: SparkSession
) -> None:
    query = "SELECT level, count(*) AS alerts FROM gold.alerts GROUP BY level ORDER BY level"
    ok = run_cli("sql", query, "--format", "json", env=sandbox.env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    rows = json.loads(ok.stdout)
    assert {r["level"] for r in rows} <= {"high", "medium", "single_parameter"}
    assert sum(r["alerts"] for r in rows) == count(spark, sandbox.cfg, "gold.alerts")

    missing = run_cli("sql", "SELECT * FROM gold.nope", "--format", "csv", env=sandbox.env)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().splitlines()[-1].startswith("error: table or view not found: gold.nope")
    assert "Traceback" not in missing.stderr and "Py4JJavaError" not in missing.stderr


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC 1", "SQL syntax error at or near 'SELEC'"),
        ("SELECT no_such_column FROM range(3)", "no_such_column"),
        ("SELECT * FROM nowhere.nothing", "table or view not found: nowhere.nothing"),
        ("   ", "empty query"),
    ],
)
def test_refused_queries_become_one_line_errors(spark: SparkSession, query: str, message: str) -> None:
    with pytest.raises(sql.QueryError) as err:
        sql.run(spark, query, limit=10)
    assert message in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- Spark Connect and notebooks


@pytest.fixture(scope="module")
def connect_url(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server over the sandbox's catalog, started by `lakehouse stack up --service spark-connect`
    (its own state folder and a free port, so it never meets a regular server), stopped at the end."""
    url = f"sc://127.0.0.1:{free_port()}"
    connect = {**yaml.safe_load(sandbox.path.read_text())["spark_connect"], "url": url}
    env = _own_state_profile(sandbox.path, tmp_path_factory.mktemp("connect"), spark_connect=connect)
    up = run_cli("stack", "up", "--service", "spark-connect", env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = run_cli("stack", "status", "--json", env=env)
        rows = [s for s in json.loads(status.stdout)["services"] if s["name"] == "spark-connect"]
        assert rows and rows[0]["healthy"] and rows[0]["pid"], status.stdout
        yield url
    finally:
        down = run_cli("stack", "down", "--service", "spark-connect", env=env)
        assert down.returncode == 0, down.stderr


CONNECT_CLIENT = """
import json, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
print(json.dumps({
    "news2": spark.sql("SELECT count(*) FROM gold.news2").first()[0],
    "high_or_medium": spark.table("gold.news2").where("news2_total >= 5").count(),
    "remote": type(spark).__module__,
}))
"""


def test_spark_connect_server_from_stack_up_serves_gold(
    sandbox: Sandbox, spark: SparkSession, connect_url: str
) -> None:
    client = subprocess.run(
        [sys.executable, "-c", CONNECT_CLIENT, connect_url], env=sandbox.env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert client.returncode == 0, client.stderr[-3000:]
    answer = json.loads(client.stdout.strip().splitlines()[-1])
    news2 = spark.read.format("delta").load(uri(sandbox.cfg.primary, "gold.news2"))
    assert answer["news2"] == news2.count() > 0
    assert answer["high_or_medium"] == news2.where("news2_total >= 5").count()
    assert answer["remote"].startswith("pyspark.sql.connect")


# The first notebook runs on the project's own session in the kernel (a local JVM); the others through the
# stack's Spark Connect server, the way an analyst without Java runs them (and one JVM instead of five).
LOCAL_SESSION = notebook.notebooks()[0].name


@pytest.mark.parametrize("path", notebook.notebooks(), ids=lambda p: p.name)
def test_notebook_runs_headlessly_and_every_query_returns_rows(sandbox: Sandbox, connect_url: str, path: Path) -> None:
    executed = notebook.execute(
        path,
        {
            "REGION": sandbox.cfg.primary.name,
            "DATE_FROM": sandbox.first_date.isoformat(),
            "DATE_TO": sandbox.last_date.isoformat(),
            "PROFILE": str(sandbox.path),
            "CONNECT": None if path.name == LOCAL_SESSION else connect_url,
            "REQUIRE_ROWS": True,  # an empty query result fails its cell
            "AS_OF": sandbox.between.isoformat(sep=" "),
        },
        timeout_s=600,
    )
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "every cell ran"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert notebook.images(executed) >= 1, "at least one chart rendered"
    sql_cells = [c for c in code if c.source.startswith("%%sql")]
    assert sql_cells and all(c.outputs for c in sql_cells), "every query displayed its result"
    setup_output = "".join(str(o.get("data", {}).get("text/plain", "")) for c in code[:3] for o in c.outputs)
    assert f"Params(region='{sandbox.cfg.primary.name}'" in setup_output, "the set-up cell showed its parameters"
