"""Replaying a flow for a date range or one event (DESIGN 5 "Replay").

After an operator changes a flow, a replay sends the same registrations through it again: the
archived changes in scope (those the flow watches, occurred in the range or belonging to the
event) are re-driven for that flow only with `kind="replay"` and a replay id, and the pipeline
evaluates them against the configuration of now. The replay id is part of the pipeline's
delivery key, so a replay sends on purpose what was already delivered once, and every outcome it
produces is stored with the replay id (marked replayed).

A dry run (`stream.control.replay_dry_run`) evaluates the same changes in this process with the
pure core and reports what would be sent (counts by decision and a sample of payloads) without
publishing anything. The scope and the changes in it: `stream.control.replay_scope`.

With `only_undelivered`, changes this flow already delivered are left out (dry run and replay
alike): a replay then completes what failed, was filtered out or never ran, and sends nothing
twice.

A replay runs as a task of the control service, publishing chunk by chunk and never more than
`MAX_PENDING` pairs ahead of their outcomes. Its scope, state and progress are saved in the
ledger (`stream.store.replays`) when it starts, after each chunk the broker acknowledged and when
it stops, so a replay outlives the control that ran it: a control that starts again resumes each
replay still publishing after the last change it saved as published (once recovery re-seeded the
delivered keys, so the chunk that may go out twice is skipped as duplicates), or, when the flow
can no longer be replayed, reports it `interrupted` with what it had published. A control that
stops leaves its running replays publishing in the ledger, for the next start to resume.

Its progress counts what it published and what became of it — delivered, failed, not sent,
pending (no final outcome yet) — and it is "done" only when every published pair has its final
outcome. Cancel stops what is not yet published, between two chunks; what was published stays
published. A replay's outcomes never replace a
delivered pair's state in the ledger (`stream.store.store._REPLAY_KEEPS_DELIVERED`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
from stream.control.replay_scope import (
    PAGE_SIZE,
    ReplayError,
    ReplayScope,
    flow_refusal,
    undelivered,
)
from stream.messages import Redrive
from stream.store import ChangeRow, Store
from stream.store.replays import ReplayRecord, load_replays, save_replay
from stream.store.store import IN_FLIGHT_STATUS

log = logging.getLogger("signal.control.replay")

CHUNK = 100
MAX_PENDING = 1000
"""Published pairs of one replay allowed to await their outcome before it publishes more."""
WAIT_S = 0.5

NOT_FINAL_STATUSES = (IN_FLIGHT_STATUS, "would_send", "parked")
"""Replay outcomes that are not its answer yet: in flight, a dry run's row, parked until
Marketo's daily quota resets."""
DELIVERED_STATUSES = ("delivered", "skipped_duplicate")
"""A duplicate noticed for a replay's own key proves this replay delivered the pair."""

_REPLAY_OUTCOMES = f"""
    SELECT status, count(*) FROM (
        SELECT status FROM outcome_log
        WHERE replay_id = ? AND flow_id = ? AND status NOT IN {NOT_FINAL_STATUSES}
        QUALIFY row_number() OVER (
            PARTITION BY change_id ORDER BY processed_at DESC, attempt DESC, outcome_id DESC) = 1
    ) GROUP BY status ORDER BY status
"""
"""The final outcome of each of the replay's pairs (the newest), counted by status."""


@dataclass
class Replay:
    """One replay: its scope and what its publishing task did. `publishing` is the task's
    state (publishing | published | cancelled | failed); the state reported to operators also
    counts the outcomes of what was published (see `ReplayManager.progress`)."""

    id: str
    scope: ReplayScope
    actor: str
    started_at: datetime
    only_undelivered: bool = False
    publishing: str = "publishing"
    scanned: int = 0
    in_scope: int = 0
    published: int = 0
    unreadable: int = 0
    skipped_delivered: int = 0
    waiting_for_outcomes: bool = False
    finished_at: datetime | None = None
    cancelled_by: str | None = None
    error: str | None = None
    after: tuple[datetime, str] | None = None
    """The (occurred_at, change_id) up to which the scope is published (None: from the start)."""
    resumes: int = 0
    """How many times a restarted control resumed it."""
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    cancel_requested: bool = False

    def record(self, now: datetime) -> ReplayRecord:
        """The ledger row of this replay as it is now."""
        return ReplayRecord(
            id=self.id,
            flow_id=self.scope.flow_id,
            occurred_from=self.scope.occurred_from,
            occurred_to=self.scope.occurred_to,
            event_code=self.scope.event_code,
            only_undelivered=self.only_undelivered,
            actor=self.actor,
            started_at=self.started_at,
            publishing=self.publishing,
            scanned=self.scanned,
            in_scope=self.in_scope,
            published=self.published,
            unreadable=self.unreadable,
            skipped_delivered=self.skipped_delivered,
            after_occurred_at=self.after[0] if self.after else None,
            after_change_id=self.after[1] if self.after else None,
            finished_at=self.finished_at,
            cancelled_by=self.cancelled_by,
            error=self.error,
            resumes=self.resumes,
            updated_at=now,
        )

    @classmethod
    def from_record(cls, row: ReplayRecord) -> Replay:
        after = None
        if row.after_occurred_at is not None and row.after_change_id is not None:
            after = (row.after_occurred_at, row.after_change_id)
        return cls(
            id=row.id,
            scope=ReplayScope(
                flow_id=row.flow_id,
                occurred_from=row.occurred_from,
                occurred_to=row.occurred_to,
                event_code=row.event_code,
            ),
            actor=row.actor,
            started_at=row.started_at,
            only_undelivered=row.only_undelivered,
            publishing=row.publishing,
            scanned=row.scanned,
            in_scope=row.in_scope,
            published=row.published,
            unreadable=row.unreadable,
            skipped_delivered=row.skipped_delivered,
            finished_at=row.finished_at,
            cancelled_by=row.cancelled_by,
            error=row.error,
            after=after,
            resumes=row.resumes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope.to_dict(),
            "flow_id": self.scope.flow_id,
            "only_undelivered": self.only_undelivered,
            "actor": self.actor,
            "publishing": self.publishing,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "scanned": self.scanned,
            "in_scope": self.in_scope,
            "published": self.published,
            "unreadable": self.unreadable,
            "skipped_delivered": self.skipped_delivered,
            "waiting_for_outcomes": self.waiting_for_outcomes,
            "cancelled_by": self.cancelled_by,
            "error": self.error,
            "resumes": self.resumes,
        }


@dataclass(frozen=True)
class OutcomeCounts:
    """The final outcomes recorded so far for a replay's published pairs."""

    by_status: dict[str, int]

    @property
    def delivered(self) -> int:
        return sum(self.by_status.get(s, 0) for s in DELIVERED_STATUSES)

    @property
    def failed(self) -> int:
        return self.by_status.get("failed", 0)

    @property
    def final(self) -> int:
        return sum(self.by_status.values())

    @property
    def not_sent(self) -> int:
        return self.final - self.delivered - self.failed


def replay_state(replay: Replay, pending: int) -> str:
    """publishing | awaiting_outcomes | done | cancelled | failed | interrupted: "done" only
    when everything in scope was published and every published pair has its final outcome;
    "interrupted" when a restarted control could not resume it."""
    if replay.publishing == "publishing":
        return "publishing"
    if replay.publishing == "published":
        return "awaiting_outcomes" if pending else "done"
    return replay.publishing


def summary_text(replay: Replay, counts: OutcomeCounts, pending: int) -> str:
    """One line an operator reads: what was published and what became of it."""
    state = replay_state(replay, pending)
    outcome = f"{counts.delivered:,} delivered, {counts.failed:,} failed"
    if counts.not_sent:
        outcome += f", {counts.not_sent:,} not sent"
    if pending:
        outcome += f", {pending:,} awaiting outcome"
    skipped = (
        f"; {replay.skipped_delivered:,} already delivered, skipped"
        if replay.skipped_delivered
        else ""
    )
    if state == "publishing":
        wait = (
            " (waiting for outcomes before publishing more)" if replay.waiting_for_outcomes else ""
        )
        head = f"publishing: {replay.published:,} published so far{wait}"
    elif state == "awaiting_outcomes":
        head = f"published {replay.published:,}, {pending:,} awaiting outcome"
    elif state == "done":
        head = f"done: published {replay.published:,}"
    elif state == "cancelled":
        who = f" by {replay.cancelled_by}" if replay.cancelled_by else ""
        head = (
            f"cancelled{who} after publishing {replay.published:,}; the rest of the scope was "
            "not published"
        )
    elif state == "interrupted":
        head = (
            f"interrupted by a control restart after publishing {replay.published:,}; the rest "
            f"of the scope was not published: {replay.error}"
        )
    else:
        head = f"failed after publishing {replay.published:,}: {replay.error}"
    return f"{head}{skipped} · {outcome}"


class ReplayManager:
    """Runs replays as tasks of the control service and answers for their progress.

    Publishing keeps at most `max_pending` of the replay's pairs without a final outcome: a
    long replay goes out as the pipeline answers, so a cancel still stops most of it (what is
    published cannot be called back).
    """

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
        max_pending: int = MAX_PENDING,
        wait_s: float = WAIT_S,
    ) -> None:
        self._store = store
        self._publish = publish
        self._config = config
        self._clock = clock
        self._page_size = page_size
        self._chunk = chunk
        self._pace_s = pace_s
        self._max_pending = max_pending
        self._wait_s = wait_s
        self._replays: dict[str, Replay] = {}

    async def start(
        self, scope: ReplayScope, actor: str, *, only_undelivered: bool = False
    ) -> Replay:
        flow = self._config.account.flow(scope.flow_id)
        if flow is None:
            raise ReplayError(f"no flow {scope.flow_id!r}", 404)
        refusal = flow_refusal(flow, scope, self._config)
        if refusal is not None:
            raise ReplayError(refusal)
        replay = Replay(
            id=f"rp-{uuid.uuid4().hex[:12]}",
            scope=scope,
            actor=actor,
            started_at=self._clock(),
            only_undelivered=only_undelivered,
        )
        await self._save(replay)  # before anything is published: a restart knows of it
        self._replays[replay.id] = replay
        await audit(
            self._store,
            actor=actor,
            object_kind=AUDIT_REPLAY,
            object_id=replay.id,
            action="start",
            change={**scope.to_dict(), "only_undelivered": only_undelivered},
            at=replay.started_at,
        )
        assert flow.source is not None
        replay.task = asyncio.create_task(
            self._run(replay, flow.source.value), name=f"replay-{replay.id}"
        )
        return replay

    async def resume(self, ready: Callable[[], Awaitable[object]] | None = None) -> list[Replay]:
        """At control's start: load the replays the ledger knows (so they are listed and
        answered for), and resume each one still publishing after the last change it saved as
        published, once `ready()` returned (recovery re-seeded the delivered keys, so what was
        published but not saved before the restart is skipped as duplicates, not sent twice).
        A replay whose flow can no longer be replayed is reported `interrupted` with what it
        had published. Returns the replays resumed."""
        resumed: list[Replay] = []
        for row in await load_replays(self._store):
            if row.id in self._replays:
                continue
            replay = Replay.from_record(row)
            self._replays[replay.id] = replay
            if replay.publishing != "publishing":
                continue
            flow = self._config.account.flow(replay.scope.flow_id)
            refusal = flow_refusal(flow, replay.scope, self._config)
            if refusal is not None or flow is None or flow.source is None:
                self._finish(replay, "interrupted", f"not resumed: {refusal}")
                await self._save(replay)
                await self._audit_restart(replay, "interrupted")
                log.warning(
                    "replay %s interrupted by a control restart after publishing %d: %s",
                    replay.id,
                    replay.published,
                    refusal,
                )
                continue
            replay.resumes += 1
            await self._save(replay)
            await self._audit_restart(replay, "resume")
            replay.task = asyncio.create_task(
                self._resume(replay, flow.source.value, ready), name=f"replay-{replay.id}"
            )
            resumed.append(replay)
        return resumed

    async def _resume(
        self, replay: Replay, change_type: str, ready: Callable[[], Awaitable[object]] | None
    ) -> None:
        try:
            if ready is not None:
                await ready()
        except asyncio.CancelledError:
            self._finish(replay, "cancelled")
            raise
        log.info(
            "resuming replay %s after a control restart (%d published before)",
            replay.id,
            replay.published,
        )
        await self._run(replay, change_type)

    async def _audit_restart(self, replay: Replay, action: str) -> None:
        await audit(
            self._store,
            actor=replay.actor,
            object_kind=AUDIT_REPLAY,
            object_id=replay.id,
            action=action,
            change={**replay.scope.to_dict(), "published": replay.published},
        )

    async def _save(self, replay: Replay) -> None:
        await save_replay(self._store, replay.record(self._clock()))

    def get(self, replay_id: str) -> Replay | None:
        return self._replays.get(replay_id)

    def all(self) -> list[Replay]:
        return sorted(self._replays.values(), key=lambda r: r.started_at, reverse=True)

    async def outcome_counts(self, replay: Replay) -> OutcomeCounts:
        rows = await self._store.read(
            lambda con: con.execute(_REPLAY_OUTCOMES, [replay.id, replay.scope.flow_id]).fetchall()
        )
        return OutcomeCounts({str(r[0]): int(r[1]) for r in rows})

    async def progress(self, replay_id: str) -> dict[str, Any] | None:
        """The replay's counters and what became of its published pairs: delivered, failed,
        not sent (not activated, filtered out…) and pending (published, no final outcome yet).
        `finished` is true once publishing stopped and no pair is pending."""
        replay = self._replays.get(replay_id)
        if replay is None:
            return None
        counts = await self.outcome_counts(replay)
        pending = max(0, replay.published - counts.final)
        return {
            **replay.to_dict(),
            "state": replay_state(replay, pending),
            "finished": replay.publishing != "publishing" and pending == 0,
            "delivered": counts.delivered,
            "failed": counts.failed,
            "not_sent": counts.not_sent,
            "pending": pending,
            "outcomes_seen": counts.final,
            "outcomes": counts.by_status,
            "summary": summary_text(replay, counts, pending),
        }

    async def cancel(self, replay_id: str, actor: str) -> Replay | None:
        """Stop publishing; None for an unknown id. Raises ReplayError (409) when there is
        nothing left to cancel: the replay published everything, or stopped already."""
        replay = self._replays.get(replay_id)
        if replay is None:
            return None
        if replay.publishing != "publishing":
            raise ReplayError(await self._nothing_to_cancel(replay), 409)
        replay.cancel_requested = True
        replay.cancelled_by = actor
        task = replay.task
        if task is not None and not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                async with asyncio.timeout(30.0):
                    await asyncio.shield(task)
        if replay.publishing == "publishing":  # the task did not stop in time: stop it hard
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._finish(replay, "cancelled")
        await self._save(replay)
        await audit(
            self._store,
            actor=actor,
            object_kind=AUDIT_REPLAY,
            object_id=replay.id,
            action="cancel",
            change={**replay.scope.to_dict(), "published": replay.published},
        )
        return replay

    async def _nothing_to_cancel(self, replay: Replay) -> str:
        if replay.publishing == "cancelled":
            return f"replay {replay.id} was cancelled already by {replay.cancelled_by}"
        if replay.publishing == "failed":
            return f"replay {replay.id} stopped already: {replay.error}"
        counts = await self.outcome_counts(replay)
        pending = max(0, replay.published - counts.final)
        waiting = f", {pending:,} still awaiting outcome" if pending else ""
        return (
            f"replay {replay.id} has nothing left to cancel: all {replay.published:,} changes "
            f"were published{waiting} (what is published cannot be called back)"
        )

    async def close(self) -> None:
        """Stop every running replay (control is shutting down). The ledger keeps them
        publishing, as saved after their last chunk: the next start resumes them."""
        for replay in self._replays.values():
            if replay.task is not None and not replay.task.done():
                replay.cancel_requested = True
                replay.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await replay.task
                if replay.publishing == "publishing":
                    self._finish(replay, "cancelled")

    def _finish(self, replay: Replay, state: str, error: str | None = None) -> None:
        replay.publishing = state
        replay.error = error
        replay.waiting_for_outcomes = False
        replay.finished_at = self._clock()

    async def _run(self, replay: Replay, change_type: str) -> None:
        """Publish the scope after `replay.after`, chunk by chunk, saving the progress after
        each chunk the broker acknowledged."""
        scope = replay.scope
        try:
            after = replay.after
            while True:
                page = await self._store.list_changes(
                    occurred_from=scope.occurred_from,
                    occurred_to=scope.occurred_to,
                    event_code=scope.event_code,
                    after=after,
                    limit=self._page_size,
                )
                typed = [(i, row) for i, row in enumerate(page) if row.type == change_type]
                counted = 0  # rows of the page in `scanned` already
                for start in range(0, len(typed), self._chunk):
                    await self._wait_for_room(replay)
                    if replay.cancel_requested:
                        await self._stop(replay, "cancelled")
                        return
                    part = typed[start : start + self._chunk]
                    await self._publish_chunk(replay, [row for _, row in part])
                    last = part[-1][0]
                    replay.scanned += last + 1 - counted
                    counted = last + 1
                    replay.after = (page[last].occurred_at, page[last].change_id)
                    await self._save(replay)
                    if self._pace_s:
                        await asyncio.sleep(self._pace_s)
                if page:
                    replay.scanned += len(page) - counted
                    after = replay.after = (page[-1].occurred_at, page[-1].change_id)
                if replay.cancel_requested:
                    await self._stop(replay, "cancelled")
                    return
                if len(page) < self._page_size:
                    break
            await self._stop(replay, "published")
            log.info("replay %s published %d changes", replay.id, replay.published)
        except asyncio.CancelledError:
            self._finish(replay, "cancelled")  # the caller saves it, or control is stopping
            raise
        except Exception as error:
            log.exception("replay %s failed", replay.id)
            self._finish(replay, "failed", f"{type(error).__name__}: {error}")
            try:
                await self._save(replay)
            except Exception:
                log.exception("replay %s: its failure could not be saved in the ledger", replay.id)

    async def _stop(self, replay: Replay, state: str) -> None:
        self._finish(replay, state)
        await self._save(replay)

    async def _wait_for_room(self, replay: Replay) -> None:
        """Hold the next chunk while `max_pending` published pairs await their outcome."""
        while not replay.cancel_requested:
            counts = await self.outcome_counts(replay)
            replay.waiting_for_outcomes = replay.published - counts.final >= self._max_pending
            if not replay.waiting_for_outcomes:
                return
            await asyncio.sleep(self._wait_s)
        replay.waiting_for_outcomes = False

    async def _publish_chunk(self, replay: Replay, rows: list[ChangeRow]) -> None:
        replay.in_scope += len(rows)
        if replay.only_undelivered:
            kept = await undelivered(self._store, replay.scope.flow_id, rows)
            replay.skipped_delivered += len(rows) - len(kept)
            rows = kept
        records: list[tuple[bytes, bytes]] = []
        for row in rows:
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
