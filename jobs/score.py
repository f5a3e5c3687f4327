"""spark-submit entry point of the sepsis model in service (see `lakehouse ml --help`):

python jobs/score.py score --start 2026-11-25T00:00 --end 2026-11-26T00:00   # batch: gold.risk_scores of a range
python jobs/score.py score --psv data/physionet2019-sample/training_setA_sample.tar.gz   # the hours of a backfill
python jobs/score.py scorer [--once]                  # the live scorer stream (hot-reloads a new champion)
python jobs/score.py drift [--end ...] [--hours 24]   # PSI, live window vs training data -> gold.model_drift
"""

from __future__ import annotations

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("score", ["ml"], sys.argv[1:]))
