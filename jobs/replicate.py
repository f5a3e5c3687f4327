"""Entry point: replicate the configured tables between regions, or verify a replica (docs/dr.md).

python jobs/replicate.py --source asia --target europe --once
python jobs/replicate.py --source asia --target europe --continuous --interval 5
python jobs/replicate.py verify --source asia --target europe
"""

from __future__ import annotations

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("replicate", ["replicate"], sys.argv[1:]))
