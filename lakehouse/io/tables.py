"""Table and checkpoint locations, keyed by table name and region: ``<warehouse>/<layer>/<table>``."""

from __future__ import annotations

from collections.abc import Collection

from lakehouse.config import TABLE_NAME, RegionConfig
from lakehouse.errors import LakehouseError

# Permission bits of a region's top-level folders (HDFS permissions on): the pipeline user owns everything; every
# other user (analysts) may read gold only. Bronze, silver, dq, ops and the checkpoints (the real-time query's
# state holds patients' vitals) stay private; restricted (pseudonym -> raw patient identifier) is the pipeline
# user's alone, not even its group's.
FOLDER_MODES: dict[str, int] = {
    "bronze": 0o750, "silver": 0o750, "gold": 0o755, "dq": 0o750, "ops": 0o750, "_checkpoints": 0o750,
    "restricted": 0o700, "models": 0o750,
}  # fmt: skip


def check_table_name(name: str, what: str = "table name") -> str:
    """``name`` if it is a well-formed ``layer.name``; else a one-line error (never joined into a path or SQL)."""
    if not TABLE_NAME.fullmatch(name):
        raise LakehouseError(f"invalid {what} {name!r}", fix="use lower-case <layer>.<name>, e.g. bronze.telemetry")
    return name


def check_table_names(names: list[str] | None, known: Collection[str]) -> None:
    """Refuse table names a user gave (CLI ``--table``) that are malformed (path traversal, SQL, control
    characters: never joined into a path or a statement) or not among ``known``, before any work starts."""
    for name in names or []:
        check_table_name(name, "table name")
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise LakehouseError(f"unknown table(s) {unknown}", fix=f"choose from {', '.join(sorted(known))}")


def table_uri(region: RegionConfig, table: str) -> str:
    """Delta location of ``layer.name`` in ``region``, e.g. hdfs://…/lakehouse/bronze/telemetry."""
    layer, name = check_table_name(table, "table name").split(".")
    return f"{region.warehouse_uri}/{layer}/{name}"


def checkpoint_uri(region: RegionConfig, query: str) -> str:
    """Streaming checkpoint of query ``layer.name`` in ``region`` (one per query, on the region's HDFS)."""
    layer, name = check_table_name(query, "query name").split(".")
    return f"{region.warehouse_uri}/_checkpoints/{layer}/{name}"
