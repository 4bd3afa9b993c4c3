"""Session registrations of a watched event, polled like its registrations.

`RegistrationAgenda/{acct}/{evt}?dateModified_after=<watermark - overlap>&orderBy=dateModified_asc`
page by page, with a watermark of its own per event (stream `sessions` in `certain_watermarks`)
and a last-seen row per (registration, session); each page's changes, rejections, state and
watermark are committed at once by the poller's `commit`, exactly as a registrations page is
(`stream.control.certain_poller`), so a restart resumes without gaps or repeats.

A session change carries its registration (flows map the profile and filter on the attendee
type): the registration as its last change carried it, kept in the ledger by the registrations
poll that runs just before; only a registration not seen yet (assigned to a session in the
moment between the two polls, or seen before the ledger kept bodies) costs a request of its own.
The session's name comes from the event's session list, read once per poll and only when a page
has something new.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stream.certain.client import PAGE_SIZE, CertainClient, whole_list
from stream.certain.events import ChangeEvent
from stream.certain.paging import KeysetPager, fresh_pages, log_shifts, moved_watermark
from stream.certain.poll_diff import LastSeen, RecordRejection
from stream.certain.session_diff import (
    SessionDiff,
    SessionRecord,
    diff_session_registration,
    read_session_registration,
)
from stream.store import Store
from stream.store.certain_state import (
    PollCommit,
    SeenRow,
    SourceKey,
    commit_poll,
    load_bodies,
    load_session_seen,
    load_watermarks,
)

log = logging.getLogger("signal.control.certain")

_NOT_CARRIED = frozenset({"eventCode"})


@dataclass
class SessionPage:
    """One page's outcome, for the poller to commit."""

    changes: list[ChangeEvent] = field(default_factory=list)
    rejections: list[RecordRejection] = field(default_factory=list)
    seen: list[SeenRow] = field(default_factory=list)
    newest: datetime | None = None


Commit = Callable[[SessionPage, dict[str, datetime] | None], Awaitable[None]]


class SessionRegistrations:
    """The session side of one source's poll: `poll` once per watched event per poll."""

    def __init__(
        self,
        *,
        key: SourceKey,
        store: Store,
        overlap: timedelta,
        start_point: Callable[[], datetime],
        clock: Callable[[], datetime],
    ) -> None:
        self._key = key
        self._store = store
        self._overlap = overlap
        self._start_point = start_point
        self._clock = clock

    async def poll(self, client: CertainClient, event_code: str, commit: Commit) -> int:
        """Read what moved since the event's sessions watermark, committing each page with
        `commit` (its changes, rejections, state, and the watermark when it moved); returns
        the records read."""
        marks = await load_watermarks(self._store, self._key, "sessions")
        watermark = marks.get(event_code)
        if watermark is None:
            watermark = self._start_point()
            only_mark = PollCommit(self._key, watermarks={event_code: watermark}, stream="sessions")
            await commit_poll(self._store, only_mark)
        pager = KeysetPager(watermark - self._overlap, PAGE_SIZE)
        sessions: dict[str, dict[str, Any]] | None = None
        records = 0

        async def fetch(after: datetime, start_index: int, max_results: int) -> list[Any]:
            page = await client.session_registrations(event_code, after, start_index, max_results)
            return page.records

        async for fresh in fresh_pages(pager, fetch):
            records += len(fresh)
            out, sessions = await self._diff_page(client, event_code, fresh, sessions)
            moved = moved_watermark(out.newest, watermark, self._clock())
            await commit(out, {event_code: moved} if moved is not None else None)
            if moved is not None:
                watermark = moved
        log_shifts(log, self._key.source_id, event_code, "session registrations", pager)
        return records

    async def _diff_page(
        self,
        client: CertainClient,
        event_code: str,
        raw: list[Any],
        sessions: dict[str, dict[str, Any]] | None,
    ) -> tuple[SessionPage, dict[str, dict[str, Any]] | None]:
        out = SessionPage()
        read: list[SessionRecord] = []
        for record in raw:
            checked = read_session_registration(record)
            if isinstance(checked, RecordRejection):
                out.rejections.append(checked)
            else:
                read.append(checked)
        pairs = [(r.registration_code, r.session_code) for r in read]
        latest: dict[tuple[str, str], LastSeen] = await load_session_seen(
            self._store, self._key, event_code, pairs
        )
        fresh = [r for r in read if r.is_new_version(latest.get(_pair(r)))]
        moved = [r for r in fresh if _moved(r, latest.get(_pair(r)))]
        registrations = await self._registrations(
            client, event_code, {r.registration_code for r in moved}
        )
        if moved and sessions is None:
            sessions = await _session_list(client, event_code)
        account = self._key.account_code
        for record in read:
            last = latest.get(_pair(record))
            diffed = diff_session_registration(
                account,
                event_code,
                record,
                last,
                registrations.get(record.registration_code),
                (sessions or {}).get(record.session_code),
            )
            if isinstance(diffed, RecordRejection):
                out.rejections.append(diffed)
                continue
            self._take(out, event_code, diffed, last)
            latest[_pair(record)] = record.seen
        return out, sessions

    def _take(
        self, out: SessionPage, event_code: str, diffed: SessionDiff, last: LastSeen | None
    ) -> None:
        record = diffed.record
        if out.newest is None or record.modified > out.newest:
            out.newest = record.modified
        if not record.is_new_version(last):
            return
        out.changes += diffed.changes
        out.seen.append(
            SeenRow(
                "session",
                event_code,
                record.registration_code,
                record.seen,
                session_code=record.session_code,
            )
        )

    async def _registrations(
        self, client: CertainClient, event_code: str, codes: set[str]
    ) -> dict[str, dict[str, Any]]:
        """The registrations these session changes carry: as last seen, else from Certain."""
        bodies = await load_bodies(self._store, self._key, event_code, sorted(codes))
        found: dict[str, dict[str, Any]] = {}
        for code, text in bodies.items():
            body = json.loads(text)
            if isinstance(body, dict):
                found[code] = body
        for code in sorted(codes - set(found)):
            record = await client.registration(event_code, code)
            if isinstance(record, dict) and record.get("registrationCode") == code:
                found[code] = {k: v for k, v in record.items() if k not in _NOT_CARRIED}
        return found


async def _session_list(client: CertainClient, event_code: str) -> dict[str, dict[str, Any]]:
    """sessionCode → the session as the event's session list gives it."""
    items = await whole_list(
        lambda index: client.sessions(event_code, index), f"event {event_code}", "sessions"
    )
    return {
        item["sessionCode"]: item
        for item in items
        if isinstance(item, dict) and isinstance(item.get("sessionCode"), str)
    }


def _moved(record: SessionRecord, last: LastSeen | None) -> bool:
    return last is None or last.status != record.status


def _pair(record: SessionRecord) -> tuple[str, str]:
    return (record.registration_code, record.session_code)
