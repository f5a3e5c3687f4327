"""Shared fixtures: the typed config, the real local stack, and one session-scoped SparkSession."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from lakehouse import pipeline
from lakehouse.config import Config, load_config, write_sandbox_profile
from lakehouse.devices import physionet, simulator
from lakehouse.ingest.registry import register_assignments
from lakehouse.orchestration.airflow import AirflowClient, DagRun
from lakehouse.session import build_spark
from lakehouse.stack import manager

CLI = [sys.executable, "-m", "lakehouse"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the `lakehouse` CLI in a fresh process and capture its output."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def free_port() -> int:
    """A TCP port nothing listens on now (for a test's own server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_ml_settings(profile: Path, **settings: Any) -> Config:
    """Set ``ml`` settings in a sandbox profile (fresh processes read them too) and load it. A sandbox that trains
    gives its own experiment and model name, so the shared registry's champion is never touched."""
    data = yaml.safe_load(profile.read_text())
    data["ml"].update(settings)
    profile.write_text(yaml.safe_dump(data))
    return load_config(str(profile))


def sample_patients_to_train(spark: SparkSession, key: bytes, at_least: int, validation_pct: int) -> int:
    """How many of the committed sample's first patients to train on: ``at_least``, or more until a septic patient
    is among the validation ones. Those are picked by a hash of the pseudonym, so by the stack's key, which a fresh
    stack draws at random; with too few septic patients (15 of the first 150) the draw can leave none, and training
    refuses (``train.require_evaluable``). This finds the first count that will not."""
    from pyspark.sql import functions as F

    from lakehouse.ml import features as fx
    from lakehouse.security import pseudonyms

    records = list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE))
    rows = spark.createDataFrame(
        [(i, r.patient_id) for i, r in enumerate(records) if r.septic], "position int, patient_ref string"
    )
    held = pseudonyms.pseudonymize(rows, key).where(fx.split_of(F.col("patient_ref"), validation_pct) == "validation")
    first = held.agg(F.min("position")).first()
    assert first is not None and first[0] is not None, "no septic sample patient validates under this key"
    return max(at_least, int(first[0]) + 1)


def copy_sample_patients(folder: Path, patient_ids: Collection[str]) -> list[Path]:
    """Copy the committed sample's ``.psv`` files of ``patient_ids`` into ``folder`` (a folder of patient files, as
    ``ml evaluate`` and ``ml cv`` take); the files written."""
    written = []
    for patient_id, name, data in physionet.iter_psv_files(physionet.SAMPLE_ARCHIVE):
        if patient_id in patient_ids:
            written.append(folder / Path(name).name)
            written[-1].write_bytes(data)
    return written


def run_dag_once(
    client: AirflowClient,
    dag_id: str,
    conf: dict[str, Any],
    logical_date: datetime | None = None,
    timeout_s: float = 1800,
    poll_s: float = 5,
) -> DagRun:
    """Trigger ``dag_id``, keep it unpaused until that run ends, and leave it paused as found. A scheduled DAG falls
    due while it runs when a test crosses the next interval (midnight UTC for the daily ones): the scheduler then
    starts that run the moment this one ends (one active run per DAG), a nightly job on the test stack that the
    next test's run queues behind. Such a run is marked failed with a note (the DAG is paused first, so none follows)."""
    run = client.trigger_and_unpause(dag_id, conf, logical_date)
    try:
        return client.wait(dag_id, run.run_id, timeout_s=timeout_s, poll_s=poll_s, progress=print)
    finally:
        client.set_paused(dag_id, True)
        for due in client.runs(dag_id, run_type="scheduled", states=("queued", "running")):
            print(f"marking {dag_id} {due.run_id} ({due.state}) failed: scheduled while a test had the DAG unpaused")
            client.set_run_state(dag_id, due.run_id, "failed", note="a test stack does not run scheduled intervals")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last`` run after all others, in their own order. The DR drills start two pipelines, a
    replicator and devices side by side: at the end of `make test` the second lane is done or in its last, short
    modules, so they share two cores with it as little as they can (on CI they once waited 5 min for a pipeline
    to start), and they hold the shared stack exclusively (:func:`shared_stack_lock`)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)  # stable: file order otherwise


@pytest.fixture(scope="session")
def cfg() -> Config:
    """The embedded default profile (or whatever LAKEHOUSE_ENV selects)."""
    return load_config()


def wait_for_services(cfg: Config, names: list[str], timeout_s: float = 900) -> None:
    """Wait until the named services answer healthy at once, started by another process (the other lane of
    `make test`); never start one (two `stack up` at once would race). Fails loudly after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not all(s.healthy for s in manager.status(cfg, names)):
        if time.monotonic() > deadline:
            down = sorted(s.name for s in manager.status(cfg, names) if not s.healthy)
            pytest.fail(
                f"{', '.join(down)} not healthy after {timeout_s:.0f}s: run `lakehouse stack up`", pytrace=False
            )
        time.sleep(5)


LANE_ENV = (
    "LAKEHOUSE_TEST_LANE"  # "beside": the second lane of `make test` (scripts/test.sh), beside the integration lane
)


def beside_lane() -> bool:
    """True in the second lane of `make test`: the integration lane owns the shared stack (starts and stops it)."""
    return os.environ.get(LANE_ENV) == "beside"


@contextmanager
def shared_stack_lock(cfg: Config, exclusive: bool, timeout_s: float = 3600) -> Iterator[None]:
    """Hold ``<state>/locks/shared-stack.lock``: exclusively while a module kills and restarts the shared stack's
    services (the DR drills), shared while a module of the second lane uses them. The two lanes of `make test` run
    side by side; this keeps a drill's region outage away from the other lane's tests. Fails loudly on timeout."""
    path = cfg.state_dir / "locks" / "shared-stack.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with path.open("a") as handle:
        deadline, told = time.monotonic() + timeout_s, False
        while True:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{path} still held by the other test lane after {timeout_s:.0f}s", pytrace=False)
                if not told:
                    print(f"waiting for {path} ({'exclusive' if exclusive else 'shared'}): the other lane holds it")
                    told = True
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="module", autouse=True)
def _beside_the_integration_lane(request: pytest.FixtureRequest) -> Iterator[None]:
    """In the second lane, an integration module uses the shared stack only while no DR drill has it down."""
    if beside_lane() and "integration" in Path(str(request.node.path)).parts:
        with shared_stack_lock(load_config(), exclusive=False):
            yield
    else:
        yield


@pytest.fixture(scope="session")
def stack(cfg: Config) -> Iterator[Config]:
    """The real local stack: reuse the healthy services, start the others, stop only what was started here.

    A service that cannot be started fails the tests that need it, loudly; nothing is skipped. In the second
    lane of `make test` the integration lane owns the stack: wait for its services, never start or stop one.
    """
    if beside_lane():
        wait_for_services(cfg, [s.name for s in manager.select(cfg) if s.managed])  # what `stack up` starts
        yield cfg
        return
    before = {s.name for s in manager.status(cfg) if s.running and s.healthy}
    result = run_cli("stack", "up")
    if result.returncode != 0:
        pytest.fail(f"`lakehouse stack up` failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    yield cfg
    started = [s.name for s in manager.services(cfg) if s.managed and s.name not in before]
    if started:
        args = [a for name in started for a in ("--service", name)]
        down = run_cli("stack", "down", *args)
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="session")
def spark(cfg: Config) -> Iterator[SparkSession]:
    """One SparkSession for the whole run: local[2], UI off, two shuffle partitions, local Delta/Kafka jars, and
    an in-memory catalog (tables are read by path; the persistent catalog is tested in fresh processes)."""
    session = build_spark(
        cfg,
        "lakehouse-tests",
        overrides={"spark.master": "local[2]", "spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"},
        persistent_catalog=False,  # sandboxes of several profiles share this session: keep its catalog in memory
    )
    yield session
    session.stop()


@dataclass(frozen=True)
class Filled:
    """A sandbox after one `pipeline run --once`-style pass over a PhysioNet replay and simulated devices with
    injected bad data, and what was sent (so exact counts can be asserted)."""

    path: Path
    cfg: Config
    records: list[physionet.PatientRecord]  # the replayed patients
    replayed: physionet.ReplayStats
    sim: simulator.Simulator
    sent: int  # simulated messages


@pytest.fixture(scope="session")
def filled(stack: Config, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """One filled sandbox for the tests that read a pipeline's tables (test_pipeline.py, test_interop.py): a
    sandbox's first pass costs minutes on two cores, so they share it. Its readers do not write to it before
    test_pipeline.py's own second pass and poison messages (which run last, by file order)."""
    path = write_sandbox_profile(stack.source, tmp_path_factory.mktemp("filled"), "pipeline")
    cfg = load_config(str(path))
    region = cfg.primary
    records = list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE, 15))
    origin = physionet.default_origin(records)
    fleet = simulator.make_fleet(12, seed=11, prefix="it")
    register_assignments(cfg, region, physionet.assignments(records, origin, region.name))
    register_assignments(cfg, region, simulator.fleet_assignments(fleet, origin, region.name))
    replayed = physionet.replay(cfg, physionet.SAMPLE_ARCHIVE, 15, speed=0, progress=lambda _: None)
    sim, sent = simulator.simulate(
        cfg, 12, rate=10, seconds=120, bad_fraction=0.3, seed=11, realtime=False, prefix="it", progress=lambda _: None
    )
    pipeline.run_once(spark, cfg, region, progress=lambda _: None)
    return Filled(path, cfg, records, replayed, sim, sent)
