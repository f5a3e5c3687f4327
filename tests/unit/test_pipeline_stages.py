"""The catch-up pass's stages: every query exactly once, each after the queries whose output it reads."""

from __future__ import annotations

from lakehouse.pipeline import CATCH_UP_STAGES, STARTERS

# query -> the queries whose output it reads (Kafka telemetry has no writer here)
READS = {
    "gold.news2": set(),
    "bronze.telemetry": set(),
    "gold.alerts": {"gold.news2"},  # the alerts.news2 topic
    "silver.vitals": {"bronze.telemetry"},
    "gold.vitals_minute": {"silver.vitals"},
    "gold.vitals_hourly": {"silver.vitals"},
}


def test_every_query_runs_once_in_a_stage_after_what_it_reads() -> None:
    order = [name for stage in CATCH_UP_STAGES for name in stage]
    assert sorted(order) == sorted(name for name, _ in STARTERS) == sorted(READS)
    stage_of = {name: i for i, stage in enumerate(CATCH_UP_STAGES) for name in stage}
    for name, sources in READS.items():
        assert all(stage_of[s] < stage_of[name] for s in sources), name
