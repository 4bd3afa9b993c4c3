"""The retry queue's part of `Store`: one item per (change, flow) waiting for another attempt.

A part of its own because the queue has its own rules: an item is leased to one claimer at a
time, a resubmit and the scheduler settle a race by compare-and-set, and a later outcome that
resolves the pair (`RESOLVING_STATUSES`) takes it out of the queue in the same transaction as
the outcome (`resolve_retries`, used by `Store.record_outcomes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from stream.store import arrow_batches as ab
from stream.store.base import StoreBase, first, insert_arrow
from stream.store.rows import Page, RetryFilter, RetryItem, RetryPage, RetryStatus, utc
from stream.store.writer import Con

__all__ = [
    "RESOLVING_STATUSES",
    "RetryQueue",
    "last_per_key",
    "resolve_retries",
    "upsert_retries",
]

RESOLVING_STATUSES = ("delivered", "not_activated", "filtered_out", "skipped_stale")
"""A later outcome with one of these statuses ends the (change, flow)'s stay in the retry queue."""

_RETRY_SELECT = ", ".join(ab.RETRY_COLUMNS)


class RetryQueue(StoreBase):
    async def upsert_retry_items(self, items: Sequence[RetryItem]) -> None:
        """Insert or replace retry items by (change_id, flow_id); created_at is kept."""
        if not items:
            return
        table = ab.retry_table(last_per_key(items))
        await self._db.write(lambda con: upsert_retries(con, table))

    async def get_retry_item(self, change_id: str, flow_id: str) -> RetryItem | None:
        sql = f"SELECT {_RETRY_SELECT} FROM retry_items WHERE change_id = ? AND flow_id = ?"
        row = await self._db.read(
            lambda con: first(con.execute(sql, [change_id, flow_id]).fetchall())
        )
        return _retry_from_row(row) if row else None

    async def list_retry(
        self, filters: RetryFilter | None = None, page: Page | None = None
    ) -> RetryPage:
        """Retry items matching `filters`, most recently updated first, with the total count."""
        filters = filters or RetryFilter()
        page = page or Page()
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("integration", "status", "category", "flow_id"):
            value = getattr(filters, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""

        def read(con: Con) -> RetryPage:
            total_row = first(
                con.execute(f"SELECT count(*) FROM retry_items {where}", params).fetchall()
            )
            rows = con.execute(
                f"SELECT {_RETRY_SELECT} FROM retry_items {where} "
                "ORDER BY updated_at DESC, change_id, flow_id LIMIT ? OFFSET ?",
                [*params, page.limit, page.offset],
            ).fetchall()
            total = int(total_row[0]) if total_row else 0
            return RetryPage(tuple(_retry_from_row(r) for r in rows), total)

        return await self._db.read(read)

    async def claim_due_retries(
        self, *, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[RetryItem]:
        """Lease up to `limit` due items (pending/retrying, next_attempt_at ≤ now, no live
        lease) to `owner`, oldest due first. Runs on the writer thread, so two claimers never
        get the same item."""
        now = utc(now, "now")
        lease_until = utc(lease_until, "lease_until")
        sql = f"""
            UPDATE retry_items SET lease_owner = ?, lease_until = ?, updated_at = ?
            WHERE (change_id, flow_id) IN (
                SELECT change_id, flow_id FROM retry_items
                WHERE status IN ('pending', 'retrying')
                  AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?
                  AND (lease_until IS NULL OR lease_until <= ?)
                ORDER BY next_attempt_at, change_id, flow_id
                LIMIT ?)
            RETURNING {_RETRY_SELECT}
        """
        params = [owner, lease_until, now, now, now, limit]
        rows = await self._db.write(lambda con: con.execute(sql, params).fetchall())
        items = [_retry_from_row(r) for r in rows]
        return sorted(items, key=lambda i: (i.next_attempt_at or now, i.change_id, i.flow_id))

    async def release_parked(self, connection_id: str, code: str, *, now: datetime) -> int:
        """Make the pending items of `connection_id` whose pair is parked with Marketo code
        `code` (e.g. the circuit breaker's) due at `now` instead of at their resume time;
        returns how many. An operator's passing test has closed the breaker they wait for."""
        now = utc(now, "now")
        sql = """
            UPDATE retry_items SET next_attempt_at = ?, updated_at = ?
            WHERE integration = ? AND status = 'pending' AND next_attempt_at > ?
              AND (change_id, flow_id) IN (
                  SELECT change_id, flow_id FROM delivery_state
                  WHERE connection_id = ? AND status = 'parked' AND marketo_code = ?)
            RETURNING change_id
        """
        params = [now, now, connection_id, now, connection_id, code]
        rows = await self._db.write(lambda con: con.execute(sql, params).fetchall())
        return len(rows)

    async def compare_and_set_retry(
        self, item: RetryItem, *, expected: Iterable[RetryStatus | None]
    ) -> bool:
        """Write `item` only if the stored item's status is in `expected` (None: absent).

        This is how a resubmit and the scheduler settle a race: exactly one write wins.
        """
        allowed = set(expected)
        table = ab.retry_table([item])

        def work(con: Con) -> bool:
            row = first(
                con.execute(
                    "SELECT status FROM retry_items WHERE change_id = ? AND flow_id = ?",
                    [item.change_id, item.flow_id],
                ).fetchall()
            )
            current = None if row is None else row[0]
            if current not in allowed:
                return False
            upsert_retries(con, table)
            return True

        return await self._db.write(work)


def _retry_from_row(row: Sequence[Any]) -> RetryItem:
    values = dict(zip(ab.RETRY_COLUMNS, row, strict=True))
    return RetryItem(**values)


def last_per_key(items: Sequence[RetryItem]) -> list[RetryItem]:
    """DuckDB refuses to update one row twice in a statement; the last item per key wins."""
    latest: dict[tuple[str, str], RetryItem] = {}
    for item in items:
        latest[(item.change_id, item.flow_id)] = item
    return list(latest.values())


def upsert_retries(con: Con, table: pa.Table) -> None:
    updates = ", ".join(
        f"{c} = excluded.{c}"
        for c in ab.RETRY_COLUMNS
        if c not in ("change_id", "flow_id", "created_at")
    )
    insert_arrow(
        con,
        table,
        f"INSERT INTO retry_items ({_RETRY_SELECT}) SELECT {_RETRY_SELECT} FROM batch "
        f"ON CONFLICT (change_id, flow_id) DO UPDATE SET {updates}",
    )


def resolve_retries(con: Con, table: pa.Table) -> None:
    statuses = ", ".join(f"'{s}'" for s in RESOLVING_STATUSES)
    insert_arrow(
        con,
        table,
        f"""
        UPDATE retry_items r SET status = 'resolved', next_attempt_at = NULL,
               lease_owner = NULL, lease_until = NULL, updated_at = b.processed_at
        FROM (SELECT change_id, flow_id, max(processed_at) AS processed_at FROM batch
              WHERE status IN ({statuses}) GROUP BY ALL) b
        WHERE r.change_id = b.change_id AND r.flow_id = b.flow_id
          AND r.status <> 'resolved' AND b.processed_at >= r.created_at
        """,
    )
