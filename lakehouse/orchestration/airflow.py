"""A small client of Airflow 3's REST API (``/api/v2``, JWT bearer tokens from ``/auth/token``): list DAGs,
unpause, trigger a run with conf and a logical date, wait for it with progress, read its task states, list a DAG's
runs by type and state, mark a run failed.

Used by `lakehouse dags ...`, the stack's health probes and the integration tests; it talks to the real
api-server named by ``airflow.url`` as the configured admin (password from ``airflow.password_file``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.config import AirflowConfig, Config
from lakehouse.errors import LakehouseError, ServiceUnavailable

Progress = Callable[[str], None]

# Airflow 3 run and task-instance states that will not change any more
RUN_FINAL = ("success", "failed")
TASK_FINAL = ("success", "failed", "skipped", "upstream_failed", "removed")


class AirflowError(LakehouseError):
    """The Airflow API refused a request (unknown DAG, bad conf, authentication) or a run did not succeed."""


def read_password(cfg: AirflowConfig, user: str | None = None) -> str:
    """The password of ``user`` (default the admin): ``password_file`` is the simple auth manager's JSON
    ``{user: password}`` (the local stack writes it) or a file holding only the admin's password (a container
    secret)."""
    user = user or cfg.username
    try:
        text = cfg.password_file.read_text(encoding="utf-8").strip()
    except OSError:
        raise ServiceUnavailable(
            f"the Airflow password file {cfg.password_file} cannot be read",
            fix="run `lakehouse stack up` (it generates the admin password at Airflow's first start)",
        ) from None
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, dict):
        if user not in parsed:
            raise AirflowError(f"{cfg.password_file} has no password for user {user!r}")
        return str(parsed[user])
    return text


@dataclass(frozen=True)
class DagRun:
    """One DAG run as the API reports it, with its task instances' states (task id -> state)."""

    dag_id: str
    run_id: str
    state: str
    logical_date: str | None
    conf: Mapping[str, Any]
    tasks: Mapping[str, str | None] = field(default_factory=dict)
    note: str | None = None  # what whoever marked the run said (``set_run_state``, the UI)

    @property
    def succeeded(self) -> bool:
        return self.state == "success"

    def as_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "state": self.state,
                "logical_date": self.logical_date, "conf": dict(self.conf), "tasks": dict(self.tasks), "note": self.note}  # fmt: skip


class AirflowClient:
    """The REST API of one Airflow api-server, authenticated as one user (the token is fetched lazily and
    fetched again once when the server rejects it)."""

    def __init__(self, url: str, username: str, password: str, timeout_s: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self._token: str | None = None

    @classmethod
    def from_config(cls, cfg: Config, timeout_s: float = 15.0, user: str | None = None) -> AirflowClient:
        """A client of the profile's Airflow as ``user`` (default its admin)."""
        user = user or cfg.airflow.username
        return cls(cfg.airflow.url, user, read_password(cfg.airflow, user), timeout_s)

    # ------------------------------------------------------------------ transport

    def _send(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise _HttpError(exc.code, f"Airflow {method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceUnavailable(
                f"Airflow at {self.url} does not answer ({type(exc).__name__}: {getattr(exc, 'reason', exc)})",
                fix="run `lakehouse stack up` (it runs the Airflow api-server, scheduler and dag-processor)",
            ) from None
        return json.loads(raw) if raw else None

    def token(self) -> str:
        """A JWT access token for the API (``POST /auth/token`` with the user's name and password)."""
        if self._token is None:
            try:
                reply = self._send(
                    "POST", "/auth/token", {"username": self.username, "password": self._password}, auth=False
                )
            except _HttpError as exc:
                raise AirflowError(
                    f"Airflow at {self.url} refused the credentials of {self.username!r} ({exc.message})",
                    fix="check airflow.username and airflow.password_file of the profile",
                ) from None
            self._token = str(reply["access_token"])
        return self._token

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One authenticated API call; HTTP errors become :class:`AirflowError` with the server's detail."""
        try:
            try:
                return self._send(method, path, body)
            except _HttpError as exc:
                if not (exc.status == 401 or (exc.status == 403 and "Invalid JWT token" in exc.message)):
                    raise  # a permission refusal ("Forbidden") is final: a new token would only be refused again
                self._token = None  # expired or rejected ("Invalid JWT token" is a 403): fetch a new one, once
                return self._send(method, path, body)
        except _HttpError as exc:
            raise AirflowError(exc.message) from None

    # ------------------------------------------------------------------ API

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health``: metadatabase, scheduler and dag-processor status with their heartbeats."""
        out: dict[str, Any] = self.request("GET", "/api/v2/monitor/health")
        return out

    def version(self) -> str:
        """The server's Airflow version (an authenticated call)."""
        return str(self.request("GET", "/api/v2/version")["version"])

    def _paged(self, path: str, key: str, query: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
        """Every item of a paged list endpoint (``limit`` and ``offset``; ``total_entries`` in each page)."""
        out: list[dict[str, Any]] = []
        while True:
            params = urllib.parse.urlencode([*query, ("limit", "100"), ("offset", str(len(out)))])
            page = self.request("GET", f"{path}?{params}")
            out += page[key]
            if not page[key] or len(out) >= int(page["total_entries"]):
                return out

    def dags(self) -> list[dict[str, Any]]:
        """Every DAG the dag-processor has parsed (id, paused, schedule, next run)."""
        return self._paged("/api/v2/dags", "dags", [("order_by", "dag_id")])

    def import_errors(self) -> list[dict[str, Any]]:
        """DAG files that failed to import (file name and stack trace)."""
        errors: list[dict[str, Any]] = self.request("GET", "/api/v2/importErrors?limit=100")["import_errors"]
        return errors

    def dag(self, dag_id: str) -> dict[str, Any]:
        try:
            out: dict[str, Any] = self.request("GET", f"/api/v2/dags/{_q(dag_id)}")
        except AirflowError as exc:
            if "HTTP 404" in exc.message:
                raise AirflowError(
                    f"Airflow knows no DAG {dag_id!r} (yet)",
                    fix="check `lakehouse dags list`; a new file in dags/ is parsed within a minute",
                ) from None
            raise
        return out

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """The DAG once the dag-processor has parsed it (new files appear after a directory scan)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.dag(dag_id)
            except AirflowError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(2.0)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause a DAG (new DAGs start paused: the scheduler runs nothing of a paused DAG)."""
        self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", {"is_paused": paused})

    def trigger(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        logical_date: datetime | None = None,
        run_id: str | None = None,
    ) -> DagRun:
        """Create a DAG run (``logical_date`` None: a run without a data interval, as in the UI)."""
        body: dict[str, Any] = {"conf": dict(conf or {}), "logical_date": _iso(logical_date)}
        if run_id is not None:
            body["dag_run_id"] = run_id
        reply = self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", body)
        return _run(reply)

    def due_scheduled_run(self, dag_id: str) -> datetime | None:
        """The logical date of the scheduled run a paused DAG would start the moment it is unpaused (without
        catch-up the scheduler still runs the latest due interval), or None when none is due."""
        info = self.dag(dag_id)
        after, logical = info.get("next_dagrun_run_after"), info.get("next_dagrun_logical_date")
        if not info.get("is_paused") or not after or not logical or _parse(after) > datetime.now(UTC):
            return None
        # a run may hold that date already (an earlier trigger took it): the scheduler then creates none
        query = urllib.parse.urlencode({"logical_date_gte": logical, "logical_date_lte": logical, "limit": 1})
        taken = self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns?{query}")
        return None if taken.get("total_entries") else _parse(logical)

    def trigger_and_unpause(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        logical_date: datetime | None = None,
        run_id: str | None = None,
    ) -> DagRun:
        """Create a run and unpause the DAG so the scheduler runs it, once: when a scheduled run is due
        and no ``logical_date`` is given, the new run takes that run's logical date, and the scheduler
        skips creating its own (one run per logical date) instead of running the DAG a second time."""
        run = self.trigger(dag_id, conf, logical_date or self.due_scheduled_run(dag_id), run_id)
        self.set_paused(dag_id, False)
        return run

    def runs(self, dag_id: str, run_type: str | None = None, states: Sequence[str] = ()) -> list[DagRun]:
        """A DAG's runs, oldest first: only those of ``run_type`` (``scheduled``, ``manual``, ...) and in one of
        ``states`` (``queued``, ``running``, ...) when given (task states not read: see :meth:`dag_run`)."""
        query = [("order_by", "logical_date"), *([("run_type", run_type)] if run_type else [])]
        query += [("state", s) for s in states]
        return [_run(r) for r in self._paged(f"/api/v2/dags/{_q(dag_id)}/dagRuns", "dag_runs", query)]

    def set_run_state(self, dag_id: str, run_id: str, state: str, note: str | None = None) -> None:
        """Mark a run ``success``, ``failed`` or ``queued`` as the UI does (marking it failed stops its running
        task instances), with a ``note`` saying why when given."""
        body: dict[str, Any] = {"state": state} | ({"note": note} if note else {})
        self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", body)

    def dag_run(self, dag_id: str, run_id: str) -> DagRun:
        """A run's state and its task instances' states."""
        run = _run(self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"))
        return replace(run, tasks=self.task_states(dag_id, run_id))

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Task id -> state of every task instance of a run (mapped tasks: the worst of their states)."""
        tis = self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances?limit=1000")
        return {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task instance's XCom value (a job task's: the last line its job printed, as a string)."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/xcomEntries/{_q(key)}"
        return self.request("GET", path)["value"]

    def wait(
        self, dag_id: str, run_id: str, timeout_s: float = 1800.0, poll_s: float = 3.0, progress: Progress | None = None
    ) -> DagRun:
        """Poll a run until it succeeds or fails; ``progress`` hears each change of the task states."""
        deadline = time.monotonic() + timeout_s
        t0, last = time.monotonic(), ""
        while True:
            run = self.dag_run(dag_id, run_id)
            summary = ", ".join(f"{t}={s or 'none'}" for t, s in sorted(run.tasks.items()))
            line = f"{run.state}: {summary}"
            if progress is not None and line != last:
                progress(f"  [{time.monotonic() - t0:6.1f}s] {dag_id} {line}")
            last = line
            if run.state in RUN_FINAL:
                return run
            if time.monotonic() > deadline:
                raise AirflowError(
                    f"{dag_id} run {run_id} did not finish within {timeout_s:g}s (last: {line})",
                    fix="check `lakehouse stack status` (is the scheduler healthy?) and the task logs in the UI",
                )
            time.sleep(poll_s)


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _parse(text: str) -> datetime:
    """An API timestamp (ISO 8601, ``Z`` for UTC) as an aware datetime."""
    return datetime.fromisoformat(text)  # Python 3.11 reads the trailing Z


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _run(reply: Mapping[str, Any]) -> DagRun:
    return DagRun(
        dag_id=str(reply["dag_id"]), run_id=str(reply["dag_run_id"]), state=str(reply["state"]),
        logical_date=reply.get("logical_date"), conf=reply.get("conf") or {}, note=reply.get("note"),
    )  # fmt: skip


def task_log_dir(cfg: Config) -> Path:
    """Where the local stack's task logs are (``<AIRFLOW_HOME>/logs``)."""
    return cfg.state_dir / "services" / "airflow" / "logs"
