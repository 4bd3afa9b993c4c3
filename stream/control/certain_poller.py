"""The Certain source at control: one polling loop per active source of the account.

Certain has no public webhook API (reference/certain-data.md §3), so control polls each
configured account: the account's events (`Event/{acct}`, the detail of an event whose
`dateModified` moved, for its setup), then per watched event the registrations modified after
the event's watermark minus `OVERLAP`, oldest first, page by page, and then its session
registrations likewise (`stream.control.certain_sessions`). Each record is compared with
its last-seen state (`stream.certain.poll_diff`); each page's changes take the path every
ingested change takes (`stream.control.archive.archive_valid`, source `poll`): archived in the
ledger's outbox *together with* the records' new last-seen state and the moved watermark
(`stream.store.certain_state.commit_poll`), then published to `certain-changes`, whence the
pipeline routes them. A crash between the two leaves them in the ledger, unpublished, for
recovery to publish; a crash before the commit leaves the watermark where it was, so the page is
read again and yields the same change ids.

Why the overlap: Certain stamps `dateModified` to the second and a record may become visible a
little after its stamp (a transaction still open, a clock running behind Signal's when the
source starts from "now"), so each poll re-reads `OVERLAP` before its watermark; the last-seen
state makes the re-read emit nothing.

Faults: a 5xx, 429, timeout or refusal backs the source off, with jitter, doubling up to
`MAX_BACKOFF_S`; a 401/403 stops it (`stopped: unauthorized`) without calling Certain again
until its configuration changes (a new password, say); a malformed record is kept in
`rejected_changes` with its reason, once, while the rest of the page goes on. Every call waits
for the source's request budget.

Configuration changes take effect without a restart: `CertainSources` compares the account's
sources with the running loops every `RECONCILE_S` and starts, restarts (any field changed,
the password included) or stops loops accordingly. State is kept when a source is deactivated
or removed by an import, so bringing it back resumes from its watermark; a source deleted
through the API (`DELETE /api/v1/sources/{id}`) loses it, and its loop, cancelled mid-poll at
the next reconcile, leaves nothing behind (an uncommitted page is dropped; state a page
committed after the delete is forgotten once the loop has stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from config.models import CertainSource, EventsByTag
from stream.certain.client import (
    PAGE_SIZE,
    CertainClient,
    CertainError,
    CertainUnauthorized,
    RequestBudget,
    whole_list,
)
from stream.certain.events import ChangeEvent
from stream.certain.paging import KeysetPager, fresh_pages, log_shifts, moved_watermark
from stream.certain.parsing import oversize_reason
from stream.certain.poll_diff import (
    LastSeen,
    RecordDiff,
    RecordRejection,
    diff_event,
    diff_registration,
    event_tag_names,
    parse_timestamp,
)
from stream.control.archive import Received, archive_valid, change_record
from stream.control.certain_sessions import SessionPage, SessionRegistrations
from stream.control.config_service import ConfigService
from stream.metrics.certain_sources import (
    BACKING_OFF,
    INACTIVE,
    POLLING,
    STARTING,
    STOPPED_NO_PASSWORD,
    STOPPED_UNAUTHORIZED,
    CertainSourceStatus,
)
from stream.store import ChangeRow, RejectedRow, Store
from stream.store.certain_state import (
    EVENT_LIST,
    PollCommit,
    SeenRow,
    SourceKey,
    Stream,
    commit_poll,
    forget_source,
    load_last_seen,
    load_watermarks,
)
from stream.store.store import AcceptedChanges

log = logging.getLogger("signal.control.certain")

OVERLAP = timedelta(minutes=5)
"""How far before its watermark each poll re-reads (clock skew, late-visible records)."""
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0
RECONCILE_S = 1.0

Publish = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PollResult:
    records: int = 0
    changes: int = 0
    rejected: int = 0
    requests: int = 0
    newest: datetime | None = None


@dataclass
class _Page:
    """One page's outcome, before it is committed."""

    changes: list[ChangeEvent] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    seen: list[SeenRow] = field(default_factory=list)
    newest: datetime | None = None


class SourcePoller:
    """The loop of one source: poll, wait the interval (or back off), again."""

    def __init__(
        self,
        source: CertainSource,
        *,
        store: Store,
        config: ConfigService,
        publish: Publish,
        session: aiohttp.ClientSession,
        clock: Clock = _utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.key = SourceKey(source.id, source.account_code)
        self._store = store
        self._config = config
        self._publish = publish
        self._session = session
        self._clock = clock
        self._rng = rng or random.Random()
        self._budget = RequestBudget(source.request_budget_per_minute)
        self._sessions = SessionRegistrations(
            key=self.key,
            store=store,
            overlap=OVERLAP,
            start_point=self._start_point,
            clock=self._clock,
        )
        self._failures = 0
        self.status = CertainSourceStatus(
            source.id, source.name, source.account_code, state=STARTING
        )

    async def run(self) -> None:
        if self.source.password is None:
            self._set(state=STOPPED_NO_PASSWORD, last_error="the source has no password")
            log.warning("Certain source %s: no password; not polling", self.source.id)
            return
        while True:
            try:
                result = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except CertainUnauthorized as error:
                self._failed(error.message, None)
                self._set(state=STOPPED_UNAUTHORIZED)
                log.warning(
                    "Certain source %s stopped: %s; it polls again once its configuration changes",
                    self.source.id,
                    error.message,
                )
                return
            except (CertainError, Exception) as error:
                message = error.message if isinstance(error, CertainError) else repr(error)
                if not isinstance(error, CertainError):
                    log.exception("Certain source %s: poll failed", self.source.id)
                self._failures += 1
                delay = self._backoff_s()
                self._failed(message, self._clock() + timedelta(seconds=delay))
                self._set(state=BACKING_OFF)
                log.warning(
                    "Certain source %s: %s; trying again in %.1f s",
                    self.source.id,
                    message,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self._failures = 0
            s = self.status
            self._set(
                state=POLLING,
                retry_at=None,
                last_poll_at=self._clock(),
                last_poll_records=result.records,
                last_poll_changes=result.changes,
                last_poll_requests=result.requests,
                newest_modified=max(
                    (t for t in (s.newest_modified, result.newest) if t is not None),
                    default=None,
                ),
                polls=s.polls + 1,
                records_total=s.records_total + result.records,
                changes_total=s.changes_total + result.changes,
                rejected_total=s.rejected_total + result.rejected,
                requests_total=s.requests_total + result.requests,
            )
            await asyncio.sleep(self.source.poll_interval_s)

    def _backoff_s(self) -> float:
        """Doubling from the smaller of the poll interval and `MIN_BACKOFF_S`, at most
        `MAX_BACKOFF_S`, each wait drawn in [½, 1] of it so sources do not retry in step."""
        base = min(self.source.poll_interval_s, MIN_BACKOFF_S)
        ceiling: float = min(MAX_BACKOFF_S, base * 2.0 ** (self._failures - 1))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def _failed(self, message: str, retry_at: datetime | None) -> None:
        s = self.status
        self._set(
            errors_total=s.errors_total + 1,
            last_error=message,
            last_error_at=self._clock(),
            retry_at=retry_at,
        )

    def _set(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)

    # --- one poll ---------------------------------------------------------------------------

    async def poll_once(self) -> PollResult:
        client = CertainClient(self._session, self.source, self._budget)
        result = PollResult()
        try:
            marks = await load_watermarks(self._store, self.key)
            events = await self._poll_events(client, result)
            for event_code in events:
                await self._poll_registrations(client, event_code, marks, result)
                result.records += await self._sessions.poll(
                    client, event_code, self._session_commit(event_code, result)
                )
        finally:
            result.requests = client.requests
        return result

    def _start_point(self) -> datetime:
        start = self.source.start
        return start if isinstance(start, datetime) else self._clock()

    async def _poll_events(self, client: CertainClient, result: PollResult) -> list[str]:
        """The watched events' codes; event changes (setup included) archived and published."""
        records = await whole_list(client.events, f"Event/{self.source.account_code}", "events")
        chosen = [r for r in records if isinstance(r, dict) and self._watched(r)]
        codes = [str(r["eventCode"]) for r in chosen]
        seen = await load_last_seen(self._store, self.key, "event", EVENT_LIST, codes)
        out = _Page()
        for record in chosen:
            code = str(record["eventCode"])
            modified = parse_timestamp(record.get("dateModified"))
            last = seen.get(code)
            if modified is not None and last is not None and modified <= last.date_modified:
                continue
            detail = await client.event(code)
            if detail is None:
                continue
            result.records += 1
            diffed = diff_event(self.source.account_code, detail, last)
            self._take(out, diffed, "event", EVENT_LIST)
        if out.changes or out.rejected or out.seen:
            await self._commit(out, None, result)
        return codes

    def _watched(self, record: dict[str, Any]) -> bool:
        code = record.get("eventCode")
        if not isinstance(code, str) or not code.strip():
            return False
        events = self.source.events
        if isinstance(events, list):
            return code in events
        if record.get("isActive") is False:
            return False
        if isinstance(events, EventsByTag):
            return events.tag in event_tag_names(record)
        return True

    async def _poll_registrations(
        self,
        client: CertainClient,
        event_code: str,
        marks: dict[str, datetime],
        result: PollResult,
    ) -> None:
        watermark = marks.get(event_code)
        if watermark is None:
            # A new source (or event) starts at its start point; kept at once, so "now" means
            # the moment it was first polled, not the moment of each restart.
            watermark = self._start_point()
            await commit_poll(self._store, PollCommit(self.key, watermarks={event_code: watermark}))
            marks[event_code] = watermark
        pager = KeysetPager(watermark - OVERLAP, PAGE_SIZE)

        async def fetch(after: datetime, start_index: int, max_results: int) -> list[Any]:
            return (await client.registrations(event_code, after, start_index, max_results)).records

        async for records in fresh_pages(pager, fetch):
            result.records += len(records)
            out = await self._diff_page(event_code, records)
            moved = moved_watermark(out.newest, watermark, self._clock())
            mark = {event_code: moved} if moved is not None else None
            await self._commit(out, mark, result)
            if moved is not None:
                marks[event_code] = watermark = moved
        log_shifts(log, self.source.id, event_code, "registrations", pager)

    async def _diff_page(self, event_code: str, records: list[Any]) -> _Page:
        codes = [
            r["registrationCode"]
            for r in records
            if isinstance(r, dict) and isinstance(r.get("registrationCode"), str)
        ]
        seen = await load_last_seen(self._store, self.key, "registration", event_code, codes)
        out = _Page()
        latest: dict[str, LastSeen] = dict(seen)
        for record in records:
            code = record.get("registrationCode") if isinstance(record, dict) else None
            last = latest.get(code) if isinstance(code, str) else None
            diffed = diff_registration(self.source.account_code, event_code, record, last)
            if isinstance(diffed, RecordDiff):
                latest[diffed.code] = diffed.seen
            self._take(out, diffed, "registration", event_code)
        await self._drop_known_rejections(out, event_code)
        return out

    def _session_commit(
        self, event_code: str, result: PollResult
    ) -> Callable[[SessionPage, dict[str, datetime] | None], Awaitable[None]]:
        async def commit(page: SessionPage, marks: dict[str, datetime] | None) -> None:
            out = _Page(page.changes, [], list(page.seen), page.newest)
            for rejection in page.rejections:
                self._take(out, rejection, "session", event_code)
            await self._drop_known_rejections(out, event_code)
            await self._commit(out, marks, result, "sessions")

        return commit

    async def _drop_known_rejections(self, out: _Page, event_code: str) -> None:
        """Keep each malformed record once: the overlap re-reads it on every poll."""
        known = await load_last_seen(
            self._store,
            self.key,
            "rejected",
            event_code,
            [row.change_id or "" for row in out.rejected],
        )
        fresh = [row for row in out.rejected if row.change_id not in known]
        out.seen += [
            SeenRow("rejected", event_code, row.change_id or "", LastSeen(row.received_at, ""))
            for row in fresh
        ]
        out.rejected = fresh

    def _take(
        self,
        out: _Page,
        diffed: RecordDiff | RecordRejection,
        kind: Any,
        event_code: str,
    ) -> None:
        if isinstance(diffed, RecordRejection):
            raw = _json(diffed.raw)
            where = f"Certain source {self.source.id!r}, event {event_code or diffed.code!r}"
            if kind == "session":
                where += ", session registration"
            if kind in ("registration", "session"):
                where += f", registration {diffed.code!r}" if diffed.code else ""
            # The digest of the record as served: the overlap re-reads it, and a rejection
            # already kept is not kept again.
            digest = "certain-rejected-" + hashlib.sha256(raw.encode()).hexdigest()[:32]
            out.rejected.append(self._rejected(where, diffed.reason, raw, digest))
            return
        if out.newest is None or diffed.seen.date_modified > out.newest:
            out.newest = diffed.seen.date_modified
        if diffed.unchanged and kind == "registration":
            # Nothing to write: the stored state (and the registration body kept with it) is
            # that version or a newer one.
            return
        out.changes += diffed.changes
        body = _json(diffed.body) if diffed.body is not None else None
        out.seen.append(SeenRow(kind, event_code, diffed.code, diffed.seen, body=body))

    def _publishable(self, out: _Page) -> list[Received]:
        """The page's changes with their JSON text; one too big for the broker ever to take
        (a registration with a megabyte in a field) is kept in `rejected_changes` instead, so
        the outbox never holds a change that no publish can clear."""
        received: list[Received] = []
        for change in out.changes:
            payload = _json(change.to_json_dict())
            reason = oversize_reason(change.registration_code or change.event_code, payload)
            if reason is None:
                received.append(Received(change, payload))
                continue
            where = f"Certain source {self.source.id!r}, event {change.event_code!r}"
            if change.registration_code:
                where += f", registration {change.registration_code!r}"
            out.rejected.append(self._rejected(where, reason, payload, change.change_id))
        return received

    def _rejected(self, where: str, reason: str, payload: str, change_id: str) -> RejectedRow:
        return RejectedRow(
            received_at=self._clock(),
            reasons=(f"{where}: {reason}",),
            payload=payload,
            source="poll",
            change_id=change_id,
        )

    async def _commit(
        self,
        out: _Page,
        watermarks: dict[str, datetime] | None,
        result: PollResult,
        stream: Stream = "registrations",
    ) -> None:
        if not (out.changes or out.rejected or out.seen or watermarks):
            # A page the overlap re-read with nothing new: no write transaction. Most pages of
            # a quiet source are such pages, and a ledger commit costs more than their diff.
            if out.newest is not None and (result.newest is None or out.newest > result.newest):
                result.newest = out.newest
            return
        received = self._publishable(out)

        async def write(rows: list[ChangeRow]) -> AcceptedChanges:
            commit = PollCommit(self.key, rows, out.rejected, out.seen, watermarks, stream)
            return await commit_poll(self._store, commit)

        committed = await archive_valid(
            self._config, received, now=self._clock(), source="poll", write=write
        )
        result.changes += len({r.change.change_id for r in received})
        result.rejected += len(out.rejected)
        if out.newest is not None and (result.newest is None or out.newest > result.newest):
            result.newest = out.newest
        await self._publish_rows(committed.unpublished)

    async def _publish_rows(self, rows: list[ChangeRow]) -> None:
        """Publish what the commit left unpublished; a broker that does not take them leaves
        them in the ledger for recovery (as the ingest API does)."""
        if not rows:
            return
        try:
            await self._publish([change_record(row) for row in rows])
        except Exception as error:
            log.warning(
                "Certain source %s: publishing %d changes failed (%s); recovery publishes them",
                self.source.id,
                len(rows),
                type(error).__name__,
            )
            return
        with contextlib.suppress(Exception):
            await self._store.mark_published([r.change_id for r in rows], self._clock())


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError) as error:
        return f"(not storable as JSON: {type(error).__name__})"


def _fingerprint(source: CertainSource) -> str:
    """Everything that should restart the loop when it changes, the password included."""
    body = source.model_dump(mode="json")
    password = source.password.get_secret_value() if source.password else ""
    body["password"] = hashlib.sha256(password.encode()).hexdigest()
    return json.dumps(body, sort_keys=True)


class CertainSources:
    """The running loops, kept in step with the account's `certain_sources`."""

    def __init__(
        self,
        store: Store,
        config: ConfigService,
        publish: Publish,
        *,
        clock: Clock = _utcnow,
        reconcile_s: float = RECONCILE_S,
    ) -> None:
        self._store = store
        self._config = config
        self._publish = publish
        self._clock = clock
        self._reconcile_s = reconcile_s
        self._loops: dict[str, tuple[str, SourcePoller, asyncio.Task[None]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._watch(), name="certain-sources")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for source_id in list(self._loops):
            await self._stop_loop(source_id)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def statuses(self) -> tuple[CertainSourceStatus, ...]:
        """Every configured source, in the account's order: a running loop's status, or
        `inactive` for a source configured with `active: false`."""
        out: list[CertainSourceStatus] = []
        for source in self._config.account.certain_sources:
            loop = self._loops.get(source.id)
            if loop is not None:
                out.append(loop[1].status)
            elif not source.active:
                out.append(
                    CertainSourceStatus(source.id, source.name, source.account_code, INACTIVE)
                )
        return tuple(out)

    async def _watch(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:
                log.exception("Certain sources: reconciling with the configuration failed")
            await asyncio.sleep(self._reconcile_s)

    async def reconcile(self) -> None:
        """Start, restart or stop loops so one runs per active source, as configured now."""
        assert self._session is not None
        wanted = {s.id: s for s in self._config.account.certain_sources if s.active}
        for source_id, (fingerprint, _, _) in list(self._loops.items()):
            source = wanted.get(source_id)
            if source is None or _fingerprint(source) != fingerprint:
                await self._stop_loop(source_id)
        for source_id, source in wanted.items():
            if source_id in self._loops:
                continue
            poller = SourcePoller(
                source,
                store=self._store,
                config=self._config,
                publish=self._publish,
                session=self._session,
                clock=self._clock,
            )
            task = asyncio.create_task(poller.run(), name=f"certain-source-{source_id}")
            self._loops[source_id] = (_fingerprint(source), poller, task)
            log.info("Certain source %s: polling %s", source_id, source.base_url)

    async def _stop_loop(self, source_id: str) -> None:
        _, _, task = self._loops.pop(source_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if (
            source_id in self._config.deleted_sources
            and self._config.account.certain_source(source_id) is None
        ):
            # Deleted through the API while a poll ran: a page committed after the delete
            # forgot its state wrote some back.
            await forget_source(self._store, source_id)
