"""`lakehouse report --out DIR`: a static snapshot of the metrics for people who do not run Grafana.

Range queries against the real Prometheus, drawn with matplotlib into PNGs (throughput, lag, alert
counts, model metrics over time), and one self-contained HTML page that shows them with the latest values
and the alerts firing now. A plot whose metrics have no data in the range says so on the plot itself.
"""

from __future__ import annotations

import html
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.config import Config
from lakehouse.errors import ServiceUnavailable


@dataclass(frozen=True)
class Plot:
    """One PNG: a title, its PromQL series (query, legend label template) and the unit of its y axis."""

    file: str
    title: str
    queries: tuple[tuple[str, str], ...]
    unit: str
    note: str = ""


PLOTS: tuple[Plot, ...] = (
    Plot("throughput.png", "Streaming throughput (rows/s, last batch)", (
        ("sum by (region, query) (lakehouse_stream_processed_rows_per_second)", "{region} {query} processed"),
    ), "rows/s"),
    Plot("kafka_lag.png", "Records behind the latest Kafka offsets", (
        ("max by (region, query) (lakehouse_stream_offsets_behind_latest)", "{region} {query}"),
    ), "records"),
    Plot("replication_lag.png", "DR replication lag (primary -> secondary)", (
        ("max by (target) (lakehouse_replication_lag_seconds)", "worst table -> {target}"),
    ), "seconds"),
    Plot("alerts.png", "NEWS2 alert episodes opened (cumulative) and Prometheus alerts firing", (
        ("sum by (region, level) (lakehouse_news2_alerts_total{status=\"opened\"})", "NEWS2 {level} ({region})"),
        ("count by (alertname) (ALERTS{alertstate=\"firing\"})", "firing: {alertname}"),
    ), "count"),
    Plot("quarantine.png", "Quarantined records by reason (cumulative)", (
        ("sum by (reason) (lakehouse_quarantine_records_total)", "{reason}"),
    ), "records"),
    Plot("models.png", "Model metrics: AUROC of the last evaluation, drift index", (
        ("lakehouse_model_auroc", "AUROC {model} v{version}"),
        ("max by (model) (lakehouse_model_drift_index)", "max drift {model}"),
    ), "value", note="Set by the ML evaluation and drift jobs (lakehouse.observability.metrics)."),
)  # fmt: skip

LATEST: tuple[tuple[str, str], ...] = (
    ("scrape targets up", "sum(up)"),
    ("scrape targets", "count(up)"),
    ("lakehouse series", 'count({__name__=~"lakehouse_.+"})'),
    ("messages classified by silver", "sum(lakehouse_silver_messages_total)"),
    ("records quarantined", "sum(lakehouse_quarantine_records_total)"),
    ("NEWS2 alerts opened", 'sum(lakehouse_news2_alerts_total{status="opened"})'),
    ("worst replication lag (s)", "max(lakehouse_replication_lag_seconds)"),
)


def _get(cfg: Config, path: str, params: dict[str, str]) -> Any:
    url = f"{cfg.observability.prometheus_url.rstrip('/')}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.loads(resp.read().decode())
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailable(
            f"Prometheus at {cfg.observability.prometheus_url} does not answer ({type(exc).__name__})",
            fix="run `lakehouse stack up` (or point observability.prometheus_url at a running Prometheus)",
        ) from None
    if body.get("status") != "success":
        raise ServiceUnavailable(f"Prometheus rejected {params}: {body.get('error')}")
    return body["data"]["result"]


def query(cfg: Config, expr: str) -> list[dict[str, Any]]:
    """Instant query: the result vector (each item has ``metric`` and ``value``)."""
    return list(_get(cfg, "query", {"query": expr}))


def query_range(cfg: Config, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """Range query: the result matrix (each item has ``metric`` and ``values``)."""
    return list(_get(cfg, "query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                          "step": f"{step:g}"}))  # fmt: skip


def _label(template: str, metric: dict[str, str]) -> str:
    out = template
    for key, value in metric.items():
        out = out.replace("{" + key + "}", value)
    return out


def draw(cfg: Config, plot: Plot, out: Path, start: float, end: float, step: float) -> int:
    """Draw one plot into ``out/plot.file``; returns how many series it has."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import UTC, datetime

    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    series = 0
    for expr, legend in plot.queries:
        for item in query_range(cfg, expr, start, end, step):
            xs = [float(mdates.date2num(datetime.fromtimestamp(float(t), UTC))) for t, _ in item["values"]]
            ys = [float(v) for _, v in item["values"]]
            ax.plot(xs, ys, label=_label(legend, item["metric"]), linewidth=1.5, marker="." if len(xs) < 30 else "")
            series += 1
    ax.set_title(plot.title, fontsize=11)
    ax.set_ylabel(plot.unit)
    ax.set_xlim(
        float(mdates.date2num(datetime.fromtimestamp(start, UTC))),
        float(mdates.date2num(datetime.fromtimestamp(end, UTC))),
    )
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    else:
        ax.text(0.5, 0.5, "no data in this range" + (f"\n{plot.note}" if plot.note else ""), ha="center",
                va="center", transform=ax.transAxes, color="#666")  # fmt: skip
    fig.tight_layout()
    fig.savefig(out / plot.file)
    plt.close(fig)
    return series


def _alert_line(metric: dict[str, str]) -> str:
    labels = ", ".join(
        f"{k}={v}" for k, v in sorted(metric.items()) if k not in ("__name__", "alertname", "alertstate")
    )
    return f"{metric.get('alertname', '?')}: {labels}"


def render(cfg: Config, out: Path, minutes: float = 60.0) -> Path:
    """Write the PNGs and ``index.html`` into ``out``; returns the page."""
    out.mkdir(parents=True, exist_ok=True)
    end = time.time()
    start = end - minutes * 60
    step = max(cfg.observability.scrape_interval_s, minutes * 60 / 400)
    drawn = [(plot, draw(cfg, plot, out, start, end, step)) for plot in PLOTS]
    latest = []
    for label, expr in LATEST:
        result = query(cfg, expr)
        latest.append((label, f"{float(result[0]['value'][1]):g}" if result else "no data"))
    firing = query(cfg, 'ALERTS{alertstate="firing"}')
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(end))
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in latest)
    alerts = "".join(f"<li>{html.escape(_alert_line(a['metric']))}</li>" for a in firing) or "<li>none</li>"
    figures = "".join(
        f'<figure><img src="{p.file}" alt="{html.escape(p.title)}" width="900" height="360">'
        f"<figcaption>{html.escape(p.title)} — {n} series</figcaption></figure>"
        for p, n in drawn
    )
    page = out / "index.html"
    page.write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lakehouse metrics report</title>
<link rel="icon" href="data:,">
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 10px;text-align:left}}figure{{margin:1.5em 0}}</style></head>
<body><h1>Lakehouse metrics report</h1>
<p>Profile <b>{html.escape(cfg.profile)}</b>, Prometheus {html.escape(cfg.observability.prometheus_url)};
the last {minutes:g} minutes up to {stamp}.</p>
<h2>Now</h2><table>{rows}</table>
<h2>Alerts firing</h2><ul>{alerts}</ul>
<h2>Over time</h2>{figures}
</body></html>
""",
        encoding="utf-8",
    )
    return page
