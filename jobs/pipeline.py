"""spark-submit entry point: a region's whole streaming pipeline (bronze, silver + NEWS2/alerts, gold windows).

spark-submit jobs/pipeline.py --region asia            # continuous, until SIGTERM
spark-submit jobs/pipeline.py --region asia --once     # one catch-up pass (availableNow)
"""

from __future__ import annotations

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("pipeline", ["pipeline", "run"], sys.argv[1:]))
