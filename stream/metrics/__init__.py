"""Metrics of the control service: the dashboard's Summary, Troubleshooting and activity feed,
and Prometheus counters, all read from the DuckDB ledger (DESIGN 5 "Metrics")."""

from stream.metrics.definitions import Mode, ParameterError, Window, parse_mode, parse_window
from stream.metrics.queries import RuntimeStatus
from stream.metrics.views import install_metric_views

__all__ = [
    "Mode",
    "ParameterError",
    "RuntimeStatus",
    "Window",
    "install_metric_views",
    "parse_mode",
    "parse_window",
]
