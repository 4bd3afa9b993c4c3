"""The Certain source's state in the ledger: watermarks and last-seen records (migrations 6, 9).

A poll reads records modified after its watermark (minus an overlap) and compares each with the
version it last acted on (`stream.certain.poll_diff`). Both live here, keyed by the source's id
and the account code it polls (a source pointed at another account starts afresh), and are
written by `commit_poll` in the same transaction that archives the poll's changes in the outbox:
after a crash either the changes and the state that says they were taken are both in the
ledger, or neither is, so a restart neither loses nor repeats a change.

Kinds of last-seen row: `registration` (code = registration code; `body` = the registration as
its last change carried it, which session changes carry along), `session` (code = registration
code, `session_code` = the session: one session registration), `event` (event_code = code = the
event code), `rejected` (code = a digest of a malformed record already kept in
`rejected_changes`, so the overlap re-reading it does not keep it twice).

Watermarks are kept per event and stream: `registrations` (`Registration/{acct}/{evt}`; the
account's event list under `EVENT_LIST`) and `sessions` (`RegistrationAgenda/{acct}/{evt}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa  # type: ignore[import-untyped]

from stream.certain.poll_diff import LastSeen
from stream.store.rows import ChangeRow, RejectedRow
from stream.store.store import AcceptedChanges, Store
from stream.store.writer import Con

SeenKind = Literal["registration", "session", "event", "rejected"]
Stream = Literal["registrations", "sessions"]
EVENT_LIST = ""
"""The `event_code` of the watermark kept for the account's event list."""

_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, slots=True)
class SourceKey:
    """Whose state: a source, as the account it polls."""

    source_id: str
    account_code: str


@dataclass(frozen=True, slots=True)
class SeenRow:
    kind: SeenKind
    event_code: str
    code: str
    seen: LastSeen
    session_code: str = ""
    body: str | None = None
    """JSON of the registration (kind `registration` only); None keeps no body."""


@dataclass(frozen=True, slots=True)
class PollCommit:
    """What one page of a poll writes at once: its changes and rejections (the outbox), the
    records' new last-seen state and the watermarks it moved."""

    key: SourceKey
    rows: Sequence[ChangeRow] = ()
    rejected: Sequence[RejectedRow] = ()
    seen: Sequence[SeenRow] = ()
    watermarks: dict[str, datetime] | None = None
    stream: Stream = "registrations"
    """Which stream the watermarks belong to."""


async def load_watermarks(
    store: Store, key: SourceKey, stream: Stream = "registrations"
) -> dict[str, datetime]:
    """event code (`EVENT_LIST` for the event list) → watermark, of one stream."""
    sql = (
        "SELECT event_code, watermark FROM certain_watermarks "
        "WHERE source_id = ? AND account_code = ? AND stream = ?"
    )
    params = [key.source_id, key.account_code, stream]
    rows = await store.read(lambda con: con.execute(sql, params).fetchall())
    return {str(code): _utc(stamp) for code, stamp in rows}


async def load_last_seen(
    store: Store, key: SourceKey, kind: SeenKind, event_code: str, codes: Iterable[str]
) -> dict[str, LastSeen]:
    """The last-seen state of these records (unknown codes are absent)."""
    wanted = list(dict.fromkeys(codes))
    if not wanted:
        return {}
    table = pa.table({"code": pa.array(wanted, type=pa.string())})
    sql = (
        "SELECT s.code, s.status, s.date_modified, s.digest FROM certain_last_seen s "
        "JOIN wanted w ON s.code = w.code "
        "WHERE s.source_id = ? AND s.account_code = ? AND s.kind = ? AND s.event_code = ?"
    )
    params = [key.source_id, key.account_code, kind, event_code]

    def read(con: Con) -> list[tuple[str, str | None, datetime, str]]:
        con.register("wanted", table)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.unregister("wanted")

    rows = await store.read(read)
    return {
        str(code): LastSeen(_utc(stamp), str(digest), status)
        for code, status, stamp, digest in rows
    }


async def load_session_seen(
    store: Store, key: SourceKey, event_code: str, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], LastSeen]:
    """The last-seen state of these session registrations, by (registration, session) code."""
    wanted = list(dict.fromkeys(pairs))
    if not wanted:
        return {}
    table = pa.table(
        {
            "code": pa.array([p[0] for p in wanted], type=pa.string()),
            "session_code": pa.array([p[1] for p in wanted], type=pa.string()),
        }
    )
    sql = (
        "SELECT s.code, s.session_code, s.status, s.date_modified, s.digest "
        "FROM certain_last_seen s JOIN wanted_sessions w "
        "ON s.code = w.code AND s.session_code = w.session_code "
        "WHERE s.source_id = ? AND s.account_code = ? AND s.kind = 'session' "
        "AND s.event_code = ?"
    )
    params = [key.source_id, key.account_code, event_code]

    def read(con: Con) -> list[tuple[str, str, str | None, datetime, str]]:
        con.register("wanted_sessions", table)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.unregister("wanted_sessions")

    rows = await store.read(read)
    return {
        (str(code), str(session)): LastSeen(_utc(stamp), str(digest), status)
        for code, session, status, stamp, digest in rows
    }


async def load_bodies(
    store: Store, key: SourceKey, event_code: str, codes: Iterable[str]
) -> dict[str, str]:
    """registration code → the registration as its last change carried it (JSON), for the
    registrations that have one."""
    wanted = list(dict.fromkeys(codes))
    if not wanted:
        return {}
    table = pa.table({"code": pa.array(wanted, type=pa.string())})
    sql = (
        "SELECT s.code, s.body FROM certain_last_seen s JOIN wanted_bodies w ON s.code = w.code "
        "WHERE s.source_id = ? AND s.account_code = ? AND s.kind = 'registration' "
        "AND s.event_code = ? AND s.body IS NOT NULL"
    )
    params = [key.source_id, key.account_code, event_code]

    def read(con: Con) -> list[tuple[str, str]]:
        con.register("wanted_bodies", table)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.unregister("wanted_bodies")

    return {str(code): str(body) for code, body in await store.read(read)}


async def commit_poll(store: Store, commit: PollCommit) -> AcceptedChanges:
    """Archive the changes (not yet published) and rejections, and write the state, in one
    transaction. Returns what `Store.accept_changes` does: the rows still to publish."""
    now = datetime.now(UTC)
    seen = _seen_table(commit.key, commit.seen, now)
    marks = _watermark_table(commit.key, commit.stream, commit.watermarks or {}, now)

    def also(con: Con) -> None:
        if seen is not None:
            con.register("seen_batch", seen)
            try:
                con.execute(
                    "INSERT OR REPLACE INTO certain_last_seen BY NAME SELECT * FROM seen_batch"
                )
            finally:
                con.unregister("seen_batch")
        if marks is not None:
            con.register("mark_batch", marks)
            try:
                # A watermark only moves forward: a page re-read after a restart never sets an
                # older one over a newer.
                con.execute(
                    "INSERT INTO certain_watermarks BY NAME SELECT * FROM mark_batch "
                    "ON CONFLICT (source_id, account_code, event_code, stream) DO UPDATE SET "
                    "watermark = greatest(certain_watermarks.watermark, excluded.watermark), "
                    "updated_at = excluded.updated_at"
                )
            finally:
                con.unregister("mark_batch")

    return await store.accept_changes(list(commit.rows), list(commit.rejected), also=also)


async def forget_source(store: Store, source_id: str) -> None:
    """Drop a removed source's state, so one added again under its id starts afresh."""

    def work(con: Con) -> None:
        for table in ("certain_watermarks", "certain_last_seen"):
            con.execute(f"DELETE FROM {table} WHERE source_id = ?", [source_id])

    await store.write(work)


def _seen_table(key: SourceKey, rows: Sequence[SeenRow], now: datetime) -> pa.Table | None:
    latest: dict[tuple[str, str, str, str], SeenRow] = {}
    for row in rows:
        ident = (row.kind, row.event_code, row.code, row.session_code)
        kept = latest.get(ident)
        if kept is None or row.seen.date_modified >= kept.seen.date_modified:
            latest[ident] = row
    if not latest:
        return None
    values = list(latest.values())
    n = len(values)
    return pa.table(
        {
            "source_id": pa.array([key.source_id] * n, type=pa.string()),
            "account_code": pa.array([key.account_code] * n, type=pa.string()),
            "kind": pa.array([r.kind for r in values], type=pa.string()),
            "event_code": pa.array([r.event_code for r in values], type=pa.string()),
            "code": pa.array([r.code for r in values], type=pa.string()),
            "session_code": pa.array([r.session_code for r in values], type=pa.string()),
            "status": pa.array([r.seen.status for r in values], type=pa.string()),
            "date_modified": pa.array([r.seen.date_modified for r in values], type=_TS),
            "digest": pa.array([r.seen.digest for r in values], type=pa.string()),
            "body": pa.array([r.body for r in values], type=pa.string()),
            "updated_at": pa.array([now] * n, type=_TS),
        }
    )


def _watermark_table(
    key: SourceKey, stream: Stream, marks: dict[str, datetime], now: datetime
) -> pa.Table | None:
    if not marks:
        return None
    n = len(marks)
    return pa.table(
        {
            "source_id": pa.array([key.source_id] * n, type=pa.string()),
            "account_code": pa.array([key.account_code] * n, type=pa.string()),
            "event_code": pa.array(list(marks), type=pa.string()),
            "stream": pa.array([stream] * n, type=pa.string()),
            "watermark": pa.array(list(marks.values()), type=_TS),
            "updated_at": pa.array([now] * n, type=_TS),
        }
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
