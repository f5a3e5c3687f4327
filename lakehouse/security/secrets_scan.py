"""Secrets scan: secret values where they must never be (the repository, the DAG sources Airflow parses,
Airflow's task logs, MLflow's run params and tags and model-version tags).

Two kinds of detector:

- **known values**: every secret the stack generated or was given (the Airflow admin passwords, Airflow's
  JWT secret and API session key, the pseudonymization key, any file in ``<state_dir>/secrets``), looked for
  verbatim. These are the secrets this platform actually holds, so a hit is a leak, not a guess.
- **patterns**: shapes of secrets no configuration lists (private-key blocks, cloud access keys, JSON web
  tokens, passwords inside URLs, quoted literals assigned to password/secret/token names).

A finding names where (file and line, or the MLflow run and key) and the detector, never the value. A line
that says ``secrets-scan: allow`` (a test's made-up credential) is exempt from the patterns, never from the
known values.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.config import PROJECT_ROOT, Config

MIN_SECRET_CHARS = 8  # shorter "secrets" (test fixtures, placeholders) would match everywhere
MAX_FILE_BYTES = 5 * 1024 * 1024  # larger files are data (samples, notebooks' outputs), not configuration
ALLOW_MARKER = "secrets-scan: allow"

PATTERNS: dict[str, re.Pattern[str]] = {
    "private_key_block": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "aws_access_key_id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "json_web_token": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"),
    "password_in_url": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:[^\s/@'\"{}$<>]{3,}@[\w.-]+"),
    "secret_literal": re.compile(
        r"(?i)\b[\w-]*(?:password|passwd|secret|token|api_key|apikey)\b['\"]?\s*[:=]\s*['\"]"
        r"(?![$<{])[^'\"\s]{" + str(MIN_SECRET_CHARS) + r",}['\"]"
    ),
}


@dataclass(frozen=True)
class Finding:
    """One secret where it must not be; ``where`` is ``path:line`` or ``mlflow:<run or model>/<key>``."""

    source: str  # repository, dags, airflow_logs, mlflow
    where: str
    detector: str  # known:<name> or a PATTERNS key


@dataclass
class ScanReport:
    """What was scanned (counts per source, so an empty scan is visible) and what was found."""

    scanned: dict[str, int] = field(default_factory=dict)
    known_secrets: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "scanned": self.scanned, "known_secrets": self.known_secrets,
                "findings": [asdict(f) for f in self.findings]}  # fmt: skip


def known_secrets(cfg: Config) -> dict[str, str]:
    """The secret values this deployment holds, by name (values shorter than MIN_SECRET_CHARS are left out)."""
    from lakehouse.orchestration.services import airflow_home

    found: dict[str, str] = {}
    password_file = cfg.airflow.password_file
    if password_file.is_file():
        text = password_file.read_text(encoding="utf-8").strip()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        users = parsed if isinstance(parsed, dict) else {cfg.airflow.username: parsed}
        found.update({f"airflow_password:{user}": str(pw) for user, pw in users.items()})
    airflow_secrets = airflow_home(cfg) / "secrets.json"
    if airflow_secrets.is_file():
        found.update({f"airflow:{k}": str(v) for k, v in json.loads(airflow_secrets.read_text()).items()})
    secrets_dir = cfg.state_dir / "secrets"
    if secrets_dir.is_dir():
        for path in sorted(p for p in secrets_dir.iterdir() if p.is_file()):
            found[f"file:{path.name}"] = path.read_text(encoding="utf-8", errors="replace").strip()
    return {name: value for name, value in found.items() if len(value) >= MIN_SECRET_CHARS}


def scan_text(text: str, known: dict[str, str]) -> Iterator[tuple[int, str]]:
    """(line number, detector) of every secret in ``text``; a known value first, then the patterns."""
    for number, line in enumerate(text.splitlines(), start=1):
        for name, value in known.items():
            if value in line:
                yield number, f"known:{name}"
        if ALLOW_MARKER in line:
            continue
        for name, pattern in PATTERNS.items():
            if pattern.search(line):
                yield number, name


def scan_files(source: str, files: Iterable[Path], root: Path, known: dict[str, str], report: ScanReport) -> None:
    """Scan text files (binary and oversized ones are skipped) and add to ``report``."""
    count = 0
    for path in files:
        try:
            if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:4096]:
            continue  # binary
        count += 1
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        for line, detector in scan_text(data.decode("utf-8", errors="replace"), known):
            report.findings.append(Finding(source, f"{shown}:{line}", detector))
    report.scanned[source] = report.scanned.get(source, 0) + count


def repository_files(root: Path = PROJECT_ROOT) -> list[Path]:
    """The files git tracks (what a commit would publish); without git, every file outside state and caches."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
        return [root / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", ".state", ".jars", "__pycache__", "node_modules"}
        return [p for p in root.rglob("*") if p.is_file() and not skip & set(p.relative_to(root).parts)]


def scan_mlflow(cfg: Config, known: dict[str, str], report: ScanReport) -> None:
    """Every run's params and tags, and every model version's tags, on the tracking server."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    from lakehouse.security.credentials import export_mlflow_client_env

    export_mlflow_client_env(cfg)
    client = MlflowClient(cfg.mlflow.tracking_uri, registry_uri=cfg.mlflow.tracking_uri)
    runs = 0
    for experiment in client.search_experiments(view_type=ViewType.ALL):
        token: str | None = None
        while True:
            page = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=500,
                                      page_token=token)  # fmt: skip
            for run in page:
                runs += 1
                items = [("params", k, v) for k, v in run.data.params.items()]
                items += [("tags", k, v) for k, v in run.data.tags.items()]
                for kind, key, value in items:
                    for _, detector in scan_text(f"{key}={value!r}", known):
                        report.findings.append(
                            Finding("mlflow", f"mlflow:run {run.info.run_id}/{kind}/{key}", detector)
                        )
            token = page.token
            if not token:
                break
    versions = 0
    for model in client.search_registered_models():
        for version in client.search_model_versions(f"name = '{model.name}'"):
            versions += 1
            for key, value in version.tags.items():
                for _, detector in scan_text(f"{key}={value!r}", known):
                    report.findings.append(
                        Finding("mlflow", f"mlflow:model {model.name}/{version.version}/tags/{key}", detector)
                    )
    report.scanned["mlflow_runs"] = runs
    report.scanned["mlflow_model_versions"] = versions


SOURCES = ("repository", "dags", "airflow_logs", "mlflow")


def scan(cfg: Config, sources: Iterable[str] = SOURCES) -> ScanReport:
    """Scan the given sources for the deployment's known secrets and for secret-shaped strings."""
    from lakehouse.orchestration.services import DAGS_DIR, airflow_home

    known = known_secrets(cfg)
    report = ScanReport(known_secrets=len(known))
    for source in sources:
        if source == "repository":
            scan_files(source, repository_files(), PROJECT_ROOT, known, report)
        elif source == "dags":
            scan_files(source, sorted(DAGS_DIR.rglob("*.py")), PROJECT_ROOT, known, report)
        elif source == "airflow_logs":
            logs = airflow_home(cfg) / "logs"
            scan_files(source, sorted(logs.rglob("*")) if logs.is_dir() else [], logs, known, report)
        elif source == "mlflow":
            scan_mlflow(cfg, known, report)
        else:
            raise ValueError(f"unknown source {source!r}: repository, dags, airflow_logs or mlflow")
    return report
