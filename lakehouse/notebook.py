"""The analyst notebooks' side of the package: session and parameters, a ``%%sql`` cell magic, time-travel
helpers, and headless execution and output stripping of ``notebooks/*.ipynb``.

A notebook's first code cell is tagged ``parameters`` (REGION, DATE_FROM, DATE_TO, PROFILE, CONNECT,
REQUIRE_ROWS, ...); :func:`execute` runs it headlessly with a cell of overrides injected after that one
(the papermill convention). Then::

    %load_ext lakehouse.notebook
    from lakehouse import notebook
    params = notebook.setup(REGION, DATE_FROM, DATE_TO, profile=PROFILE, connect=CONNECT, require_rows=REQUIRE_ROWS)

and every ``%%sql NAME`` cell runs its SQL, with ``{region}``, ``{date_from}``, ``{date_to}`` (and any
notebook variable) filled in, into a pandas DataFrame ``NAME``.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.config import PROJECT_ROOT, Config, load_config
from lakehouse.errors import LakehouseError

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


class EmptyResult(LakehouseError):
    """A notebook query returned no rows while the notebook runs with ``REQUIRE_ROWS`` (as the tests do)."""


class NotebookFailed(LakehouseError):
    """A cell of a notebook run headlessly raised; the message ends with the cell's error."""


@dataclass(frozen=True)
class Params:
    """What a notebook looks at: a region and an inclusive range of UTC dates."""

    region: str
    date_from: date
    date_to: date
    require_rows: bool

    def as_sql(self) -> dict[str, str]:
        """The values ``%%sql`` cells may reference: ``{region}``, ``{date_from}``, ``{date_to}`` (ISO dates)."""
        return {"region": self.region, "date_from": self.date_from.isoformat(), "date_to": self.date_to.isoformat()}


_session: dict[str, Any] = {}


def resolve_dates(date_from: str | None, date_to: str | None, today: date | None = None) -> tuple[date, date]:
    """The inclusive date range: given ISO dates, or the 7 days up to today (UTC) when left empty."""
    end = date.fromisoformat(date_to) if date_to else (today or datetime.now(UTC).date())
    start = date.fromisoformat(date_from) if date_from else end - timedelta(days=6)
    if start > end:
        raise LakehouseError(f"DATE_FROM {start} is after DATE_TO {end}", fix="swap them")
    return start, end


def setup(
    region: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    profile: str | None = None,
    connect: str | None = None,
    require_rows: bool = False,
) -> Params:
    """Open the notebook's session and fix its parameters.

    ``connect`` (``sc://host:port``) attaches to a Spark Connect server instead of starting a local JVM;
    otherwise the session is the project's own (`lakehouse.session.build_spark`) on ``region``'s catalog.
    ``profile`` selects the configuration like ``LAKEHOUSE_ENV`` (None: the environment's).
    """
    cfg = load_config(profile)
    region_cfg = cfg.region(region)
    start, end = resolve_dates(date_from, date_to)
    if connect:
        spark = SparkSession.builder.remote(connect).getOrCreate()
    else:
        from lakehouse.session import build_spark

        spark = build_spark(cfg, f"lakehouse-notebook-{region_cfg.name}", catalog_region=region_cfg.name)
        spark.sparkContext.setLogLevel("ERROR")
    params = Params(region_cfg.name, start, end, require_rows)
    _session.update(spark=spark, params=params, cfg=cfg)
    return params


def config() -> Config:
    """The configuration profile :func:`setup` loaded (regions, model name, MLflow URL, ...)."""
    if "cfg" not in _session:
        raise LakehouseError("no notebook session yet", fix="run the set-up cell (notebook.setup(...)) first")
    cfg: Config = _session["cfg"]
    return cfg


def table_uri(table: str, region: str | None = None) -> str:
    """Where ``table`` (``layer.name``) of ``region`` (default: the notebook's) lives, for SQL such as
    ``SELECT ... FROM delta.`{uri}``` over another region's copy."""
    from lakehouse import tables

    params: Params | None = _session.get("params")
    return tables.uri(config().region(region or (params.region if params else None)), table)


def spark() -> SparkSession:
    """The session :func:`setup` opened."""
    if "spark" not in _session:
        raise LakehouseError("no notebook session yet", fix="run the set-up cell (notebook.setup(...)) first")
    session: SparkSession = _session["spark"]
    return session


def sql(query: str, values: Mapping[str, Any] | None = None) -> Any:
    """Run ``query`` (``{name}`` placeholders filled from the parameters and ``values``) into a pandas
    DataFrame; with ``require_rows``, an empty result raises :class:`EmptyResult`."""
    params: Params | None = _session.get("params")
    mapping = ChainMap(params.as_sql() if params else {}, dict(values or {}))
    text = query.format_map(mapping)
    frame: Any = spark().sql(text).toPandas()
    if params is not None and params.require_rows and frame.empty:
        first = " ".join(text.split())[:160]
        raise EmptyResult(f"query returned no rows in {params.region} {params.date_from}..{params.date_to}: {first}")
    return frame


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext lakehouse.notebook`` registers ``%%sql [NAME]``: run the cell as SQL, keep it as ``NAME``."""

    def sql_magic(line: str, cell: str) -> Any:
        frame = sql(cell, ipython.user_ns)
        name = line.strip()
        if name:
            ipython.user_ns[name] = frame
        return frame

    ipython.register_magic_function(sql_magic, magic_kind="cell", magic_name="sql")


# --------------------------------------------------------------------------- Delta time travel


def version_as_of(history: Any, moment: datetime) -> tuple[int, str]:
    """From a ``DESCRIBE HISTORY`` frame (pandas), the version that was current at ``moment`` and a sentence
    saying so; when the table is younger than ``moment``, its first version holding data, and that."""
    ordered = history.sort_values("version")
    known = ordered[ordered["timestamp"] <= moment.replace(tzinfo=None)]
    if not known.empty:
        row = known.iloc[-1]
        return int(row["version"]), f"version {int(row['version'])} (committed {row['timestamp']}) was current"
    with_data = ordered[ordered["operation"] != "CREATE TABLE"]
    row = (with_data if not with_data.empty else ordered).iloc[0]
    return int(row["version"]), (
        f"the table did not exist yet; its first version with data is {int(row['version'])} "
        f"(committed {row['timestamp']})"
    )


def at_time(day: date, clock: str) -> datetime:
    """``day`` at ``clock`` (``HH:MM``), UTC."""
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=UTC)


# --------------------------------------------------------------------------- headless runs, output stripping


def notebooks() -> list[Path]:
    """Every notebook in notebooks/, in name order."""
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def _parameters_index(nb: Any) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return i
    raise LakehouseError("the notebook has no code cell tagged 'parameters'", fix="tag its first code cell")


def with_parameters(nb: Any, parameters: Mapping[str, Any]) -> Any:
    """A copy of ``nb`` with a cell assigning ``parameters`` right after the ``parameters`` cell."""
    import copy

    import nbformat

    out = copy.deepcopy(nb)
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    out.cells.insert(_parameters_index(out) + 1, cell)
    return out


def execute(path: Path, parameters: Mapping[str, Any], timeout_s: int = 600) -> Any:
    """Run the notebook at ``path`` headlessly (nbclient, this Python's kernel, cwd = the project) with
    ``parameters`` injected; returns the executed notebook. A failing cell raises nbclient's CellExecutionError."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = with_parameters(nbformat.read(path, as_version=4), parameters)
    client = NotebookClient(
        nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(PROJECT_ROOT)}}
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise NotebookFailed(f"{path.name}: a cell failed: {lines[-1] if lines else exc}", fix=f"open {path}") from exc
    return nb


def has_outputs(nb: Any) -> list[int]:
    """Indexes of cells carrying outputs or an execution count (a committed notebook must have none)."""
    return [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]


def strip(path: Path) -> bool:
    """Remove outputs and execution counts from the notebook at ``path``; True when it changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if not has_outputs(nb):
        return False
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nbformat.write(nb, path)
    return True


def images(nb: Any) -> int:
    """How many rendered images (charts) the executed notebook holds."""
    return sum(
        1
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {}) or "image/svg+xml" in output.get("data", {})
    )
