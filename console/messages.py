"""What workers post back to the screens: one typed message per result, one for failure.

Workers never touch widgets; they return data in these messages and the screen renders it on the
main thread, so a slow or failing control never leaves a half-updated view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from apiclient.rows import (
    BreakerRow,
    ConnectionRow,
    FlowRow,
    FlowStats,
    RetryPage,
    SourceRow,
    SqlResult,
    SubmitResult,
    TargetField,
    TestResult,
)


@dataclass
class ApiFailed(Message, bubble=False):
    """A call failed; `what` says which ("load flows"), `error` is the operator's text."""

    what: str
    error: str


@dataclass
class FlowsLoaded(Message, bubble=False):
    flows: list[FlowRow]


@dataclass
class FlowStatsLoaded(Message, bubble=False):
    stats: dict[str, FlowStats]


@dataclass
class FlowChanged(Message, bubble=False):
    flow: FlowRow
    what: str


@dataclass
class FlowDetailLoaded(Message, bubble=False):
    flow: FlowRow
    account: dict[str, Any]


@dataclass
class FlowSaved(Message, bubble=False):
    flow: FlowRow


@dataclass
class FieldsRefreshed(Message, bubble=False):
    connection_id: str
    fields: list[TargetField]


@dataclass
class PreviewLoaded(Message, bubble=False):
    preview: dict[str, Any]


@dataclass
class ConnectionsLoaded(Message, bubble=False):
    connections: list[ConnectionRow]
    breakers: dict[str, BreakerRow] | None = None
    """Each connection's circuit breaker by id (`ApiClient.connection_breakers`); None when
    not known (control does not read the workers' heartbeats, or could not say)."""


@dataclass
class ConnectionSaved(Message, bubble=False):
    connection: ConnectionRow


@dataclass
class ConnectionDeleted(Message, bubble=False):
    connection_id: str


@dataclass
class ConnectionTested(Message, bubble=False):
    connection_id: str
    result: TestResult


@dataclass
class SourcesLoaded(Message, bubble=False):
    sources: list[SourceRow]


@dataclass
class SourceSaved(Message, bubble=False):
    source: SourceRow


@dataclass
class SourceTested(Message, bubble=False):
    source_id: str
    result: TestResult


@dataclass
class CatalogLoaded(Message, bubble=False):
    tags: dict[str, Any]
    events: list[dict[str, Any]]
    flows: list[FlowRow]


@dataclass
class QueuePageLoaded(Message, bubble=False):
    page: RetryPage


@dataclass
class Resubmitted(Message, bubble=False):
    result: SubmitResult


@dataclass
class RetryItemLoaded(Message, bubble=False):
    title: str
    detail: dict[str, Any]


@dataclass
class MetricsSnapshot(Message, bubble=False):
    mode: str
    period: str
    summary: dict[str, Any]
    troubleshooting: dict[str, Any]
    feed: list[dict[str, Any]] = field(default_factory=list)
    feed_status: str = "all"
    """The feed's status filter the snapshot was fetched with (a stale one is dropped)."""


@dataclass
class SqlFinished(Message, bubble=False):
    result: SqlResult
    statement: str


@dataclass
class ReplayFlowsLoaded(Message, bubble=False):
    flows: list[FlowRow]


@dataclass
class ReplayDryRun(Message, bubble=False):
    """A dry run's report, for the scope it was asked for (a real replay needs that scope)."""

    scope: dict[str, Any]
    report: dict[str, Any]


@dataclass
class ReplayProgress(Message, bubble=False):
    progress: dict[str, Any]
