"""Metrics."""

from __future__ import annotations

from console.screens.base import BaseScreen


class MetricsScreen(BaseScreen):
    SCOPE = "metrics"
    TITLE_TEXT = "Metrics"
