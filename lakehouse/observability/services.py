"""Prometheus, the Pushgateway and the lakehouse exporter as services of `lakehouse stack`, and the
Prometheus configuration generated from the profile (``conf/*.yaml``).

Locally the Debian packages' binaries run as plain processes on loopback; in the cluster profile the
same three are containers (docker-compose.yml) and only probed. ``conf/prometheus/prometheus.yml`` is
the configuration generated for the cluster profile (a test keeps it equal to :func:`prometheus_config`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lakehouse.config import CONF_DIR, PROJECT_ROOT, Config
from lakehouse.errors import StackError
from lakehouse.observability.exporter import host_port
from lakehouse.stack import probes
from lakehouse.stack.services import Service

RULES_DIR = CONF_DIR / "prometheus" / "rules"
CLUSTER_RULES_DIR = "/etc/prometheus/rules"  # where docker-compose.yml mounts conf/prometheus/rules
APT_FIX = "run `make setup` (installs the Debian packages prometheus and prometheus-pushgateway)"


def _target(endpoint: str) -> str:
    host, port = host_port(endpoint)
    return f"{host}:{port}"


def prometheus_config(cfg: Config, rules_dir: str | Path = RULES_DIR) -> dict[str, Any]:
    """Prometheus's configuration for the profile: itself, the Pushgateway, the lakehouse exporter and each
    region's pipeline, every ``scrape_interval_s``; alerting rules from ``rules_dir``."""
    obs = cfg.observability
    interval = f"{obs.scrape_interval_s:g}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "external_labels": {"profile": cfg.profile}},
        "rule_files": [f"{rules_dir}/*.yml"],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [_target(obs.prometheus_url)]}]},
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [_target(obs.pushgateway_url)]}]},
            {"job_name": "lakehouse-exporter", "scrape_timeout": interval,
             "static_configs": [{"targets": [_target(obs.exporter_url)]}]},
            {"job_name": "pipeline", "static_configs": [
                {"targets": [_target(endpoint)], "labels": {"region": region}}
                for region, endpoint in obs.pipeline_metrics.items()
            ]},
        ],
    }  # fmt: skip


def render_prometheus_config(cfg: Config, rules_dir: str | Path = RULES_DIR) -> str:
    """:func:`prometheus_config` as the YAML file Prometheus reads."""
    source = f"conf/{cfg.source.name}" if cfg.source.parent == CONF_DIR else str(cfg.source)
    header = f"# Generated from {source} by `lakehouse metrics scrape-config`; do not edit.\n"
    return header + yaml.safe_dump(prometheus_config(cfg, rules_dir), sort_keys=False)


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if found is None:
        raise StackError(f"`{name}` was not found on PATH", fix=APT_FIX)
    return found


def _http_ok(url: str, timeout_s: float) -> probes.Probe:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            body = resp.read(4096).decode(errors="replace").strip()
            return probes.Probe(resp.status == 200, body.splitlines()[0][:80] if body else f"HTTP {resp.status}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return probes.Probe(False, f"{url} does not answer ({type(exc).__name__})")


@dataclass(frozen=True)
class PrometheusServer(Service):
    """Prometheus (Debian package): scrapes the profile's targets, evaluates conf/prometheus/rules."""

    @property
    def config_file(self) -> Path:
        return self.home / "prometheus.yml"

    def prepare(self, cfg: Config, java: Path) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(render_prometheus_config(cfg))
        check = subprocess.run(
            [_binary("promtool"), "check", "config", str(self.config_file)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if check.returncode != 0:
            raise StackError(
                f"promtool rejects {self.config_file}: {(check.stderr or check.stdout).strip()[-600:]}",
                fix=f"fix the rule files in {RULES_DIR} (promtool check rules)",
            )

    def command(self, cfg: Config, java: Path) -> list[str]:
        return [
            _binary("prometheus"), f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--storage.tsdb.retention.time={cfg.observability.retention}",
            f"--web.listen-address={self.host}:{self.port}", "--web.enable-lifecycle", "--log.format=json",
        ]  # fmt: skip

    def env(self, cfg: Config, java: Path) -> dict[str, str]:
        return dict(os.environ)

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        return _http_ok(f"{cfg.observability.prometheus_url.rstrip('/')}/-/ready", timeout_s)


@dataclass(frozen=True)
class Pushgateway(Service):
    """The Prometheus Pushgateway (Debian package): batch jobs push their metrics here."""

    def prepare(self, cfg: Config, java: Path) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self, cfg: Config, java: Path) -> list[str]:
        return [
            _binary("prometheus-pushgateway"), f"--web.listen-address={self.host}:{self.port}",
            f"--persistence.file={self.home / 'metrics.db'}", "--persistence.interval=30s",
        ]  # fmt: skip

    def env(self, cfg: Config, java: Path) -> dict[str, str]:
        return dict(os.environ)

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        return _http_ok(f"{cfg.observability.pushgateway_url.rstrip('/')}/-/ready", timeout_s)


@dataclass(frozen=True)
class ExporterService(Service):
    """The lakehouse exporter (`lakehouse metrics exporter`): table versions, replication lag, Kafka offsets."""

    def prepare(self, cfg: Config, java: Path) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self, cfg: Config, java: Path) -> list[str]:
        return [sys.executable, "-m", "lakehouse", "metrics", "exporter", "--home", str(self.home)]

    def env(self, cfg: Config, java: Path) -> dict[str, str]:
        env = dict(os.environ)  # this checkout's package first, whatever the venv has installed
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def probe(self, cfg: Config, timeout_s: float = 5.0) -> probes.Probe:
        got = _http_ok(f"{cfg.observability.exporter_url.rstrip('/')}/metrics", max(timeout_s, 10.0))
        return probes.Probe(got.ok, "metrics served" if got.ok else got.detail)


def observability_services(cfg: Config) -> list[Service]:
    """The Pushgateway, the lakehouse exporter and Prometheus (started last, once its targets exist)."""
    obs, home = cfg.observability, cfg.state_dir / "services"
    managed = obs.embedded
    out: list[Service] = []
    for cls, name, url in (
        (Pushgateway, "pushgateway", obs.pushgateway_url),
        (ExporterService, "lakehouse-exporter", obs.exporter_url),
        (PrometheusServer, "prometheus", obs.prometheus_url),
    ):
        port = host_port(url)[1]
        out.append(cls(name=name, kind=name, region=None, port=port, ports=(port,) if managed else (),
                       managed=managed, home=home / name))  # fmt: skip
    return out
