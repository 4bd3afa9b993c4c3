"""What a replay covers: its scope (one flow, a date range or one event), whether the flow can be
replayed at all, and the archived changes in scope, page by page.

Apart from the replay service (`stream.control.replay`) because the dry run
(`stream.control.replay_dry_run`) and the real replay read the same scope the same way, and a
scope is checked when the request arrives, before either runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from config.completeness import completeness
from config.models import Flow
from stream.control.redrive import ConfigSource
from stream.store import ChangeRow, Store

__all__ = [
    "PAGE_SIZE",
    "ReplayError",
    "ReplayScope",
    "changes_in_scope",
    "flow_refusal",
    "undelivered",
]

PAGE_SIZE = 500


class ReplayError(Exception):
    """A replay request that cannot be carried out; `status` is the HTTP answer it maps to."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ReplayScope:
    flow_id: str
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    event_code: str | None = None

    def __post_init__(self) -> None:
        if not self.flow_id:
            raise ReplayError("flow_id is required")
        ranged = self.occurred_from is not None or self.occurred_to is not None
        if ranged == (self.event_code is not None):
            raise ReplayError("give either a date range (from, to) or one event_code")
        if ranged:
            if self.occurred_from is None or self.occurred_to is None:
                raise ReplayError("a date range needs both from and to")
            for value in (self.occurred_from, self.occurred_to):
                if value.tzinfo is None:
                    raise ReplayError("from and to need a time zone (e.g. 2026-11-28T00:00:00Z)")
            if self.occurred_from >= self.occurred_to:
                raise ReplayError("from must be before to")

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow_id": self.flow_id,
            "from": self.occurred_from.isoformat() if self.occurred_from else None,
            "to": self.occurred_to.isoformat() if self.occurred_to else None,
            "event_code": self.event_code,
        }


def flow_refusal(flow: Flow | None, scope: ReplayScope, config: ConfigSource) -> str | None:
    """Why a real replay of this flow would send nothing (the pipeline refuses such redrives)."""
    if flow is None:
        return f"no flow {scope.flow_id!r}"
    if not flow.active:
        return f"flow {flow.id!r} is inactive; activate it to replay"
    missing = completeness(flow, config.account)
    if missing:
        return f"flow {flow.id!r} is incomplete: {'; '.join(missing)}"
    if flow.source is None:
        return f"flow {flow.id!r} has no source"
    return None


async def changes_in_scope(
    store: Store,
    scope: ReplayScope,
    change_type: str,
    page_size: int = PAGE_SIZE,
    after: tuple[datetime, str] | None = None,
) -> AsyncIterator[tuple[int, list[ChangeRow]]]:
    """(rows scanned, rows of `change_type`) per page of archived changes in scope, from the
    start or after the (occurred_at, change_id) `after`."""
    while True:
        page = await store.list_changes(
            occurred_from=scope.occurred_from,
            occurred_to=scope.occurred_to,
            event_code=scope.event_code,
            after=after,
            limit=page_size,
        )
        if not page:
            return
        after = (page[-1].occurred_at, page[-1].change_id)
        yield len(page), [row for row in page if row.type == change_type]
        if len(page) < page_size:
            return


async def undelivered(store: Store, flow_id: str, rows: list[ChangeRow]) -> list[ChangeRow]:
    """The rows whose change `flow_id` has not delivered (`only_undelivered`)."""
    delivered = await store.seen_many((r.change_id, flow_id) for r in rows)
    return [r for r in rows if (r.change_id, flow_id) not in delivered]
