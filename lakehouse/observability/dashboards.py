"""Grafana dashboards as JSON in ``conf/grafana/dashboards/``: load, check Grafana's structure, list every
panel's PromQL, publish to a running Grafana through grafana-client."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.config import CONF_DIR
from lakehouse.errors import LakehouseError

DASHBOARD_DIR = CONF_DIR / "grafana" / "dashboards"
DATASOURCE_FILE = CONF_DIR / "grafana" / "datasources" / "prometheus.yaml"
DATASOURCE_UID = "prometheus"
FOLDER = "Lakehouse"


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL target of one panel."""

    dashboard: str  # uid
    panel_id: int
    title: str
    expr: str


def load_all(folder: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    """Every dashboard JSON of ``folder``, keyed by file stem."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def structure_problems(dashboard: dict[str, Any]) -> list[str]:
    """What keeps ``dashboard`` from being a valid, provisionable Grafana dashboard ([] when none)."""
    problems: list[str] = []
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        problems.append(f"uid {uid!r} must be 1-40 of [A-Za-z0-9_-]")
    for key in ("title", "panels", "schemaVersion"):
        if key not in dashboard:
            problems.append(f"missing {key}")
    if dashboard.get("id") is not None:
        problems.append("id must be absent or null (Grafana assigns it)")
    ids: list[Any] = []
    for panel in dashboard.get("panels", []):
        where = f"panel {panel.get('id')!r} ({panel.get('title')!r})"
        ids.append(panel.get("id"))
        if not isinstance(panel.get("id"), int) or panel["id"] < 1:
            problems.append(f"{where}: id must be a positive integer")
        for key in ("type", "title", "gridPos", "targets"):
            if not panel.get(key):
                problems.append(f"{where}: missing {key}")
        grid = panel.get("gridPos", {})
        if (
            not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y"))
            or grid.get("x", 0) + grid.get("w", 0) > 24
        ):
            problems.append(f"{where}: gridPos needs integer h, w, x, y within 24 columns")
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("uid") != DATASOURCE_UID or ds.get("type") != "prometheus":
                problems.append(f"{where}: datasource must be {{type: prometheus, uid: {DATASOURCE_UID}}}, got {ds}")
            if not str(target.get("expr", "")).strip() or not target.get("refId"):
                problems.append(f"{where}: every target needs refId and expr")
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids are not unique: {ids}")
    return problems


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    """Every PromQL target of the dashboard."""
    return [
        PanelQuery(dashboard["uid"], int(p["id"]), str(p["title"]), str(t["expr"]))
        for p in dashboard.get("panels", [])
        for t in p.get("targets", [])
    ]


def substitute(expr: str, region: str, rate_interval: str = "1m") -> str:
    """``expr`` with the dashboard variables Grafana would fill in (``$region``, ``$__rate_interval``)."""
    return expr.replace("$__rate_interval", rate_interval).replace("$region", region)


def _credential(token: str | None) -> str | tuple[str, str] | None:
    if token or os.environ.get("GRAFANA_TOKEN"):
        return token or os.environ["GRAFANA_TOKEN"]
    if os.environ.get("GRAFANA_USER") and os.environ.get("GRAFANA_PASSWORD"):
        return (os.environ["GRAFANA_USER"], os.environ["GRAFANA_PASSWORD"])
    return None


def publish(url: str, dashboards: dict[str, dict[str, Any]], token: str | None = None) -> list[tuple[str, str]]:
    """Create or overwrite every dashboard in the Grafana at ``url`` (folder ``Lakehouse``); (uid, URL) each."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

    bad = {name: p for name, d in dashboards.items() if (p := structure_problems(d))}
    if bad:
        raise LakehouseError(f"dashboards fail Grafana's structure check: {bad}", fix="fix conf/grafana/dashboards")
    api = GrafanaApi.from_url(url, credential=_credential(token), timeout=10.0)
    fix_auth = "pass --token, or set GRAFANA_TOKEN (or GRAFANA_USER and GRAFANA_PASSWORD) to an editor's credentials"
    try:
        api.health.check()
    except GrafanaUnauthorizedError:  # Grafana answered, and refused the credentials
        raise LakehouseError(f"Grafana at {url} refused the credentials", fix=fix_auth) from None
    except GrafanaException as exc:
        raise LakehouseError(f"{url} did not answer as Grafana ({exc})", fix="give --url a running Grafana") from None
    except Exception as exc:  # noqa: BLE001 - connection refused, DNS, TLS: all mean "no Grafana there"
        raise LakehouseError(
            f"Grafana at {url} does not answer ({type(exc).__name__}: {str(exc)[:160]})",
            fix="start Grafana (docker compose up grafana) or correct --url",
        ) from None
    published: list[tuple[str, str]] = []
    try:
        folder_uid = _folder(api)
        for dashboard in dashboards.values():
            body = {"dashboard": {**dashboard, "id": None}, "overwrite": True, "folderUid": folder_uid,
                    "message": "lakehouse dashboards publish"}  # fmt: skip
            answer = api.dashboard.update_dashboard(body)
            published.append((dashboard["uid"], url.rstrip("/") + str(answer.get("url", ""))))
    except GrafanaUnauthorizedError:
        raise LakehouseError(f"Grafana at {url} refused the credentials", fix=fix_auth) from None
    except GrafanaClientError as exc:
        raise LakehouseError(f"Grafana at {url} rejected a dashboard: {exc}", fix=fix_auth) from None
    return published


def _folder(api: Any) -> str:
    for folder in api.folder.get_all_folders():
        if folder.get("title") == FOLDER:
            return str(folder["uid"])
    return str(api.folder.create_folder(FOLDER, uid="lakehouse")["uid"])
