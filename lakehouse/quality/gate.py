"""The severity gate: run a table's suite on a batch, then route what failed.

warn: recorded (``dq.results`` and ``lakehouse_dq_failures_total``); quarantine: the failing rows get the
check's name as their rejection reason (``with_quarantine_reason``: the caller sends them to
``silver.quarantine``); block: :class:`DataQualityBlocked` is raised before the batch is written, so a
streaming query fails loudly with its checkpoint not advanced, and retries the batch when restarted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import audit
from lakehouse.config import Config, RegionConfig
from lakehouse.errors import LakehouseError
from lakehouse.io.delta import BatchAppender
from lakehouse.observability import metrics
from lakehouse.quality.gx_facade import CheckResult, Validator
from lakehouse.quality.results import results_frame
from lakehouse.quality.suites import Severity, Suite, load_suite


class DataQualityBlocked(LakehouseError):
    """A blocking expectation failed: the batch was not promoted."""

    exit_code = 3


@dataclass(frozen=True)
class Outcome:
    """The results of one suite on one batch."""

    suite: Suite
    results: tuple[CheckResult, ...]

    def failed(self, severity: Severity | None = None) -> list[CheckResult]:
        return [r for r in self.results if not r.success and (severity is None or r.check.severity is severity)]

    @property
    def success(self) -> bool:
        return not self.failed()

    def quarantine_reason(self) -> Column | None:
        """The name of the first failed quarantine check each row fails (null: none), or None if none failed."""
        failed = self.failed(Severity.QUARANTINE)
        if not failed:
            return None
        reason: Column = F.lit(None).cast("string")
        for result in reversed(failed):
            reason = F.when(result.check.violation(), F.lit(result.check.name)).otherwise(reason)
        return reason

    def raise_if_blocked(self, where: str) -> None:
        blocked = self.failed(Severity.BLOCK)
        if blocked:
            detail = "; ".join(f"{r.check.name}: {r.observed}" for r in blocked)
            raise DataQualityBlocked(
                f"{where}: blocking expectations of {self.suite.table} failed ({detail}); the batch was not written",
                fix=f"fix the data or the suite (conf/quality/{self.suite.table}.yaml), then restart: the batch is retried",
            )

    def rows(self, spark: SparkSession, run_id: str, region: str, scope: str) -> DataFrame:
        """This outcome as ``dq.results`` rows."""
        entries = [(r.check.name, r.check.expect, r.check.severity.value, r) for r in self.results]
        return results_frame(spark, entries, run_id, region, self.suite.table, scope)

    def record_metrics(self, region: str) -> None:
        """Count failures by check; every check run has its series (at 0 until it fails), so dashboards and
        alerts tell "checked, no failure" from "never checked"."""
        for r in self.results:
            n = 0 if r.success else (r.rows_failed or 1)
            metrics.record_dq_failure(region, self.suite.table, r.check.name, n)


ON_DRIVER_MAX_ROWS = 20_000  # a batch this small is collected and validated on the driver (GX's pandas engine)


def check(validator: Validator, suite: Suite, rows: DataFrame, row_count: int | None = None) -> Outcome:
    """Run ``suite`` on ``rows`` (persisted by the caller); ``row_count``, when the caller knows it, lets a small
    batch be validated on the driver."""
    small = row_count is not None and row_count <= ON_DRIVER_MAX_ROWS
    return Outcome(suite, tuple(validator.validate(suite, rows, on_driver=small)))


def with_quarantine_reason(rows: DataFrame, reason: Column) -> DataFrame:
    """Rows not rejected yet (``reason`` null) that fail a quarantine check get its name as their reason."""
    tagged = F.when(F.col("reason").isNull(), reason)
    detail = F.when(tagged.isNotNull(), F.concat(F.lit("data-quality check "), tagged, F.lit(" (conf/quality)")))
    return rows.withColumn("detail", F.coalesce(detail, F.col("detail"))).withColumn(
        "reason", F.coalesce(F.col("reason"), tagged)
    )


def publish(
    spark: SparkSession,
    outcomes: Sequence[Outcome],
    checks: Checks,
    run_id: str,
    scope: str,
    batch_id: int | None = None,
) -> None:
    """Append the outcomes to ``dq.results`` (one commit) and count their failures; then, if a blocking check
    failed, record the decision in ops.audit_log and raise :class:`DataQualityBlocked` (so the caller writes
    nothing of the batch).

    A streaming query passes its micro-batch's ``batch_id`` and has an appender in ``checks``: the results of a
    batch that passed, retried after a crash, are then not appended a second time. A blocked batch's results
    carry no marker, so its retry (perhaps under a changed suite) is recorded as well."""
    region = checks.region
    blocked = [f"{o.suite.table}: {r.check.name}" for o in outcomes for r in o.failed(Severity.BLOCK)]
    frames = [o.rows(spark, run_id, region, scope) for o in outcomes]
    if frames:
        rows = reduce(DataFrame.unionByName, frames).coalesce(1)  # a row per check: one file per commit
        if checks.appender is not None and batch_id is not None and not blocked:
            checks.appender.append(rows, checks.results_uri, batch_id)
        else:
            rows.write.format("delta").mode("append").save(checks.results_uri)
    for outcome in outcomes:
        outcome.record_metrics(region)
    if blocked:
        tables = ", ".join(o.suite.table for o in outcomes)
        detail = {"run_id": run_id, "scope": scope, "blocked": blocked}
        audit.try_record(checks.home, audit.entry("dq.gate", tables, region, "blocked", detail))
    for outcome in outcomes:
        outcome.raise_if_blocked(f"{outcome.suite.table} {scope}")


@dataclass(frozen=True)
class Checks:
    """What a streaming query needs to check its micro-batches: one validator (GX context) per query, the
    suites of the tables it writes, and where results go."""

    validator: Validator
    suites: Mapping[str, Suite]
    results_uri: str
    region: str
    home: RegionConfig  # the region itself (its ops.audit_log records blocking decisions)
    appender: BatchAppender | None = None  # the query's idempotent appends (streaming queries)

    def check(self, table: str, rows: DataFrame, row_count: int | None = None) -> Outcome:
        return check(self.validator, self.suites[table], rows, row_count)


def load_checks(
    cfg: Config, region: RegionConfig, tables: Sequence[str], appender: BatchAppender | None = None
) -> Checks | None:
    """The checks of a query writing ``tables`` (a streaming query gives its ``appender``: results of a retried
    batch are written once); None when ``quality.enabled`` is false (benchmarks only)."""
    if not cfg.quality.enabled:
        return None
    from lakehouse.tables import uri

    loaded = {t: load_suite(cfg.quality.suites_dir, t) for t in tables}
    return Checks(Validator(), loaded, uri(region, "dq.results"), region.name, region, appender)
