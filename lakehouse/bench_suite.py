"""`lakehouse bench all`: every benchmark in one run, each beside its same-run baseline, written up as a
Markdown report with PNG plots (``<out>/report.md``, ``<out>/*.png``) and the raw figures (``results.json``).

Each benchmark runs as its own `lakehouse bench KIND --json` process (a fresh Spark driver with that
benchmark's settings; one that fails is reported with its error and the others still run). The report is
rendered from ``results.json`` alone, so `lakehouse bench report` redraws it without measuring again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.config import PROJECT_ROOT
from lakehouse.errors import LakehouseError

Progress = Callable[[str], None]

ORDER = ("ingest", "latency", "scaling", "replication", "training", "encryption")
FULL_ARCHIVE = PROJECT_ROOT.parent / "shared/data/physionet2019/training_setA.tar.gz"
RESULTS = "results.json"
REPORT = "report.md"


@dataclass(frozen=True)
class SuiteOptions:
    """What `bench all` runs and at which sizes (each bench's own defaults where not given)."""

    kinds: Sequence[str] = ORDER
    messages: int = 400_000
    devices: Sequence[int] = (1_000, 10_000, 100_000)
    scaling_messages: int = 200_000
    latency_seconds: float = 90.0
    replication_versions: int = 12
    psv_dir: Path | None = None
    fractions: str = "0.1,0.5,1.0"
    timeout_s: float = 3 * 3600
    extra: dict[str, list[str]] = field(default_factory=dict)

    def argv(self, kind: str) -> list[str]:
        """The `lakehouse bench` arguments of one benchmark."""
        args = {
            "ingest": ["--messages", str(self.messages), "--dq", "both"],
            "latency": ["--seconds", f"{self.latency_seconds:g}"],
            "scaling": [
                "--devices",
                ",".join(str(d) for d in self.devices),
                "--scaling-messages",
                str(self.scaling_messages),
            ],
            "replication": ["--versions", str(self.replication_versions)],
            "training": ["--psv-dir", str(self.archive()), "--fractions", self.fractions],
            "encryption": ["--messages", str(self.messages)],
        }[kind]
        return ["bench", kind, "--json", *args, *self.extra.get(kind, [])]

    def archive(self) -> Path:
        """The PhysioNet archive to train on: as given, else the full one beside the project, else the sample."""
        from lakehouse.devices import physionet

        if self.psv_dir is not None:
            return self.psv_dir
        return FULL_ARCHIVE if FULL_ARCHIVE.exists() else physionet.SAMPLE_ARCHIVE


def run_all(options: SuiteOptions, progress: Progress = print, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run each benchmark of ``options`` in its own process; their JSON, or the error of one that failed."""
    from lakehouse.bench import machine

    results: dict[str, Any] = {}
    started = datetime.now(UTC)
    for i, kind in enumerate(options.kinds, 1):
        argv = options.argv(kind)
        progress(f"bench all [{i}/{len(options.kinds)}]: lakehouse {' '.join(argv)}")
        t0 = time.monotonic()
        began = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            code, stdout, tail = _run(argv, progress, env, options.timeout_s)
            out = stdout.strip().splitlines()
            if code != 0 or not out:
                raise RuntimeError(f"exit {code}: " + "\n".join(tail[-12:]))
            results[kind] = json.loads(out[-1])
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            results[kind] = {"benchmark": kind, "error": str(exc)[-2000:]}
        results[kind]["command"] = "lakehouse " + " ".join(argv)
        results[kind]["started"] = began
        results[kind]["wall_s"] = round(time.monotonic() - t0, 1)
        outcome = "FAILED" if "error" in results[kind] else "done"
        progress(f"bench all [{i}/{len(options.kinds)}]: {kind} {outcome} in {results[kind]['wall_s']:.0f}s")
    return {
        "suite": "lakehouse bench all",
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": machine(),
        "results": results,
    }


def merge(previous: dict[str, Any], latest: dict[str, Any]) -> dict[str, Any]:
    """``latest`` (a run of some benchmarks: ``bench all --only``) over ``previous`` (the last run's figures): the
    benchmarks it ran replace theirs, the others keep theirs, each with the time it started (in the report)."""
    kept = {
        k: {"started": previous["started"], **r} for k, r in previous["results"].items() if k not in latest["results"]
    }
    merged = {**kept, **latest["results"]}
    return {**latest, "results": {k: merged[k] for k in sorted(merged, key=_order)}, "kept": sorted(kept, key=_order)}


def _order(kind: str) -> int:
    return ORDER.index(kind) if kind in ORDER else len(ORDER)


def _run(
    argv: list[str], progress: Progress, env: dict[str, str] | None, timeout_s: float
) -> tuple[int, str, list[str]]:
    """`lakehouse ARGV` in a process: its exit code, its stdout, and the last lines of its stderr (each passed on
    to ``progress`` as it comes: the benchmark's own progress)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakehouse", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    tail: list[str] = []

    def relay() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            progress("  " + line.rstrip())
            tail.append(line.rstrip())
            del tail[:-40]

    relaying = threading.Thread(target=relay, daemon=True)
    relaying.start()
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout_s, expire)
    timer.start()
    try:
        assert proc.stdout is not None
        stdout = proc.stdout.read()  # the main thread reads stdout, the relay alone reads stderr
        proc.wait()
    finally:
        timer.cancel()
        relaying.join(timeout=30)
    if expired.is_set():
        raise subprocess.TimeoutExpired(proc.args, timeout_s)
    return proc.returncode, stdout, tail


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]


CEILING_LABELS = {
    "kafka_read": "ceiling: Spark's Kafka source alone",
    "kafka_to_delta": "ceiling: Spark Kafka → Delta, one batch job",
}


def _ingest(r: dict[str, Any], out: Path, plt: Any) -> list[str]:
    runs = {"checks on": r["checks_on"], "checks off": r["checks_off"]} if "checks_on" in r else {"": r}
    stages = ("kafka_to_bronze", "bronze_to_silver", "kafka_to_gold_news2")
    rows = []
    for label, run in runs.items():
        raw = run["baseline_kafka_consumer_perf"]["msgs_per_s"]
        rows.append([f"Kafka raw consume (baseline){' ' + label if label else ''}", raw, 1.0])
        rows += [
            [f"{s}{' ' + label if label else ''}", run[s]["events_per_s"], run[f"{s}_ratio_to_raw"]] for s in stages
        ]
        rows += [  # what Spark alone reaches on the same topic (runs from before 2026-12-06 evening lack it)
            [f"{CEILING_LABELS[name]}{' ' + label if label else ''}", c["events_per_s"], c["ratio_to_raw"]]
            for name, c in run.get("spark_ceiling", {}).items()
        ]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.barh([row[0] for row in rows][::-1], [row[1] for row in rows][::-1], color="#4c72b0")
    ax.set_xscale("log")
    ax.set_xlabel("events/s (log)")
    ax.set_title(f"ingest: {r['messages']:,} messages, each stage beside Kafka's raw consume rate")
    _save(fig, out / "ingest.png", plt)
    lines = _table(["stage", "events/s", "ratio to raw"], [[a, b, f"{c:.3f}"] for a, b, c in rows])
    if any("spark_ceiling" in run for run in runs.values()):
        lines.append("\nThe ceilings: Spark alone on the same topic in the same driver, no pipeline logic, best of three "
                     "rounds after a warm-up one (`bench.spark_ceiling`): up to run-to-run noise, no Spark design of a "
                     "Kafka stage exceeds them on this machine.")  # fmt: skip
    if "silver_ratio_checks_on_to_off" in r:
        lines.append(f"\nSilver with data-quality checks on / off: **{_fmt(r['silver_ratio_checks_on_to_off'], 3)}**"
                     f" (target ≥ {r['target_dq_ratio']}).")  # fmt: skip
    return [*lines, "", "![ingest](ingest.png)"]


def _latency(r: dict[str, Any], out: Path, plt: Any) -> list[str]:
    series = {"device event → gold.news2": r["event_to_gold_news2_s"],
              "device event → alert on Kafka": r["event_to_alert_on_kafka_s"]}  # fmt: skip
    rows = [[name, p["n"], p["p50"], p["p95"], p["p99"]] for name, p in series.items()]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.35
    for j, (name, p) in enumerate(series.items()):
        ax.bar([i + j * width for i in range(3)], [p["p50"] or 0, p["p95"] or 0, p["p99"] or 0], width, label=name)
    ax.axhline(r["targets"]["alert_p95_s"], color="red", linestyle="--", label="alert p95 target")
    ax.set_xticks([i + width / 2 for i in range(3)], ["p50", "p95", "p99"])
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)
    ax.set_title(f"latency at {r['load']['msgs_per_s']:g} msg/s for {r['load']['seconds']:g} s")
    _save(fig, out / "latency.png", plt)
    targets = f"Targets: alert p95 ≤ {r['targets']['alert_p95_s']} s, gold p95 ≤ {r['targets']['gold_p95_s']} s."
    return [*_table(["path", "events", "p50 s", "p95 s", "p99 s"], rows), "", targets, "", "![latency](latency.png)"]


def _scaling(r: dict[str, Any], out: Path, plt: Any) -> list[str]:
    stages = ("kafka_to_bronze", "bronze_to_silver", "kafka_to_gold_news2")
    points = r["points"]
    devices = [p["devices"] for p in points]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(devices, [p["raw_msgs_per_s"] for p in points], "k--", marker="o", label="Kafka raw (baseline)")
    stateless = [s for s in stages if not any(p[s]["state_bytes"] for p in points)]
    for s in stages:
        (line,) = a1.plot(devices, [p[s]["events_per_s"] for p in points], marker="o", label=s)
        if s not in stateless:  # a log axis has no 0: stateless stages are named instead of drawn
            state = [p[s]["state_bytes"] / 1e6 for p in points]
            a2.plot(devices, state, marker="o", label=s, color=line.get_color())
            linear = [state[0] * d / devices[0] for d in devices]  # what linear growth from the smallest fleet is
            a2.plot(devices, linear, ":", color=line.get_color(), label=f"{s}, if linear")
    if stateless:
        a2.text(0.98, 0.03, f"no state: {', '.join(stateless)}", transform=a2.transAxes, fontsize=7, ha="right")
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("simulated devices")
        ax.legend(fontsize=7)
    a1.set_ylabel("events/s")
    a1.set_title("throughput vs fleet size")
    a2.set_ylabel("state MB after the run")
    a2.set_title("state vs fleet size")
    _save(fig, out / "scaling.png", plt)
    rows = [[p["devices"], p["raw_msgs_per_s"], *(p[s]["events_per_s"] for s in stages),
             *(round(p[s]["state_bytes"] / 1e6, 1) for s in stages)] for p in points]  # fmt: skip
    header = ["devices", "raw msg/s", *(f"{s} ev/s" for s in stages), *(f"{s} state MB" for s in stages)]
    flat = ", ".join(f"{s} {v}" for s, v in r["throughput_largest_to_smallest"].items())
    grow = ", ".join(f"{s} {v}" for s, v in r["state_growth_per_fleet_growth"].items()) or "no stateful stage"
    return [
        *_table(header, rows), "",
        f"Throughput at the largest fleet over the smallest (flat ≈ 1): {flat}.",
        f"State bytes' growth over fleet growth (linear ≈ 1, less is better): {grow}.", "",
        "![scaling](scaling.png)",
    ]  # fmt: skip


def _replication(r: dict[str, Any], out: Path, plt: Any) -> list[str]:
    rep, raw, lag = r["replication"], r["raw_hdfs_copy"], r["lag_under_ingest"]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.barh(["raw HDFS copy (baseline)", "replication"], [raw["mb_per_s"], rep["mb_per_s"]], color=["grey", "#4c72b0"])
    ax.set_xlabel("MB/s")
    ax.set_title(
        f"{r['source']} → {r['target']}: {r['table']['versions']} versions, {r['table']['bytes'] / 1e6:.0f} MB"
    )
    _save(fig, out / "replication.png", plt)
    rows = [["raw HDFS copy (baseline)", raw["bytes"], raw["seconds"], raw["mb_per_s"]],
            ["replication", rep["bytes"], rep["seconds"], rep["mb_per_s"]]]  # fmt: skip
    return [
        *_table(["copy", "bytes", "seconds", "MB/s"], rows), "",
        (f"Replication / raw: **{r['replication_vs_raw']}** (target ≥ {r['target_ratio']}). Replica lag under steady"
        f" ingest ({lag['versions']} versions): p50 {lag['p50_s']} s, p95 **{lag['p95_s']} s**, max {lag['max_s']} s."),
        "", "![replication](replication.png)",
    ]  # fmt: skip


def _training(r: dict[str, Any], out: Path, plt: Any) -> list[str]:
    steps = r["steps"]
    hours = [s["patient_hours"] for s in steps]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(hours, [s["features_s"] for s in steps], marker="o", label="features")
    a1.plot(hours, [s["gbt_fit_s"] for s in steps], marker="o", label="GBT fit")
    a1.plot(
        hours, [s["baseline_logreg_fit_s"] for s in steps], "k--", marker="o", label="logistic regression (baseline)"
    )
    a1.set_xlabel("patient-hours")
    a1.set_ylabel("seconds")
    a1.set_title("training time vs data size")
    a1.legend(fontsize=7)
    a2.plot(hours, [s.get("jvm_peak_rss_mib") or 0 for s in steps], marker="o", label="Spark driver JVM")
    a2.plot(hours, [s.get("python_peak_rss_mib") or 0 for s in steps], marker="o", label="Python")
    a2.set_xlabel("patient-hours")
    a2.set_ylabel("peak RSS MiB")
    a2.set_title("peak memory vs data size")
    a2.legend(fontsize=7)
    _save(fig, out / "training.png", plt)
    rows = [[f"{s['fraction']:.0%}", s["patients"], s["patient_hours"], s["features_s"], s["gbt_fit_s"],
             s["baseline_logreg_fit_s"], s.get("jvm_peak_rss_mib"), s.get("training_time_ratio"), s.get("data_ratio"),
             f"{s['validation']['auroc']:.3f}"] for s in steps]  # fmt: skip
    header = ["share", "patients", "patient-hours", "features s", "GBT fit s", "baseline fit s", "JVM peak MiB",
              "time ×", "data ×", "AUROC"]  # fmt: skip
    return [(f"Archive `{r['archive']}` ({r['patients']:,} patients); model {r['model']['kind']}; baseline"
            f" {r['baseline']}."), "", *_table(header, rows), "", "![training](training.png)"]  # fmt: skip


def _encryption(r: dict[str, Any], out: Path, plt: Any) -> list[str]:
    plain, enc = r["plain"], r["encrypted"]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.bar([0, 1], [plain["write_s"], plain["read_s"]], 0.35, label="plaintext (baseline)", color="grey")
    ax.bar([0.35, 1.35], [enc["write_s"], enc["read_s"]], 0.35, label="encrypted payload", color="#4c72b0")
    ax.set_xticks([0.175, 1.175], ["append", "full read"])
    ax.set_ylabel("seconds (median)")
    ax.legend(fontsize=8)
    ax.set_title(f"{r['rows']:,} bronze rows")
    _save(fig, out / "encryption.png", plt)
    rows = [["plaintext (baseline)", plain["write_s"], plain["read_s"]], ["encrypted", enc["write_s"], enc["read_s"]]]
    return [*_table(["table", "append s", "read s"], rows), "",
            f"Encrypted / plaintext: append {r['write_ratio']}, read {r['read_ratio']}.", "",
            "![encryption](encryption.png)"]  # fmt: skip


SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any], Path, Any], list[str]]]] = {
    "ingest": ("Ingest: sustained events/s beside Kafka's consumer perf tool", _ingest),
    "latency": ("Latency: device event to gold and to the alert topic", _latency),
    "scaling": ("Scaling: 1k → 100k simulated devices", _scaling),
    "replication": ("Replication: asia → europe beside a raw HDFS copy", _replication),
    "training": ("Training: time and memory vs data size, beside a logistic regression", _training),
    "encryption": ("Encryption: bronze with and without Parquet encryption", _encryption),
}


def _save(fig: Any, path: Path, plt: Any) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


BEGIN = "<!-- lakehouse bench all: latest run (generated; edits are overwritten) -->"
END = "<!-- end of the generated latest run -->"


def write_report(suite: dict[str, Any], out: Path, notes: Path | None = None) -> Path:
    """``results.json``, one PNG per benchmark that ran and ``report.md`` into ``out``; returns the report.

    With ``notes`` (docs/benchmarks.md, the hand-written notes on each figure), the run's machine, commands,
    figures and plots also replace the section between :data:`BEGIN` and :data:`END` there (appended at the end
    the first time); the rest of that file is left as written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_text(json.dumps(suite, indent=1) + "\n")
    m = suite["machine"]
    machine = (f"Machine: {m['cpus']} cores, {m['memory_gib']} GiB, Python {m['python']}, {m['platform']}. Started"
               f" {suite['started']}, {suite['seconds'] / 60:.0f} min in all.")  # fmt: skip
    if suite.get("kept"):
        machine += (f" That run (`--only`) measured {', '.join(k for k in suite['results'] if k not in suite['kept'])};"
                    f" the figures of {', '.join(suite['kept'])} are kept from earlier runs, each section"
                    " says when it started.")  # fmt: skip
    body: list[str] = []
    for kind, (title, section) in SECTIONS.items():
        r = suite["results"].get(kind)
        if r is None:
            continue
        when = f", started {r['started']}" if "started" in r else ""
        body += [f"## {title}", "", f"`{r['command']}` ({r['wall_s']:.0f} s{when})", ""]
        if "error" in r:
            body += [f"**Failed:** `{r['error'].strip().splitlines()[-1] if r['error'].strip() else 'no output'}`", ""]
            continue
        body += [*section(r, out, plt), ""]
    report = out / REPORT
    report.write_text("\n".join([
        "# Benchmark report (generated)", "",
        (f"Written by `lakehouse bench all` from `{RESULTS}` beside this file; do not edit by hand (the notes on"
        " each figure are in [../benchmarks.md](../benchmarks.md)). Each benchmark ran in its own process, in"
        " its own lakehouse root and topics on the running local stack, with its baseline measured in the same run."),
        "", machine, "", *body,
    ]))  # fmt: skip
    if notes is not None:
        _splice(notes, out, machine, body)
    return report


def _splice(notes: Path, out: Path, machine: str, body: list[str]) -> None:
    """The latest run into ``notes`` between the markers: headings one level down, plots relative to ``notes``."""
    folder = Path(os.path.relpath(out.resolve(), notes.parent.resolve())).as_posix()
    moved = [f"#{line}" if line.startswith("## ") else re.sub(r"^!\[([^]]*)\]\(", rf"![\1]({folder}/", line)
             for line in body]  # fmt: skip
    section = [BEGIN, "## Latest run of `lakehouse bench all` (generated)", "",
               (f"Regenerated by every `lakehouse bench all` (figures in [{folder}/{RESULTS}]({folder}/{RESULTS}),"
               f" the same as [{folder}/{REPORT}]({folder}/{REPORT})). {machine}"), "", *moved, END]  # fmt: skip
    text = notes.read_text() if notes.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + "\n".join(section) + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    notes.write_text(text)


def parse_devices(text: str) -> list[int]:
    """``1000,10000,100000`` (or ``1k,10k,100k``) as fleet sizes, each positive."""
    sizes = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        try:
            number = float(part[:-1]) * 1000 if part.endswith("k") else float(part)
        except ValueError:
            number = 0.0
        if number < 1 or number != int(number):
            raise LakehouseError(f"not a device count: {part!r}", fix="--devices 1000,10000,100000")
        sizes.append(int(number))
    if not sizes:
        raise LakehouseError("no device counts given", fix="--devices 1000,10000,100000")
    return sizes
