"""The activity feed: newest outcomes first, paged by an opaque keyset cursor.

A keyset (processed_at, change_id, flow_id) rather than an offset, so a deep page costs what the
first one does and rows recorded while the operator pages do not shift the pages already seen.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from stream.metrics.definitions import Mode, ParameterError, Window
from stream.metrics.queries import iso, period_json
from stream.store.rows import OUTCOME_STATUSES
from stream.store.store import Store
from stream.store.writer import Con

MAX_LIMIT = 500
DEFAULT_LIMIT = 50

Cursor = tuple[datetime, str, str]


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor[0].isoformat(), cursor[1], cursor[2]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    try:
        padded = text + "=" * (-len(text) % 4)
        at, change_id, flow_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(change_id, str) or not isinstance(flow_id, str):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ParameterError("before is not a cursor this feed returned") from exc
    return when, change_id, flow_id


def parse_statuses(text: str | None, name: str = "status") -> tuple[str, ...] | None:
    """A comma-separated list of outcome statuses (`delivered,failed`), or None when absent or
    blank; an unknown status is a `ParameterError` naming it and the statuses there are."""
    if text is None or not text.strip():
        return None
    statuses = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [s for s in statuses if s not in OUTCOME_STATUSES]
    if unknown:
        raise ParameterError(
            f"{name}: {', '.join(repr(s) for s in unknown)} "
            f"{'is not an outcome status' if len(unknown) == 1 else 'are not outcome statuses'}"
            f"; expected a comma-separated list of {', '.join(sorted(OUTCOME_STATUSES))}"
        )
    return statuses


_COLUMNS = (
    "processed_at, change_id, flow_id, registration_code, event_code, flow_name, action, "
    "status, category, reason, lead_result, marketo_lead_id, attempts"
)


def detail(status: str, reason: str | None, lead_result: str | None) -> str:
    """One line for the feed: why it did not happen, or what Marketo did."""
    if reason:
        return reason
    if lead_result:
        return lead_result
    return status


def page_on(
    con: Con,
    mode: Mode,
    window: Window,
    *,
    limit: int = DEFAULT_LIMIT,
    before: Cursor | None = None,
    statuses: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """A page of the feed; `statuses` keeps only those outcome statuses, `exclude` drops
    those (the operator hiding the not_activated rows that make most of a busy feed)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ParameterError(f"limit must be between 1 and {MAX_LIMIT}")
    clauses = ["mode = ?", "processed_at >= ?", "processed_at < ?"]
    params: list[Any] = [mode, window.start, window.end]
    if statuses:
        clauses.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params += statuses
    if exclude:
        clauses.append(f"status NOT IN ({', '.join('?' for _ in exclude)})")
        params += exclude
    if before is not None:
        # The plain bound lets DuckDB skip row groups; the row comparison breaks ties.
        clauses += ["processed_at <= ?", "(processed_at, change_id, flow_id) < (?, ?, ?)"]
        params += [before[0], *before]
    sql = (
        f"SELECT {_COLUMNS} FROM outcomes WHERE {' AND '.join(clauses)} "
        "ORDER BY processed_at DESC, change_id DESC, flow_id DESC LIMIT ?"
    )
    rows = con.execute(sql, [*params, limit + 1]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "time": iso(r[0]),
            "change_id": r[1],
            "flow_id": r[2],
            "registration_code": r[3],
            "event_code": r[4],
            "flow_name": r[5],
            "action": r[6],
            "status": r[7],
            "category": r[8],
            "reason": r[9],
            "lead_result": r[10],
            "marketo_lead_id": r[11],
            "attempts": int(r[12]),
            "detail": detail(r[7], r[9], r[10]),
        }
        for r in rows
    ]
    last = rows[-1] if rows else None
    return {
        "mode": mode,
        "period": period_json(window),
        "items": items,
        "next_before": encode_cursor((last[0], last[1], last[2])) if more and last else None,
    }


async def page(
    store: Store,
    mode: Mode,
    window: Window,
    *,
    limit: int = DEFAULT_LIMIT,
    before: Cursor | None = None,
    statuses: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    if not 1 <= limit <= MAX_LIMIT:
        raise ParameterError(f"limit must be between 1 and {MAX_LIMIT}")
    return await store.read(
        lambda con: page_on(
            con, mode, window, limit=limit, before=before, statuses=statuses, exclude=exclude
        )
    )
