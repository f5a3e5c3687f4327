"""spark-submit entry point: the real-time early-warning path of a region.

Kafka telemetry -> per-patient NEWS2 state -> Kafka ``alerts.news2`` and ``gold.news2``, plus the
``gold.alerts`` stream from the alert topic (``lakehouse.ingest.news2_job``, ``alerts_job``).

spark-submit jobs/early_warning.py --region asia --once      # catch up (availableNow), then stop
python jobs/early_warning.py --region europe                 # run continuously
"""

from __future__ import annotations

import argparse
import sys

from lakehouse import pipeline
from lakehouse.cli import run_job
from lakehouse.config import load_config
from lakehouse.ingest.alerts_job import start_alerts
from lakehouse.ingest.news2_job import start_news2
from lakehouse.session import build_spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default=None, help="region to run in (default: the primary)")
    parser.add_argument("--once", action="store_true", help="process what is available, then stop")
    args = parser.parse_args(argv)

    def job() -> int:
        cfg = load_config()
        region = cfg.region(args.region)
        spark = build_spark(cfg, f"early-warning-{region.name}")
        pipeline.prepare(spark, cfg, region)
        news2 = start_news2(spark, cfg, region, once=args.once)
        if args.once:
            news2.awaitTermination()
        alerts = start_alerts(spark, cfg, region, once=args.once)
        for query in (news2, alerts):
            query.awaitTermination()
        rows = sum(int(p.get("numInputRows", 0)) for p in news2.recentProgress)
        print(f"gold.news2, {cfg.topics.alerts} <- {cfg.topics.telemetry}: {rows} records")
        return 0

    return run_job("early_warning", sys.argv[1:] if argv is None else argv, job)


if __name__ == "__main__":
    sys.exit(main())
