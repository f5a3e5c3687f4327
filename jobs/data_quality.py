"""spark-submit entry point: validate table partitions with the expectation suites (conf/quality).

python jobs/data_quality.py [--region asia] [--table silver.vitals ...|all] [--date YYYY-MM-DD]

Appends the results to dq.results, renders the Data Docs under the state folder, and exits non-zero
(3) when a blocking expectation failed, so an Airflow task running it fails.
"""

from __future__ import annotations

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("data_quality", ["dq", "validate"], sys.argv[1:]))
