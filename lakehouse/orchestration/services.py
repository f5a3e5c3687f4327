"""Airflow 3 as services of `lakehouse stack`: the api-server (REST API, UI, and the execution API tasks
report to), the scheduler (LocalExecutor: tasks are its child processes) and the dag-processor (parses
``dags/``). No triggerer: no DAG of the project defers.

Locally the three share one ``AIRFLOW_HOME`` (``<state_dir>/services/airflow``) holding the SQLite metadata
database (migrated at the first start), task logs, the generated admin password and the JWT secret every
component signs and checks tokens with. Everything is set through ``AIRFLOW__*`` variables (no airflow.cfg
to drift), ``LAKEHOUSE_ENV`` names the profile so tasks use the same one, and ``PYTHONPATH`` puts this
checkout's package first. In the cluster profile they are containers (docker-compose.yml), only probed.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.errors import LakehouseError
from lakehouse.security.airflow_denials import DENIALS_ENV
from lakehouse.stack import probes
from lakehouse.stack.services import Service

DAGS_DIR = PROJECT_ROOT / "dags"
PLUGINS_DIR = Path(__file__).parent / "airflow_plugins"  # the api-server's refusal log (security.airflow_denials)
VIEWER = "viewer"  # a read-only user of the simple auth manager (role viewer): sees DAGs and runs, triggers none


def airflow_home(cfg: Config) -> Path:
    """The shared ``AIRFLOW_HOME`` of the local Airflow services."""
    return cfg.state_dir / "services" / "airflow"


def _secrets(cfg: Config) -> dict[str, str]:
    """The JWT secret and the API's session key, generated once per state folder (never committed)."""
    path = airflow_home(cfg) / "secrets.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = {"jwt_secret": secrets.token_urlsafe(32), "api_secret_key": secrets.token_urlsafe(32)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(fresh, fh)
    loaded: dict[str, str] = json.loads(path.read_text())
    return loaded


def users(cfg: Config) -> dict[str, str]:
    """The simple auth manager's users and their roles: the profile's admin and the read-only ``viewer``."""
    return {cfg.airflow.username: "admin", VIEWER: "viewer"}


def ensure_password(cfg: Config) -> None:
    """Give every user of :func:`users` a random password in the simple auth manager's password file (mode 600),
    keeping the ones it has. Airflow would generate missing ones itself, but print them into its log."""
    path = cfg.airflow.password_file
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = {user: secrets.token_urlsafe(16) for user in users(cfg) if user not in known}
    if not missing:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path.with_name(path.name + ".new")
    fresh.unlink(missing_ok=True)
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({**known, **missing}, fh)
    fresh.replace(path)


def denials_file(cfg: Config) -> Path:
    """The requests the local api-server refused (401/403), one JSON line each (:mod:`lakehouse.security.denials`)."""
    return airflow_home(cfg) / "logs" / "api-denials.jsonl"


def airflow_env(cfg: Config) -> dict[str, str]:
    """The environment of every local Airflow process (and of the tasks, which inherit it)."""
    af = cfg.airflow
    parsed = urlparse(af.url)
    home = airflow_home(cfg)
    keys = _secrets(cfg)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
            "LAKEHOUSE_ENV": str(cfg.source),
            "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
            DENIALS_ENV: str(denials_file(cfg)),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": af.executor,
            "AIRFLOW__CORE__PARALLELISM": str(af.parallelism),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in users(cfg).items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(af.password_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{af.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": af.database_uri,
            "AIRFLOW__API__HOST": parsed.hostname or "127.0.0.1",
            "AIRFLOW__API__PORT": str(parsed.port),
            "AIRFLOW__API__BASE_URL": af.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",  # new files in dags/ show up within ~20 s
            # an edited DAG file is re-parsed within 2 min (default 30 s: re-importing every DAG file that
            # often kept a few percent of a core busy on an idle 2-core stack)
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",  # no extra port: the API reports heartbeats
        }
    )
    return env


@dataclass(frozen=True)
class AirflowService(Service):
    """One Airflow 3 component (``kind``: airflow-api-server, airflow-scheduler, airflow-dag-processor)."""

    def prepare(self, cfg: Config, java: Path) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        home = airflow_home(cfg)
        (home / "logs").mkdir(parents=True, exist_ok=True)
        ensure_password(cfg)
        import airflow

        stamp = home / f"migrated-{airflow.__version__}"
        if not stamp.exists():  # first start, or a new Airflow version: create or upgrade the metadata DB
            self._run_once([sys.executable, "-m", "airflow", "db", "migrate"], cfg, java, "db-migrate")
            stamp.write_text(cfg.airflow.database_uri + "\n")

    def command(self, cfg: Config, java: Path) -> list[str]:
        # --pid is ignored in the foreground; it puts this service's folder on the command line (the marker)
        base = [sys.executable, "-m", "airflow"]
        pid = ["--pid", str(self.home / "airflow.pid")]
        if self.kind == "airflow-api-server":
            return [*base, "api-server", "--host", self.host, "--port", str(self.port), "--workers", "1", *pid]
        if self.kind == "airflow-scheduler":
            return [*base, "scheduler", "--skip-serve-logs", *pid]  # logs are local files the api-server reads
        return [*base, "dag-processor", *pid]

    def env(self, cfg: Config, java: Path) -> dict[str, str]:
        return airflow_env(cfg)

    @property
    def markers(self) -> tuple[str, ...]:
        if self.kind == "airflow-api-server":  # it retitles itself once running (setproctitle)
            return (self.marker, f"airflow api_server -- host:{self.host} port:{self.port}")
        return (self.marker,)

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        return probe(cfg, self.kind, timeout_s)


def probe(cfg: Config, kind: str, timeout_s: float = 5.0) -> probes.Probe:
    """Real API calls: the api-server issues a token and answers an authenticated request; the scheduler and
    the dag-processor are healthy when the API reports a recent heartbeat of theirs."""
    from lakehouse.orchestration.airflow import AirflowClient

    if not probes._listening(f"{urlparse(cfg.airflow.url).hostname}:{urlparse(cfg.airflow.url).port}", 2.0):
        return probes.Probe(False, f"nothing listens at {cfg.airflow.url}")
    try:
        client = AirflowClient.from_config(cfg, timeout_s=max(timeout_s, 5.0))
        health = client.health()
        if kind == "airflow-api-server":
            version = client.version()
            db = health.get("metadatabase", {}).get("status")
            return probes.Probe(db == "healthy", f"Airflow {version} API ok, metadata DB {db}")
    except LakehouseError as exc:
        return probes.Probe(False, exc.message.splitlines()[0][:160])
    part = health.get("scheduler" if kind == "airflow-scheduler" else "dag_processor") or {}
    beat = part.get("latest_scheduler_heartbeat") or part.get("latest_dag_processor_heartbeat")
    status = part.get("status")
    return probes.Probe(status == "healthy", f"{status or 'no'} heartbeat (last {beat or 'never'})")


def airflow_services(cfg: Config) -> list[Service]:
    """The api-server first (it serves the execution API the tasks talk to), then the dag-processor and the
    scheduler."""
    af, home = cfg.airflow, cfg.state_dir / "services"
    port = urlparse(af.url).port or 8080
    return [
        AirflowService(
            name=name, kind=name, region=None, port=port,  # the scheduler and dag-processor are seen through it
            ports=(port,) if af.embedded and name == "airflow-api-server" else (),
            managed=af.embedded, home=home / name,
        )
        for name in ("airflow-api-server", "airflow-dag-processor", "airflow-scheduler")
    ]  # fmt: skip
