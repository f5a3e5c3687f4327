"""spark-submit entry point: build gold.features_hourly (one row per patient-hour, point-in-time features).

python jobs/build_features.py --start 2026-11-25T00:00 --end 2026-11-26T00:00   # an interval, from silver.vitals
                                              # (+ the labels a PhysioNet replay sent, from bronze.telemetry)
python jobs/build_features.py --psv data/physionet2019-sample/training_setA_sample.tar.gz  # backfill + labels

Prints one JSON line (table URIs, rows, Delta versions) for the next task; re-running a range replaces it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.cli import run_job
from lakehouse.config import load_config
from lakehouse.devices import physionet
from lakehouse.errors import LakehouseError
from lakehouse.ml import build
from lakehouse.security import pseudonyms
from lakehouse.session import build_spark, ml_overrides
from lakehouse.stack import manager


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise LakehouseError(f"not an ISO date-time: {text!r}", fix="e.g. 2026-11-25T00:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default=None, help="region whose tables to read and write (default: the primary)")
    parser.add_argument("--start", help="silver mode: first hour (ISO, UTC), inclusive")
    parser.add_argument("--end", help="silver mode: end hour (ISO, UTC), exclusive")
    parser.add_argument("--psv", default=None, help="backfill mode: a PhysioNet .tar.gz or folder of .psv files")
    parser.add_argument(
        "--patients", type=int, default=None, help="backfill mode: only the first N patients by id (0: all)"
    )
    args = parser.parse_args(argv)

    def job() -> int:
        cfg = load_config()
        region = cfg.region(args.region or None)
        if not args.psv and (not args.start or not args.end or "None" in (args.start, args.end)):
            raise LakehouseError("give --start and --end (silver mode) or --psv (backfill)", fix="see --help")
        if args.psv:  # before Spark starts: a bad path fails in a second
            physionet.require_archive(Path(args.psv))
        manager.require(cfg, "hdfs-namenode", "hdfs-datanode", "metastore", region=region.name)
        spark = build_spark(cfg, f"features-{region.name}", ml_overrides(cfg), catalog_region=region.name)
        say = lambda m: print(m, file=sys.stderr, flush=True)
        if args.psv:
            run = build.from_psv(
                spark,
                region,
                Path(args.psv),
                args.patients or None,
                progress=say,
                patient_key=pseudonyms.patient_key(cfg),
            )
        else:
            run = build.from_silver(
                spark,
                region,
                _moment(args.start),
                _moment(args.end),
                progress=say,
                label_key=pseudonyms.patient_key(cfg),
            )
        print(json.dumps(run.as_dict()))
        return 0

    return run_job("build_features", sys.argv[1:] if argv is None else argv, job)


if __name__ == "__main__":
    sys.exit(main())
