"""Shared fixtures: the typed config, the real local stack, and one session-scoped SparkSession."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from lakehouse.config import Config, load_config
from lakehouse.session import build_spark
from lakehouse.stack import manager

CLI = [sys.executable, "-m", "lakehouse"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the `lakehouse` CLI in a fresh process and capture its output."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def with_ml_settings(profile: Path, **settings: Any) -> Config:
    """Set ``ml`` settings in a sandbox profile (fresh processes read them too) and load it. A sandbox that trains
    gives its own experiment and model name, so the shared registry's champion is never touched."""
    data = yaml.safe_load(profile.read_text())
    data["ml"].update(settings)
    profile.write_text(yaml.safe_dump(data))
    return load_config(str(profile))


@pytest.fixture(scope="session")
def cfg() -> Config:
    """The embedded default profile (or whatever LAKEHOUSE_ENV selects)."""
    return load_config()


@pytest.fixture(scope="session")
def stack(cfg: Config) -> Iterator[Config]:
    """The real local stack: reuse the healthy services, start the others, stop only what was started here.

    A service that cannot be started fails the tests that need it, loudly; nothing is skipped.
    """
    before = {s.name for s in manager.status(cfg) if s.running and s.healthy}
    result = run_cli("stack", "up")
    if result.returncode != 0:
        pytest.fail(f"`lakehouse stack up` failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    yield cfg
    started = [s.name for s in manager.services(cfg) if s.managed and s.name not in before]
    if started:
        args = [a for name in started for a in ("--service", name)]
        down = run_cli("stack", "down", *args)
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="session")
def spark(cfg: Config) -> Iterator[SparkSession]:
    """One SparkSession for the whole run: local[2], UI off, two shuffle partitions, local Delta/Kafka jars, and
    an in-memory catalog (tables are read by path; the persistent catalog is tested in fresh processes)."""
    session = build_spark(
        cfg,
        "lakehouse-tests",
        overrides={"spark.master": "local[2]", "spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"},
        persistent_catalog=False,  # sandboxes of several profiles share this session: keep its catalog in memory
    )
    yield session
    session.stop()
