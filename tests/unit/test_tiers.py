"""The pipeline's tiers: which queries run where, and the background tier's metrics folded into the region's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lakehouse import pipeline, tiers
from lakehouse.config import Config
from lakehouse.observability import metrics


def test_the_front_tier_holds_the_queries_that_read_kafka_and_the_background_the_rest() -> None:
    names = {name for name, _ in pipeline.STARTERS}
    assert tiers.FRONT == {"gold.news2", "bronze.telemetry"}
    assert tiers.FRONT < names
    assert names - tiers.FRONT == {"gold.alerts", "silver.vitals", "gold.vitals_minute", "gold.vitals_hourly"}


def test_the_front_tier_starts_exactly_its_queries_continuously(cfg: Config) -> None:
    started: list[str] = []
    recording = tuple(
        (name, lambda s, c, r, once, name=name: started.append(name) or f"query {name} once={once}")
        for name, _ in pipeline.STARTERS
    )
    queries = pipeline.start_front(None, cfg, cfg.primary, recording)  # type: ignore[arg-type]
    assert sorted(started) == sorted(queries) == sorted(tiers.FRONT)
    assert all(q.endswith("once=False") for q in queries.values())


def _child_exposition() -> str:
    """What a background tier serves: the project's families (one also set in this process) and its own."""
    child = CollectorRegistry()
    active = Gauge("lakehouse_stream_active", "d", ["region", "query"], registry=child)
    active.labels("tiers-test", "silver_vitals_asia").set(1)
    quarantined = Counter("lakehouse_quarantine_records", "d", ["region", "reason", "level"], registry=child)
    quarantined.labels("tiers-test", "unknown_unit", "measurement").inc(3)
    Gauge("process_open_fds", "d", registry=child).set(12)
    return generate_latest(child).decode()


def test_the_background_tiers_families_join_this_processes_under_one_name_each() -> None:
    metrics.STREAM_ACTIVE.labels("tiers-test", "gold_news2_asia").set(1)
    families = tiers.project_families(_child_exposition())
    assert {f.name for f in families} == {"lakehouse_stream_active", "lakehouse_quarantine_records"}
    exposition = generate_latest(tiers.MergedRegistry(lambda: families)).decode()  # type: ignore[arg-type]
    parsed = {f.name: f for f in text_string_to_metric_families(exposition)}
    assert exposition.count("# TYPE lakehouse_stream_active gauge") == 1
    active = {s.labels["query"]: s.value for s in parsed["lakehouse_stream_active"].samples
              if s.labels.get("region") == "tiers-test"}  # fmt: skip
    assert active["gold_news2_asia"] == 1 and active["silver_vitals_asia"] == 1
    quarantine = [s for s in parsed["lakehouse_quarantine_records"].samples if s.name.endswith("_total")]
    assert [(s.labels["reason"], s.value) for s in quarantine if s.labels.get("region") == "tiers-test"] == [
        ("unknown_unit", 3.0)
    ]
    assert "process_open_fds" not in parsed


def test_a_background_tier_that_does_not_answer_adds_nothing() -> None:
    metrics.STREAM_ACTIVE.labels("tiers-test", "gold_news2_asia").set(1)
    merged = {f.name for f in tiers.MergedRegistry(list).collect()}
    assert merged == {f.name for f in metrics.REGISTRY.collect()}
