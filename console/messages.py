"""What workers post back to the screens: one typed message per result, one for failure.

Workers never touch widgets; they return data in these messages and the screen renders it on the
main thread, so a slow or failing control never leaves a half-updated view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from console.client import (
    ConnectionRow,
    FlowRow,
    FlowStats,
    RetryPage,
    SqlResult,
    TargetField,
    TestResult,
)


@dataclass
class ApiFailed(Message):
    """A call failed; `what` says which ("load flows"), `error` is the operator's text."""

    what: str
    error: str
    unavailable: bool = False


@dataclass
class FlowsLoaded(Message):
    flows: list[FlowRow]


@dataclass
class FlowStatsLoaded(Message):
    stats: dict[str, FlowStats]


@dataclass
class FlowChanged(Message):
    flow: FlowRow
    what: str


@dataclass
class FlowDetailLoaded(Message):
    flow: FlowRow
    account: dict[str, Any]


@dataclass
class FlowSaved(Message):
    flow: FlowRow


@dataclass
class FieldsRefreshed(Message):
    connection_id: str
    fields: list[TargetField]


@dataclass
class PreviewLoaded(Message):
    preview: dict[str, Any]


@dataclass
class ConnectionsLoaded(Message):
    connections: list[ConnectionRow]


@dataclass
class ConnectionSaved(Message):
    connection: ConnectionRow


@dataclass
class ConnectionTested(Message):
    connection_id: str
    result: TestResult


@dataclass
class CatalogLoaded(Message):
    tags: dict[str, Any]
    events: list[dict[str, Any]]
    flows: list[FlowRow]


@dataclass
class QueuePageLoaded(Message):
    page: RetryPage


@dataclass
class Resubmitted(Message):
    count: int
    requested: int


@dataclass
class MetricsSnapshot(Message):
    mode: str
    period: str
    summary: dict[str, Any] | None
    troubleshooting: dict[str, Any] | None
    feed: list[dict[str, Any]] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)


@dataclass
class SqlFinished(Message):
    result: SqlResult
    statement: str


@dataclass
class HealthChecked(Message):
    health: dict[str, Any]
