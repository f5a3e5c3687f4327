"""`lakehouse bench all`: the report drawn from a run's figures, and the suite's handling of a failed benchmark."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from lakehouse import bench_suite
from lakehouse.config import PROJECT_ROOT
from lakehouse.errors import LakehouseError

MACHINE = {"cpus": 2, "memory_gib": 23.5, "python": "3.11.7", "platform": "Linux-test"}


def _ingest_run(raw: float, bronze: float, silver: float, news2: float) -> dict[str, Any]:
    stages = {"kafka_to_bronze": bronze, "bronze_to_silver": silver, "kafka_to_gold_news2": news2}
    return {
        "baseline_kafka_consumer_perf": {"msgs_per_s": raw},
        **{k: {"events_per_s": v, "state_rows": 0, "state_bytes": 0} for k, v in stages.items()},
        **{f"{k}_ratio_to_raw": round(v / raw, 4) for k, v in stages.items()},
    }


def _suite() -> dict[str, Any]:
    pct = {"n": 3000, "p50": 0.61, "p95": 1.37, "p99": 2.05}
    step = {"patients": 200, "patient_hours": 7800, "features_s": 21.0, "gbt_fit_s": 33.3, "baseline_logreg_fit_s": 4.4,
            "jvm_peak_rss_mib": 1510.2, "python_peak_rss_mib": 310.0, "validation": {"auroc": 0.7712}}  # fmt: skip
    results = {
        "ingest": {
            "messages": 400_000,
            "checks_on": _ingest_run(465_116.0, 81_735.0, 8_671.0, 9_317.0),
            "checks_off": _ingest_run(455_000.0, 80_000.0, 9_900.0, 9_300.0),
            "silver_ratio_checks_on_to_off": 0.8758,
            "target_dq_ratio": 0.8,
        },
        "latency": {
            "load": {"msgs_per_s": 40.0, "seconds": 90.0},
            "event_to_gold_news2_s": pct,
            "event_to_alert_on_kafka_s": {**pct, "p95": 1.11},
            "targets": {"alert_p95_s": 2.0, "gold_p95_s": 5.0},
        },
        "scaling": {
            "points": [
                {
                    "devices": d,
                    "raw_msgs_per_s": 250_000.0,
                    **{
                        s: {"events_per_s": 9_000.0 - d / 100, "state_rows": d * 3, "state_bytes": d * 300}
                        for s in ("kafka_to_bronze", "bronze_to_silver", "kafka_to_gold_news2")
                    },
                }
                for d in (1000, 10000, 100000)
            ],
            "throughput_largest_to_smallest": {"kafka_to_bronze": 0.891},
            "state_growth_per_fleet_growth": {"kafka_to_gold_news2": 1.0},
        },
        "replication": {
            "source": "asia",
            "target": "europe",
            "table": {"versions": 12, "bytes": 96_000_000},
            "replication": {"bytes": 96_000_000, "seconds": 4.1, "mb_per_s": 23.41},
            "raw_hdfs_copy": {"bytes": 96_000_000, "seconds": 3.2, "mb_per_s": 30.0},
            "replication_vs_raw": 0.78,
            "target_ratio": 0.7,
            "lag_under_ingest": {"versions": 30, "p50_s": 2.2, "p95_s": 4.6, "max_s": 5.0},
        },
        "training": {
            "archive": "setA.tar.gz",
            "patients": 2000,
            "model": {"kind": "spark.ml.GBTClassifier"},
            "baseline": "spark.ml.LogisticRegression",
            "steps": [
                {**step, "fraction": 0.1, "data_ratio": 1.0, "training_time_ratio": 1.0},
                {
                    **step,
                    "fraction": 1.0,
                    "patient_hours": 78_000,
                    "gbt_fit_s": 250.5,
                    "data_ratio": 10.0,
                    "training_time_ratio": 6.2,
                },
            ],
        },
        "encryption": {"error": "exit 1: HDFS does not answer"},
    }
    for kind, r in results.items():
        r.update(benchmark=kind, command=f"lakehouse bench {kind} --json", wall_s=12.0)
    return {"suite": "lakehouse bench all", "started": "2026-12-03T23:00:00+00:00", "seconds": 3600.0,
            "machine": MACHINE, "results": results}  # fmt: skip


def test_the_report_shows_each_benchmark_beside_its_baseline_with_a_plot(tmp_path: Path) -> None:
    report = bench_suite.write_report(_suite(), tmp_path)
    text = report.read_text()
    for title, _ in bench_suite.SECTIONS.values():
        assert f"## {title}" in text
    # figures and their baselines, as measured
    assert "Kafka raw consume (baseline) checks on | 465,116.0 | 1.000 |" in text
    assert "bronze_to_silver checks on | 8,671.0 | 0.019 |" in text
    assert "Silver with data-quality checks on / off: **0.876**" in text
    assert "| device event → alert on Kafka | 3,000 | 0.6 | 1.1 | 2.0 |" in text.replace("0.61", "0.6")
    assert "raw HDFS copy (baseline) | 96,000,000 | 3.2 | 30.0 |" in text and "p95 **4.6 s**" in text
    assert "| 100,000 | 250,000.0 |" in text  # the largest fleet's row
    assert "| 100% | 200 | 78,000 |" in text and "baseline fit s" in text
    # a failed benchmark says why and draws nothing
    assert "**Failed:** `exit 1: HDFS does not answer`" in text
    pngs = {p.name for p in tmp_path.glob("*.png")}
    assert pngs == {f"{k}.png" for k in ("ingest", "latency", "scaling", "replication", "training")}
    for png in pngs:
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
        assert f"![{png[:-4]}]({png})" in text
    assert (
        json.loads((tmp_path / bench_suite.RESULTS).read_text())["results"]["scaling"]["points"][2]["devices"] == 100000
    )


def test_bench_report_redraws_the_same_report_from_results_json(tmp_path: Path) -> None:
    first = bench_suite.write_report(_suite(), tmp_path).read_text()
    again = bench_suite.write_report(json.loads((tmp_path / bench_suite.RESULTS).read_text()), tmp_path / "again")
    assert again.read_text() == first


def test_a_run_of_some_benchmarks_keeps_the_others_figures_and_says_when_each_ran(tmp_path: Path) -> None:
    """`bench all --only scaling`: the scaling figures are the new run's, the others the last run's."""
    previous = _suite()
    rerun = {"benchmark": "scaling", "command": "lakehouse bench scaling --json", "wall_s": 99.0,
             "started": "2026-12-06T09:30:00+00:00", **{k: previous["results"]["scaling"][k] for k in ("points",
             "throughput_largest_to_smallest", "state_growth_per_fleet_growth")}}  # fmt: skip
    rerun["points"] = rerun["points"][:2]
    latest = {**previous, "started": "2026-12-06T09:30:00+00:00", "seconds": 99.0, "results": {"scaling": rerun}}
    merged = bench_suite.merge(previous, latest)
    assert list(merged["results"]) == list(previous["results"])  # the suite's order, not the run's
    assert merged["results"]["scaling"] is rerun and len(merged["results"]["scaling"]["points"]) == 2
    assert merged["results"]["ingest"]["started"] == previous["started"]
    assert merged["kept"] == [k for k in bench_suite.ORDER if k in previous["results"] and k != "scaling"]
    text = bench_suite.write_report(merged, tmp_path).read_text()
    assert "`lakehouse bench scaling --json` (99 s, started 2026-12-06T09:30:00+00:00)" in text
    assert f"`lakehouse bench ingest --json` (12 s, started {previous['started']})" in text
    assert "That run (`--only`) measured scaling; the figures of ingest, latency" in text
    assert "| 100,000 | 250,000.0 |" not in text  # the rerun's two fleets only
    again = bench_suite.merge(json.loads((tmp_path / bench_suite.RESULTS).read_text()), latest)
    assert again["results"]["ingest"]["started"] == previous["started"]  # kept twice: still the first run's time


@pytest.mark.parametrize(
    ("text", "sizes"), [("1000,10000,100000", [1000, 10000, 100000]), ("1k, 10k,100K", [1000, 10000, 100000])]
)
def test_device_counts(text: str, sizes: list[int]) -> None:
    assert bench_suite.parse_devices(text) == sizes


@pytest.mark.parametrize("text", ["", "0", "1.5", "ten", "-5"])
def test_bad_device_counts_are_refused(text: str) -> None:
    with pytest.raises(LakehouseError):
        bench_suite.parse_devices(text)


def test_a_failing_benchmark_is_reported_and_the_suite_goes_on(tmp_path: Path) -> None:
    """Each benchmark is a `lakehouse bench` process: one refused at its arguments (before any service) is recorded
    with its error, and the next one still runs."""
    options = bench_suite.SuiteOptions(kinds=["scaling", "scaling"], extra={"scaling": ["--devices", "0"]})
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    lines: list[str] = []
    suite = bench_suite.run_all(options, progress=lines.append, env=env)
    result = suite["results"]["scaling"]
    assert "not a device count: '0'" in result["error"] and result["command"].endswith("--devices 0")
    assert sum("scaling FAILED" in line for line in lines) == 2
    assert options.argv("training")[options.argv("training").index("--psv-dir") + 1].endswith(".tar.gz")


def test_each_benchmark_gets_the_suites_sizes_through_its_own_options() -> None:
    """What `bench all` passes parses into the options each benchmark reads (the CLI's own parser)."""
    from lakehouse.cli import build_parser

    options = bench_suite.SuiteOptions(messages=5000, devices=(10, 20), scaling_messages=700, latency_seconds=30,
                                       replication_versions=3, psv_dir=Path("/data/a.tar.gz"), fractions="0.5")  # fmt: skip
    parsed = {kind: build_parser().parse_args(options.argv(kind)) for kind in bench_suite.ORDER}
    assert parsed["ingest"].messages == 5000 and parsed["ingest"].dq == "both"
    assert parsed["scaling"].devices == "10,20" and parsed["scaling"].scaling_messages == 700
    assert parsed["latency"].seconds == 30 and parsed["replication"].versions == 3
    assert parsed["training"].psv_dir == Path("/data/a.tar.gz") and parsed["training"].fractions == "0.5"
    assert parsed["encryption"].messages == 5000
    assert all(p.json and p.kind == kind for kind, p in parsed.items())


def test_a_benchmark_past_its_time_is_killed_and_reported(tmp_path: Path) -> None:
    options = bench_suite.SuiteOptions(kinds=["training"], psv_dir=tmp_path / "none.tar.gz", timeout_s=1.0)
    started = time.monotonic()
    suite = bench_suite.run_all(options, progress=lambda _: None, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert "timed out after 1.0 seconds" in suite["results"]["training"]["error"]
    assert time.monotonic() - started < 30


def test_the_notes_get_the_latest_run_between_their_markers_and_keep_the_rest(tmp_path: Path) -> None:
    """docs/benchmarks.md: the generated section is replaced by each run (appended the first time), its plots
    point into the report's folder, and the hand-written notes around it stay as they were."""
    notes, out = tmp_path / "benchmarks.md", tmp_path / "benchmarks"
    notes.write_text("# Benchmarks\n\nHand-written intro.\n")
    bench_suite.write_report(_suite(), out, notes)
    first = notes.read_text()
    assert first.startswith("# Benchmarks\n\nHand-written intro.\n\n" + bench_suite.BEGIN)
    assert first.count(bench_suite.BEGIN) == 1 and first.rstrip().endswith(bench_suite.END)
    assert "### Ingest" in first and "\n## Ingest" not in first and "Machine: 2 cores" in first
    assert "![ingest](benchmarks/ingest.png)" in first and "bronze_to_silver checks on | 8,671.0 | 0.019 |" in first
    notes.write_text(first + "\n## Notes written after the section\n\nkept.\n")
    suite = _suite()
    suite["results"]["ingest"]["checks_on"]["bronze_to_silver"]["events_per_s"] = 9_999.0
    bench_suite.write_report(suite, out, notes)
    second = notes.read_text()
    assert second.count(bench_suite.BEGIN) == 1 and "| 9,999.0 |" in second and "| 8,671.0 |" not in second
    assert second.startswith("# Benchmarks\n\nHand-written intro.\n") and second.endswith("kept.\n")


def test_the_ingest_section_shows_sparks_ceiling_when_the_run_measured_it(tmp_path: Path) -> None:
    """A run with ``spark_ceiling`` gets a row per ceiling, beside the raw rate; a run from before it gets none."""
    suite = _suite()
    suite["results"]["ingest"]["checks_on"]["spark_ceiling"] = {
        "kafka_read": {"rows": 440_000, "seconds": 1.1, "events_per_s": 400_000.0, "ratio_to_raw": 0.86},
        "kafka_to_delta": {"rows": 440_000, "seconds": 2.2, "events_per_s": 200_000.0, "ratio_to_raw": 0.43},
    }
    notes = tmp_path / "benchmarks.md"
    bench_suite.write_report(suite, tmp_path / "benchmarks", notes)
    text = notes.read_text()
    assert "| ceiling: Spark's Kafka source alone checks on | 400,000.0 | 0.860 |" in text
    assert "| ceiling: Spark Kafka → Delta, one batch job checks on | 200,000.0 | 0.430 |" in text
    assert "ceiling: Spark's Kafka source alone checks off" not in text and "The ceilings:" in text
    del suite["results"]["ingest"]["checks_on"]["spark_ceiling"]
    bench_suite.write_report(suite, tmp_path / "benchmarks", notes)
    assert "ceiling" not in notes.read_text()
