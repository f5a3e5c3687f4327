"""spark-submit entry point: check gold.features_hourly (and the labels) before training; exit 1 when a check fails.

python jobs/validate_features.py [--region R] [--min-rows 1000]

A minimal real check until the great-expectations facade (lakehouse/quality/) lands: the key is unique, there
are enough labelled rows to train on, labels are 0/1, carried-forward vitals are within physical ranges, and
NEWS2 sub-scores are 0-3. Prints one JSON line with each check's outcome.
"""

from __future__ import annotations

import argparse
import json
import sys

from lakehouse.cli import guarded
from lakehouse.config import load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default=None, help="region whose tables to check (default: the primary)")
    parser.add_argument("--min-rows", type=int, default=1000, help="fewest labelled feature rows to train on")
    args = parser.parse_args(argv)

    def job() -> int:
        from lakehouse.ml.validate import check_features
        from lakehouse.session import build_spark
        from lakehouse.stack import manager

        cfg = load_config()
        region = cfg.region(args.region or None)
        manager.require(cfg, "hdfs-namenode", "hdfs-datanode", region=region.name)
        spark = build_spark(cfg, f"validate-features-{region.name}", catalog_region=region.name)
        results = check_features(spark, region, args.min_rows)
        print(json.dumps(results))
        failed = [name for name, r in results.items() if not r["ok"]]
        if failed:
            print(f"feature checks failed: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed else 0

    return guarded(job)


if __name__ == "__main__":
    sys.exit(main())
