"""The continuous pipeline's two tiers, each its own Spark application.

The front tier (``FRONT``) runs in the supervising ``pipeline run`` process: the queries that read Kafka, the
real-time one (``gold.news2`` + ``alerts.news2``, seconds from a device) and bronze (the record of arrival that
replication carries: its delay is what a disaster loses). The background tier, the tables derived from tables
(silver, the window tables, ``gold.alerts``), runs in a child process it starts (``pipeline run --tier
background``) at a lower CPU priority (``pipeline.background_nice``). On a machine of few cores a silver batch or a
window MERGE would otherwise take the cores an alert is waiting for: Spark's scheduler pools order tasks, not the
driver's planning, commits and Python, and never pre-empt a task; the operating system's priority does
(docs/benchmarks.md, `bench latency`).

The child is a subordinate: it warms up (Spark up) as soon as it starts, runs its queries only when told
("go" on its stdin, after the parent's checks), stops them when told ("stop"), on SIGTERM, when its fence
closes, or when the parent goes away (end of stdin, or the kernel's parent-death signal after a kill -9),
and serves its metrics on a loopback port the parent folds into the region's endpoint.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from types import FrameType

from prometheus_client import start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from lakehouse.config import ENV_VAR, SANDBOX_VAR, Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.observability import listener
from lakehouse.observability.metrics import REGISTRY
from lakehouse.replication import fencing
from lakehouse.session import without_gateway

Progress = Callable[[str], None]
FRONT: frozenset[str] = frozenset({"gold.news2", "bronze.telemetry"})  # the rest: background
READY = "background tier: ready"  # the child's line once Spark is up (it then waits for "go")
RUNNING = "background tier: queries running"
_PR_SET_PDEATHSIG = 1


def become_background(cfg: Config) -> None:
    """In the child, before its JVM starts (which inherits both): lower its CPU priority to
    ``pipeline.background_nice``, and have the kernel SIGKILL it when the process that started it dies (even by
    kill -9; not on Linux the end of stdin still stops it)."""
    os.nice(cfg.pipeline.background_nice)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError as exc:
        print(f"background tier: no parent-death signal ({exc}); the end of stdin stops it", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Background:
    """The background tier's child process, seen from the pipeline process that started it."""

    def __init__(self, proc: subprocess.Popen[str], metrics_port: int, region: str, progress: Progress) -> None:
        self.proc = proc
        self.metrics_port = metrics_port
        self.region = region
        self._progress = progress
        self._running = threading.Event()
        self.report: dict[str, list[float]] = {}  # table -> its query's durations (s) of batches that read rows
        self._reader = threading.Thread(target=self._pump, name="background-tier-output", daemon=True)
        self._reader.start()

    @classmethod
    def spawn(cls, cfg: Config, region: RegionConfig, progress: Progress = print) -> Background:
        """Start the child (it warms up and waits for :meth:`go`) at ``pipeline.background_nice``; it loads the
        same profile file as this process."""
        port = _free_port()
        env = without_gateway(os.environ) | {ENV_VAR: str(cfg.source), SANDBOX_VAR: ""}
        nice = cfg.pipeline.background_nice
        proc = subprocess.Popen(
            [sys.executable, "-m", "lakehouse", "pipeline", "run", "--region", region.name, "--tier", "background",
             "--metrics-port", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env,
        )  # fmt: skip
        progress(f"pipeline ({region.name}): background tier starting as pid {proc.pid} (nice {nice})")
        return cls(proc, port, region.name, progress)

    def _pump(self) -> None:
        """The child's output into this process's (its log), each line marked; notes when its queries run, and its report."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(RUNNING):
                self._running.set()
            elif line.startswith("background tier: report "):
                self.report = json.loads(line.removeprefix("background tier: report "))
                continue
            self._progress(f"  [background] {line}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def require_alive(self) -> None:
        """Raise when the child has ended (its own output, already in the log, says why)."""
        if not self.alive():
            raise LakehouseError(
                f"the background tier of {self.region} ended (exit {self.proc.returncode})",
                fix="read the pipeline log: the child's lines are marked [background]",
            )

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            self.require_alive()
            raise

    def go(self, epoch: int, tick: Callable[[], None] = lambda: None, timeout_s: float = 600.0) -> None:
        """Tell the child to start its queries under ``epoch``; return once they run, calling ``tick`` (the
        pipeline's heartbeat) while it waits: a lower-priority start can take longer than a status stays fresh."""
        self._send(f"go {epoch}")
        deadline = time.monotonic() + timeout_s
        while not self._running.wait(0.5):
            tick()
            self.require_alive()
            if time.monotonic() > deadline:
                raise LakehouseError(
                    f"the background tier of {self.region} did not start its queries in {timeout_s:.0f}s"
                )

    def stop(self, timeout_s: float = 120.0) -> int | None:
        """Stop the child's queries cleanly and wait for it to end (SIGKILL after ``timeout_s``); its exit code."""
        if self.alive():
            try:
                self._send("stop")
            except (BrokenPipeError, ValueError, LakehouseError):
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._progress(f"pipeline ({self.region}): background tier did not stop in {timeout_s:.0f}s; killed")
                self.proc.kill()
                self.proc.wait(30)
        self._reader.join(5)
        return self.proc.returncode

    def metrics(self) -> list[Metric]:
        """The child's ``lakehouse_*`` metric families (none when it does not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as response:
                text = response.read().decode("utf-8")
        except OSError:
            return []
        return project_families(text)


def project_families(text: str) -> list[Metric]:
    """The project's metric families in a Prometheus exposition (a process's own ``process_*``/``python_*`` and the
    ``*_created`` stamps, which the parser returns as families of their own, are left out)."""
    return [f for f in text_string_to_metric_families(text)
            if f.name.startswith("lakehouse_") and not f.name.endswith("_created")]  # fmt: skip


class MergedRegistry:
    """This process's metrics with the background tier's folded in, family by family (one endpoint per region)."""

    def __init__(self, others: Callable[[], Iterable[Metric]]) -> None:
        self._others = others

    def collect(self) -> Iterable[Metric]:
        families = {f.name: f for f in REGISTRY.collect()}
        for family in self._others():
            if family.name in families:
                families[family.name].samples.extend(family.samples)
            else:
                families[family.name] = family
        return list(families.values())


# --------------------------------------------------------------------------- the child


def run_background(
    spark: SparkSession,
    cfg: Config,
    region: RegionConfig,
    starters: Iterable[tuple[str, Callable[[SparkSession, Config, RegionConfig, bool], StreamingQuery]]],
    metrics_port: int,
) -> int:
    """The child's life: warm up, wait for "go", run the background queries until "stop", SIGTERM, the end of
    stdin (the parent is gone), a closed fence or a failed query. Returns the exit code."""
    say = lambda m: print(m, flush=True)  # the parent reads these lines
    start_http_server(metrics_port, addr="127.0.0.1", registry=REGISTRY)
    spark.range(10_000).selectExpr("sum(id)").collect()  # the executor's first task, before it counts
    say(READY)
    command = sys.stdin.readline().split()
    if command[:1] != ["go"]:
        say(f"background tier: told {command or 'nothing (the parent is gone)'} before go; exiting")
        return 0
    guard = fencing.install(cfg, region)
    if len(command) > 1 and int(command[1]) != guard.epoch:
        say(f"background tier: told to run under epoch {command[1]}, the fence says {guard.epoch}; exiting")
        return 1
    listener.install(spark, region.name)
    named = {name: start(spark, cfg, region, False) for name, start in starters}
    queries = list(named.values())
    stopping = threading.Event()
    why: list[str] = []

    def watch_stdin() -> None:
        line = sys.stdin.readline()
        why.append("told to stop" if line.strip() == "stop" else "the pipeline process is gone")
        stopping.set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        why.append(f"signal {signum}")
        stopping.set()

    threading.Thread(target=watch_stdin, name="background-tier-stdin", daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the parent, which stops this one
    say(f"{RUNNING} under epoch {guard.epoch}: " + ", ".join(q.name or "?" for q in queries))
    code = 0
    try:
        while not stopping.wait(1.0):
            fencing.check()
            failed = [q for q in queries if not q.isActive]
            if failed:
                say(f"background tier: query {failed[0].name} stopped: {failed[0].exception()}")
                code = 1
                break
    except fencing.Fenced as exc:
        say(f"background tier: {exc.message}")
        code = 1
    finally:
        for q in queries:
            try:
                q.stop()
            except Exception as exc:  # noqa: BLE001 -- stopping the rest matters more
                say(f"background tier: stopping {q.name}: {exc}")
    report = {name: [float(p["durationMs"]["triggerExecution"]) / 1000 for p in q.recentProgress
                     if int(p.get("numInputRows", 0)) > 0] for name, q in named.items()}  # fmt: skip
    say("background tier: report " + json.dumps(report))
    say(f"background tier: queries stopped ({why[0] if why else 'failed'})")
    return code
