"""Entry point of `lakehouse failback` (docs/dr.md): python jobs/failback.py [options]."""

from __future__ import annotations

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("failback", ["failback"], sys.argv[1:]))
