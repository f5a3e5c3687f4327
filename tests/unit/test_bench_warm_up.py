"""`bench latency`'s warm-up: the load runs until the driver's JIT compilers settle, within its bounds."""

from __future__ import annotations

import time

import pytest
from pyspark.sql import SparkSession

from lakehouse import bench

CHUNK = 0.05  # seconds of fake load per chunk


class FakeDriver:
    """A load whose chunks make the JIT compile ``rates[i]`` seconds per second of the i-th chunk."""

    def __init__(self, rates: list[float]) -> None:
        self.rates = rates
        self.jit = 0.0
        self.chunks: list[float] = []

    def load(self, seconds: float) -> None:
        time.sleep(seconds)
        self.jit += self.rates[min(len(self.chunks), len(self.rates) - 1)] * seconds
        self.chunks.append(seconds)


def test_the_warm_up_ends_with_the_first_settled_chunk_after_its_minimum() -> None:
    driver = FakeDriver([2.0, 2.0, 0.01, 0.01, 0.01])
    warmed = bench.warm_up(driver.load, lambda: driver.jit, CHUNK, 10 * CHUNK, lambda _: None, CHUNK)
    assert warmed.settled and len(driver.chunks) == 3 and warmed.jit_rate < bench.JIT_SETTLED
    assert abs(warmed.seconds - 3 * CHUNK) < 1e-9
    # settled from the start, but the minimum still runs
    driver = FakeDriver([0.01])
    warmed = bench.warm_up(driver.load, lambda: driver.jit, 4 * CHUNK, 10 * CHUNK, lambda _: None, CHUNK)
    assert warmed.settled and len(driver.chunks) == 4


def test_a_warm_up_that_never_settles_stops_at_its_maximum_and_says_so() -> None:
    driver = FakeDriver([2.0])
    said: list[str] = []
    warmed = bench.warm_up(driver.load, lambda: driver.jit, CHUNK, 2.5 * CHUNK, said.append, CHUNK)
    assert not warmed.settled and warmed.jit_rate > bench.JIT_SETTLED
    assert driver.chunks == pytest.approx([CHUNK, CHUNK, 0.5 * CHUNK])  # the last chunk is cut to the maximum
    assert len(said) == 3 and said[-1].startswith("bench latency: warm-up")


def test_the_drivers_jit_time_is_read_from_the_jvm(spark: SparkSession) -> None:
    before = bench.jit_seconds(spark)
    spark.range(200_000).selectExpr("sum(id * 3 % 7)").collect()
    assert 0 < before <= bench.jit_seconds(spark)
