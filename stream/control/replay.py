"""Replaying a flow for a date range or one event (DESIGN 5 "Replay").

After an operator changes a flow, a replay sends the same registrations through it again: the
archived changes in scope (those the flow watches, occurred in the range or belonging to the
event) are re-driven for that flow only with `kind="replay"` and a replay id, and the pipeline
evaluates them against the configuration of now. The replay id is part of the pipeline's
delivery key, so a replay sends on purpose what was already delivered once, and every outcome it
produces is stored with the replay id (marked replayed).

A dry run evaluates the same changes in this process with the pure core and reports what would
be sent (counts by decision and a sample of payloads) without publishing anything.

A replay runs as a task of the control service, publishing page by page; it reports progress
(scanned, published, outcomes seen so far) and can be cancelled, which stops it between two
chunks: what was published stays published, nothing more goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.completeness import completeness
from config.models import Flow
from stream.control.preview import outcome_dict
from stream.control.redrive import (
    AUDIT_REPLAY,
    Clock,
    ConfigSource,
    Publish,
    audit,
    parse_archived,
    redrive_record,
    utc_now,
)
from stream.core.evaluate import evaluate
from stream.core.results import DataFailure, FilteredOut, Mapped, NotActivated
from stream.messages import Redrive
from stream.store import ChangeRow, Store
from stream.store.store import IN_FLIGHT_STATUS

log = logging.getLogger("signal.control.replay")

SAMPLE_SIZE = 10
PAGE_SIZE = 500
CHUNK = 100


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
    store: Store, scope: ReplayScope, change_type: str, page_size: int = PAGE_SIZE
) -> AsyncIterator[tuple[int, list[ChangeRow]]]:
    """(rows scanned, rows of `change_type`) per page of archived changes in scope."""
    after: tuple[datetime, str] | None = None
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


# --- dry run ------------------------------------------------------------------------------------


@dataclass
class DryRunReport:
    scope: ReplayScope
    scanned: int = 0
    in_scope: int = 0
    would_send: int = 0
    not_activated: int = 0
    filtered_out: int = 0
    data_failure: int = 0
    unreadable: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "scope": self.scope.to_dict(),
            "scanned": self.scanned,
            "in_scope": self.in_scope,
            "counts": {
                "would_send": self.would_send,
                "not_activated": self.not_activated,
                "filtered_out": self.filtered_out,
                "data_failure": self.data_failure,
                "unreadable": self.unreadable,
            },
            "reasons": [{"reason": r, "count": n} for r, n in self.reasons.most_common(20)],
            "sample": self.sample,
            "warnings": self.warnings,
        }


async def dry_run(
    store: Store, config: ConfigSource, scope: ReplayScope, *, sample_size: int = SAMPLE_SIZE
) -> DryRunReport:
    """What a replay would send, evaluated here with the current configuration and catalog."""
    account, catalog = config.account, config.catalog
    flow = account.flow(scope.flow_id)
    if flow is None:
        raise ReplayError(f"no flow {scope.flow_id!r}", 404)
    report = DryRunReport(scope)
    refusal = flow_refusal(flow, scope, config)
    if refusal is not None:
        report.warnings.append(f"{refusal}; a replay now would send nothing")
    if flow.source is None:
        return report
    async for scanned, rows in changes_in_scope(store, scope, flow.source.value):
        report.scanned += scanned
        for row in rows:
            report.in_scope += 1
            change = parse_archived(row)
            if isinstance(change, str):
                report.unreadable += 1
                report.reasons[change] += 1
                continue
            result = evaluate(change, flow, account, catalog)
            if isinstance(result, Mapped):
                report.would_send += 1
                if len(report.sample) < sample_size:
                    report.sample.append(
                        {
                            "change_id": change.change_id,
                            "registration_code": change.registration_code,
                            "event_code": change.event_code,
                            **outcome_dict(result),
                        }
                    )
                continue
            if isinstance(result, NotActivated):
                report.not_activated += 1
            elif isinstance(result, FilteredOut):
                report.filtered_out += 1
            elif isinstance(result, DataFailure):
                report.data_failure += 1
            report.reasons[f"{result.status}: {result.reason}"] += 1
    return report


# --- real replays -------------------------------------------------------------------------------


@dataclass
class Replay:
    id: str
    scope: ReplayScope
    actor: str
    started_at: datetime
    state: str = "running"  # running | done | cancelled | failed
    scanned: int = 0
    in_scope: int = 0
    published: int = 0
    unreadable: int = 0
    finished_at: datetime | None = None
    cancelled_by: str | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    cancel_requested: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope.to_dict(),
            "flow_id": self.scope.flow_id,
            "actor": self.actor,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "scanned": self.scanned,
            "in_scope": self.in_scope,
            "published": self.published,
            "unreadable": self.unreadable,
            "cancelled_by": self.cancelled_by,
            "error": self.error,
        }


class ReplayManager:
    """Runs replays as tasks of the control service and answers for their progress."""

    def __init__(
        self,
        store: Store,
        publish: Publish,
        config: ConfigSource,
        clock: Clock = utc_now,
        *,
        page_size: int = PAGE_SIZE,
        chunk: int = CHUNK,
        pace_s: float = 0.0,
    ) -> None:
        self._store = store
        self._publish = publish
        self._config = config
        self._clock = clock
        self._page_size = page_size
        self._chunk = chunk
        self._pace_s = pace_s
        self._replays: dict[str, Replay] = {}

    async def start(self, scope: ReplayScope, actor: str) -> Replay:
        flow = self._config.account.flow(scope.flow_id)
        if flow is None:
            raise ReplayError(f"no flow {scope.flow_id!r}", 404)
        refusal = flow_refusal(flow, scope, self._config)
        if refusal is not None:
            raise ReplayError(refusal)
        replay = Replay(
            id=f"rp-{uuid.uuid4().hex[:12]}", scope=scope, actor=actor, started_at=self._clock()
        )
        self._replays[replay.id] = replay
        await audit(
            self._store,
            actor=actor,
            object_kind=AUDIT_REPLAY,
            object_id=replay.id,
            action="start",
            change=scope.to_dict(),
            at=replay.started_at,
        )
        assert flow.source is not None
        replay.task = asyncio.create_task(
            self._run(replay, flow.source.value), name=f"replay-{replay.id}"
        )
        return replay

    def get(self, replay_id: str) -> Replay | None:
        return self._replays.get(replay_id)

    def all(self) -> list[Replay]:
        return sorted(self._replays.values(), key=lambda r: r.started_at, reverse=True)

    async def progress(self, replay_id: str) -> dict[str, Any] | None:
        """The replay's counters plus the outcomes recorded for it so far, by status; queued
        rows (deliveries routed to Marketo, answered by a later row) are counted apart."""
        replay = self._replays.get(replay_id)
        if replay is None:
            return None
        sql = (
            "SELECT status, count(*) FROM outcome_log WHERE replay_id = ? GROUP BY status "
            "ORDER BY status"
        )
        rows = await self._store.read(lambda con: con.execute(sql, [replay_id]).fetchall())
        by_status = {str(r[0]): int(r[1]) for r in rows}
        in_flight = by_status.pop(IN_FLIGHT_STATUS, 0)
        return {
            **replay.to_dict(),
            "outcomes_seen": sum(by_status.values()),
            "outcomes": by_status,
            "in_flight_rows": in_flight,
        }

    async def cancel(self, replay_id: str, actor: str) -> Replay | None:
        replay = self._replays.get(replay_id)
        if replay is None:
            return None
        if replay.state != "running":
            return replay
        replay.cancel_requested = True
        replay.cancelled_by = actor
        task = replay.task
        if task is not None and not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout=30.0)
        if replay.state == "running":  # the task did not stop in time: stop it hard
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._finish(replay, "cancelled")
        await audit(
            self._store,
            actor=actor,
            object_kind=AUDIT_REPLAY,
            object_id=replay.id,
            action="cancel",
            change={**replay.scope.to_dict(), "published": replay.published},
        )
        return replay

    async def close(self) -> None:
        """Stop every running replay (control is shutting down)."""
        for replay in self._replays.values():
            if replay.task is not None and not replay.task.done():
                replay.cancel_requested = True
                replay.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await replay.task
                if replay.state == "running":
                    self._finish(replay, "cancelled")

    def _finish(self, replay: Replay, state: str, error: str | None = None) -> None:
        replay.state = state
        replay.error = error
        replay.finished_at = self._clock()

    async def _run(self, replay: Replay, change_type: str) -> None:
        scope = replay.scope
        try:
            async for scanned, rows in changes_in_scope(
                self._store, scope, change_type, self._page_size
            ):
                replay.scanned += scanned
                for start in range(0, len(rows), self._chunk):
                    if replay.cancel_requested:
                        self._finish(replay, "cancelled")
                        return
                    await self._publish_chunk(replay, rows[start : start + self._chunk])
                    if self._pace_s:
                        await asyncio.sleep(self._pace_s)
                if replay.cancel_requested:
                    self._finish(replay, "cancelled")
                    return
            self._finish(replay, "done")
            log.info("replay %s done: %d published", replay.id, replay.published)
        except asyncio.CancelledError:
            self._finish(replay, "cancelled")
            raise
        except Exception as error:
            log.exception("replay %s failed", replay.id)
            self._finish(replay, "failed", f"{type(error).__name__}: {error}")

    async def _publish_chunk(self, replay: Replay, rows: list[ChangeRow]) -> None:
        records: list[tuple[bytes, bytes]] = []
        for row in rows:
            replay.in_scope += 1
            if isinstance(parse_archived(row), str):
                replay.unreadable += 1
                continue
            redrive = Redrive(
                flow_id=replay.scope.flow_id,
                attempt=1,
                kind="replay",
                replay_id=replay.id,
                actor=replay.actor,
            )
            records.append(redrive_record(row, redrive))
        if records:
            await self._publish(records)
            replay.published += len(records)
