"""The one module that talks to great-expectations (GX 1.x, whose API changed across every major version).

An ephemeral context (nothing written but the Data Docs), one Spark datasource, one dataframe asset per
(table, frame) with a whole-dataframe batch definition, one GX suite per (table, frame) built from the
suite's checks. ``Validator.validate`` runs them on the real DataFrame with Spark's execution engine and
returns plain :class:`CheckResult` values; nothing outside this module sees a GX object.

Cost: GX computes the metrics of all expectations on a frame together (aggregates are bundled into few
Spark jobs); the result format asks for counts only (no unexpected values are collected). A small batch (a
real-time micro-batch of tens of rows) is validated on the driver instead: each frame is computed by Spark as
before (derived frames and masked columns included), collected once, and GX runs the same expectations with its
pandas engine (~0.15 s for the gold.news2 suite on 60 rows, where its Spark jobs took ~1 s on an idle machine).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations import expectations as gxe
from great_expectations.data_context.types.base import ProgressBarsConfig
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ConfigError
from lakehouse.quality.suites import Check, Suite

RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}  # counts, no values
DOCS_SITE = "lakehouse"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one batch: observed value (text), rows checked and failed (None: the check
    is not row-level, e.g. a column maximum)."""

    check: Check
    success: bool
    observed: str | None
    rows_checked: int | None
    rows_failed: int | None


def _camel(expect: str) -> str:
    return "Expect" + "".join(part.capitalize() for part in expect.split("_"))


# value checks that ignore nulls: their ``where`` becomes a masked column (the value where the filter holds,
# else null), so every check of a frame shares one GX domain and GX bundles their counts into one
# aggregate pass; a Spark row condition would make a domain, and Spark jobs, of its own per check
_MASKABLE = ("column_values_to_be_between", "column_values_to_be_in_set")


def _masked(check: Check) -> str | None:
    """The masked column replacing ``check``'s column and ``where``, or None when the check is used as is."""
    return f"__{check.name}" if check.where and check.expect in _MASKABLE else None


def with_masked_columns(rows: DataFrame, checks: tuple[Check, ...]) -> DataFrame:
    """``rows`` plus the masked column of every maskable check with a ``where``."""
    masks = [
        F.when(F.expr(str(c.where)), F.col(str(c.args["column"]))).alias(name)
        for c in checks
        if (name := _masked(c)) is not None
    ]
    return rows.select("*", *masks) if masks else rows


def expectation(check: Check) -> Any:
    """The GX expectation of ``check`` (its ``where`` becomes a masked column, else a Spark row condition)."""
    cls = getattr(gxe, _camel(check.expect), None)
    if cls is None:
        raise ConfigError(f"check {check.name}: great-expectations has no expect_{check.expect}")
    args = dict(check.args)
    extra: dict[str, Any] = {}
    if (masked := _masked(check)) is not None:
        args["column"] = masked
    elif check.where:
        extra = {"row_condition": check.where, "condition_parser": "spark"}
    try:
        return cls(**args, **extra, meta={"lakehouse_check": check.name, "severity": check.severity.value})
    except (TypeError, ValueError) as exc:  # GX validates arguments with pydantic: name the check and the problem
        raise ConfigError(f"check {check.name}: invalid arguments for expect_{check.expect}: {exc}") from None


def _result(check: Check, raw: Any) -> CheckResult:
    result: dict[str, Any] = dict(raw.result or {})
    exception = (raw.exception_info or {}).get("exception_message") if raw.exception_info else None
    if exception:
        return CheckResult(check, False, f"error: {exception}"[:1000], None, None)
    if "unexpected_count" in result:
        checked, failed = int(result.get("element_count") or 0), int(result["unexpected_count"] or 0)
        if _masked(check) is not None:  # the masked-out rows are the null ones
            checked -= int(result.get("missing_count") or 0)
        return CheckResult(check, bool(raw.success), f"{failed} of {checked} unexpected", checked, failed)
    observed = result.get("observed_value")
    return CheckResult(check, bool(raw.success), None if observed is None else str(observed), None, None)


# Up to this many rows a frame over a local relation is collected as Python rows (no Spark job); more go through
# Arrow. Measured (idle machine): 40 rows 0.034 s against 0.092 s, 1,000 rows 0.105 / 0.102, 20,000 rows 0.53 / 0.23.
LOCAL_COLLECT_MAX_ROWS = 1_000


def driver_frame(data: DataFrame) -> pd.DataFrame:
    """A small DataFrame as pandas, for GX's pandas engine. Over a local relation (rows already on the driver,
    e.g. the real-time batch) Spark evaluates ``data`` there: a few rows are collected without a Spark job
    (``toPandas`` runs one to convert to Arrow: ~0.05 s idle, several times that beside the pipeline's other
    queries; it is faster from ``LOCAL_COLLECT_MAX_ROWS`` rows on)."""
    plan = data._jdf.queryExecution().optimizedPlan()
    if plan.nodeName() == "LocalRelation" and plan.data().size() <= LOCAL_COLLECT_MAX_ROWS:
        return pd.DataFrame.from_records(data.collect(), columns=data.columns)
    return data.toPandas()


class Validator:
    """Runs suites on Spark DataFrames; optionally renders GX Data Docs (HTML) into ``docs_dir``."""

    def __init__(self, docs_dir: Path | None = None) -> None:
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.docs_dir = docs_dir
        if docs_dir is not None:
            docs_dir.mkdir(parents=True, exist_ok=True)
            self.context.add_data_docs_site(
                site_name=DOCS_SITE,
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        self.datasource = self.context.data_sources.add_spark(name="lakehouse")
        self.on_driver = self.context.data_sources.add_pandas(name="lakehouse-driver")
        self._definitions: dict[tuple[str, str | None, bool], Any] = {}

    def _definition(self, suite: Suite, frame: str | None, checks: tuple[Check, ...], local: bool = False) -> Any:
        key = (suite.table, frame, local)
        if key not in self._definitions:
            name = (suite.table if frame is None else f"{suite.table}.{frame}") + (".driver" if local else "")
            asset = (self.on_driver if local else self.datasource).add_dataframe_asset(name=name)
            batch = asset.add_batch_definition_whole_dataframe("whole")
            gx_suite = self.context.suites.add(gx.ExpectationSuite(name=name))
            for check in checks:
                gx_suite.add_expectation(expectation(check))
            self._definitions[key] = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
            )
        return self._definitions[key]

    def _run(self, definition: Any, data: Any) -> Any:
        params = {"dataframe": data}
        if self.docs_dir is not None:  # kept in the context's (in-memory) results store for the Data Docs
            return definition.run(batch_parameters=params, result_format=RESULT_FORMAT)
        # in a long-running stream nothing is kept: validate the batch directly
        return definition.data.get_batch(batch_parameters=params).validate(
            definition.suite, result_format=RESULT_FORMAT
        )

    def validate(self, suite: Suite, rows: DataFrame, on_driver: bool = False) -> list[CheckResult]:
        """Every check of ``suite`` on ``rows`` (persist ``rows`` first: each frame reads it once or twice).

        ``on_driver``: ``rows`` is small; collect each frame and validate it with GX's pandas engine (a frame with
        a check whose ``where`` is not a masked column keeps Spark's engine: its condition is Spark SQL)."""
        results: list[CheckResult] = []
        for frame, checks in suite.by_frame().items():
            data = with_masked_columns(rows if frame is None else suite.derive(frame, rows), checks)
            local = on_driver and all(c.where is None or _masked(c) is not None for c in checks)
            run = self._run(self._definition(suite, frame, checks, local), driver_frame(data) if local else data)
            by_name = {r.expectation_config.meta.get("lakehouse_check"): r for r in run.results}
            results.extend(_result(c, by_name[c.name]) for c in checks)
        order = {c.name: i for i, c in enumerate(suite.checks)}
        return sorted(results, key=lambda r: order[r.check.name])

    def build_docs(self) -> Path | None:
        """Render the Data Docs of every validation this validator ran; returns the index page."""
        if self.docs_dir is None:
            return None
        self.context.build_data_docs(site_names=[DOCS_SITE])
        return self.docs_dir / "index.html"
