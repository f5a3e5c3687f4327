"""Entry point of `lakehouse failover` (docs/dr.md): python jobs/failover.py [options]."""

from __future__ import annotations

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("failover", ["failover"], sys.argv[1:]))
