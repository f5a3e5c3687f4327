"""spark-submit entry point: check gold.features_hourly (and the labels) before training; exit 1 when a check fails.

python jobs/validate_features.py [--region R] [--min-rows 1000]

The great-expectations suite of gold.features_hourly (conf/quality/gold.features_hourly.yaml: unique key,
physical ranges of the carried-forward vitals, NEWS2 sub-scores 0-3, indicator and count domains; results in
dq.results and the Data Docs), then the label checks training needs (enough labelled rows, labels 0/1). Prints
one JSON line with each check's outcome; exit 1 when a blocking expectation or a label check fails.
"""

from __future__ import annotations

import argparse
import json
import sys

from lakehouse.cli import run_job
from lakehouse.config import load_config

LABEL_CHECKS = ("enough_labelled_rows", "label_values")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default=None, help="region whose tables to check (default: the primary)")
    parser.add_argument("--min-rows", type=int, default=1000, help="fewest labelled feature rows to train on")
    parser.add_argument("--run-id", default=None, help="run id of the results in dq.results (default validate:...)")
    args = parser.parse_args(argv)

    def job() -> int:
        from lakehouse.ml.validate import check_features
        from lakehouse.quality import validate
        from lakehouse.session import build_spark, ml_overrides
        from lakehouse.stack import manager

        cfg = load_config()
        region = cfg.region(args.region or None)
        manager.require(cfg, "hdfs-namenode", "hdfs-datanode", region=region.name)
        spark = build_spark(cfg, f"validate-features-{region.name}", ml_overrides(cfg), catalog_region=region.name)
        say = lambda m: print(m, file=sys.stderr, flush=True)
        outcomes, docs = validate.validate_tables(
            spark, cfg, region, ["gold.features_hourly"], None, progress=say, run_id=args.run_id
        )
        suite = {f"{o.table}: {r.check.name}": {"ok": r.success, "value": r.observed} for o in outcomes
                 for r in o.outcome.results}  # fmt: skip
        results = {**suite, **check_features(spark, region, args.min_rows)}
        print(json.dumps(results, default=str))
        say(f"Data Docs: {docs}")
        failed = validate.blocked(outcomes) + [
            name for name, r in results.items() if name in LABEL_CHECKS and not r["ok"]
        ]
        if failed:
            print(f"feature checks failed: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed else 0

    return run_job("validate_features", sys.argv[1:] if argv is None else argv, job)


if __name__ == "__main__":
    sys.exit(main())
