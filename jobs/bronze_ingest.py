"""spark-submit entry point: stream a region's telemetry topic from Kafka into ``bronze.telemetry``.

spark-submit jobs/bronze_ingest.py --region asia --once      # drain what is there (availableNow)
python jobs/bronze_ingest.py --region europe                 # run continuously
"""

from __future__ import annotations

import argparse
import sys

from lakehouse.cli import run_job
from lakehouse.config import load_config
from lakehouse.ingest.bronze import start_bronze
from lakehouse.pipeline import prepare
from lakehouse.session import build_spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default=None, help="region to ingest in (default: the primary)")
    parser.add_argument("--once", action="store_true", help="process what is available, then stop")
    args = parser.parse_args(argv)

    def job() -> int:
        cfg = load_config()
        region = cfg.region(args.region)
        spark = build_spark(cfg, f"bronze-ingest-{region.name}")
        prepare(spark, cfg, region)  # services up, topics and tables there, fenced as the pipeline is
        query = start_bronze(spark, cfg, region, once=args.once)
        query.awaitTermination()
        rows = sum(int(p.get("numInputRows", 0)) for p in query.recentProgress)
        print(f"bronze.telemetry <- {cfg.topics.telemetry}: {rows} records")
        return 0

    return run_job("bronze_ingest", sys.argv[1:] if argv is None else argv, job)


if __name__ == "__main__":
    sys.exit(main())
