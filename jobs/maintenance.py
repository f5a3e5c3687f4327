"""spark-submit entry point: OPTIMIZE and VACUUM a region's tables (retention floor enforced).

spark-submit jobs/maintenance.py --region asia [--retention-hours 168] [--table silver.vitals]
"""

from __future__ import annotations

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("maintenance", ["maintain"], sys.argv[1:]))
