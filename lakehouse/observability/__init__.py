"""Observability: Prometheus metrics (streaming listener, batch counters, exporter, Pushgateway),
the Prometheus and Pushgateway services of the local stack, Grafana dashboards, JSON-line logs and the
static report."""
