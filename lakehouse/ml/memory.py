"""Peak resident memory (VmHWM) of this Python process and of the Spark driver JVM, for the ML benchmarks.

On Linux the high-water mark of a process can be reset (``echo 5 > /proc/PID/clear_refs``), so a benchmark
reports the peak of each step, not of everything before it. Elsewhere the figures are simply absent.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession


def _jvm_pid(spark: SparkSession) -> int | None:
    try:
        return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    except (AttributeError, ValueError):  # a remote driver (Spark Connect)
        return None


def _pids(spark: SparkSession) -> dict[str, int | None]:
    return {"python": os.getpid(), "jvm": _jvm_pid(spark)}


def peak_mib(spark: SparkSession) -> dict[str, float]:
    """``python_peak_rss_mib`` and ``jvm_peak_rss_mib``: VmHWM since the start or the last `reset_peaks`."""
    out: dict[str, float] = {}
    for name, pid in _pids(spark).items():
        if pid is None:
            continue
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[f"{name}_peak_rss_mib"] = round(int(line.split()[1]) / 1024, 1)
        except (OSError, ValueError):  # not Linux
            pass
    return out


def reset_peaks(spark: SparkSession) -> bool:
    """Reset both processes' high-water marks to their current RSS; False where the kernel does not allow it."""
    done = True
    for pid in _pids(spark).values():
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            done = False
    return done
