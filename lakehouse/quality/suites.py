"""Expectation suites as data: ``conf/quality/<table>.yaml`` loaded into typed, validated objects.

A suite lists named checks (a great-expectations expectation type and its arguments, an optional row
filter ``where``, an optional derived ``frame``) and the severity of each: what happens to the data when
the check fails. Severity is configuration; the code only routes by it (``lakehouse.quality.gate``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import reduce
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ConfigError
from lakehouse.io.tables import check_table_name


class Severity(str, Enum):
    """What a failed check does: record it, quarantine the failing rows, or block the batch."""

    WARN = "warn"
    QUARANTINE = "quarantine"
    BLOCK = "block"


# row-level expectations whose failing rows the gate can pick out with one Spark predicate
QUARANTINABLE = ("column_values_to_not_be_null", "column_values_to_be_between", "column_values_to_be_in_set")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Check:
    """One expectation of a suite: ``expect`` is a GX expectation type without its ``expect_`` prefix."""

    name: str  # stable: the dq.results key, the metric label and (quarantine) the reason
    expect: str
    args: Mapping[str, Any]
    severity: Severity
    where: str | None = None  # Spark SQL predicate: only these rows are checked
    frame: str | None = None  # a derived frame of the suite instead of the rows themselves

    def violation(self) -> Column:
        """The rows that fail this row-level check (quarantine severity only), as one Spark predicate."""
        column = F.col(str(self.args["column"]))
        if self.expect == "column_values_to_not_be_null":
            failing = column.isNull()
        elif self.expect == "column_values_to_be_in_set":
            failing = column.isNotNull() & ~column.isin(list(self.args["value_set"]))
        elif self.expect == "column_values_to_be_between":
            bounds = []
            if self.args.get("min_value") is not None:
                bounds.append(column < F.lit(self.args["min_value"]))
            if self.args.get("max_value") is not None:
                bounds.append(column > F.lit(self.args["max_value"]))
            failing = column.isNotNull() & reduce(lambda a, b: a | b, bounds, F.lit(False))
        else:
            raise ConfigError(f"check {self.name}: expect_{self.expect} cannot pick out failing rows")
        return F.expr(self.where) & failing if self.where else failing


@dataclass(frozen=True)
class Suite:
    """The expectations of one table; ``frames`` are derived DataFrames, Spark SQL over ``{batch}``."""

    table: str
    partition_column: str
    checks: tuple[Check, ...]
    frames: Mapping[str, str] = field(default_factory=dict)

    def by_frame(self) -> dict[str | None, tuple[Check, ...]]:
        """Checks grouped by the frame they run on (None: the rows themselves), in suite order."""
        groups: dict[str | None, list[Check]] = {}
        for check in self.checks:
            groups.setdefault(check.frame, []).append(check)
        return {k: tuple(v) for k, v in groups.items()}

    def derive(self, frame: str, rows: DataFrame) -> DataFrame:
        """The derived frame ``frame`` computed over ``rows``."""
        return rows.sparkSession.sql(self.frames[frame], batch=rows)

    def with_severities(self, severities: Mapping[str, Severity]) -> Suite:
        """This suite with some checks' severities replaced (by check name)."""
        unknown = set(severities) - {c.name for c in self.checks}
        if unknown:
            raise ConfigError(f"suite {self.table}: no checks named {sorted(unknown)}")
        checks = tuple(
            Check(c.name, c.expect, c.args, severities.get(c.name, c.severity), c.where, c.frame) for c in self.checks
        )
        return Suite(self.table, self.partition_column, checks, self.frames)


def parse_suite(data: Any, source: str) -> Suite:
    """Build a :class:`Suite` from parsed YAML; every problem is a :class:`ConfigError` naming the check."""
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise ConfigError(f"{source}: a suite is a mapping with table, partition_column and a list of expectations")
    frames = {str(k): str(v) for k, v in (data.get("frames") or {}).items()}
    checks: list[Check] = []
    for i, raw in enumerate(data["expectations"]):
        where = f"{source}: expectation {i + 1}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a mapping")
        name = str(raw.get("name", ""))
        if not _NAME.match(name):
            raise ConfigError(f"{where}: name {name!r} must be lower_snake_case (it becomes a reason and a label)")
        try:
            severity = Severity(raw.get("severity"))
        except ValueError:
            raise ConfigError(f"{where} ({name}): severity must be one of warn, quarantine, block") from None
        check = Check(
            name=name,
            expect=str(raw.get("expect", "")).removeprefix("expect_"),
            args=dict(raw.get("args") or {}),
            severity=severity,
            where=raw.get("where"),
            frame=raw.get("frame"),
        )
        if check.frame is not None and check.frame not in frames:
            raise ConfigError(f"{where} ({name}): unknown frame {check.frame!r} (frames: {sorted(frames)})")
        if severity is Severity.QUARANTINE and (check.frame is not None or check.expect not in QUARANTINABLE):
            raise ConfigError(
                f"{where} ({name}): quarantine needs a row-level check on the rows themselves",
                fix=f"use one of {', '.join(QUARANTINABLE)} without a frame, or severity warn/block",
            )
        checks.append(check)
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: check names must be unique")
    return Suite(str(data["table"]), str(data.get("partition_column", "")), tuple(checks), frames)


def load_suite(suites_dir: Path, table: str) -> Suite:
    """The suite of ``table`` (``<suites_dir>/<table>.yaml``); a name that is not ``layer.name`` is refused
    before any file is read (no path traversal out of ``suites_dir``)."""
    check_table_name(table)
    path = suites_dir / f"{table}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in suites_dir.glob("*.yaml")))
        raise ConfigError(f"no expectation suite for {table} in {suites_dir}", fix=f"suites there: {known}")
    suite = parse_suite(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    if suite.table != table:
        raise ConfigError(f"{path}: says table {suite.table!r}, expected {table!r}")
    return suite


def load_all(suites_dir: Path) -> dict[str, Suite]:
    """Every suite in ``suites_dir``, by table."""
    return {p.stem: load_suite(suites_dir, p.stem) for p in sorted(suites_dir.glob("*.yaml"))}
