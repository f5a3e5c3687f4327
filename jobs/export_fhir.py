"""spark-submit entry point: FHIR R4 Bulk Data export of a region's vital signs, NEWS2 scores, alerts, devices.

spark-submit jobs/export_fhir.py --since 2026-11-25 [--until 2026-11-26] [--region asia] --out DIR
"""

from __future__ import annotations

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("export_fhir", ["export", "fhir"], sys.argv[1:]))
