"""Operator resubmit: send retry-queue items through the pipeline again, after a fix.

A resubmit re-drives the *archived change* (not the old payload) for the item's flow, so the
pipeline evaluates it with the configuration and catalog of now: a status tagged since the
failure now activates, a corrected mapping now maps (DESIGN 5, reliability §5).

Nothing is sent twice. Each item moves to `retrying` by compare-and-set on its stored status
*before* its redrive is published, so of two operators (or an operator and the scheduler)
reaching for the same item exactly one wins; the other is told the item is in flight. An item
already resolved, or whose pair was delivered meanwhile, is skipped.

Every resubmit is audited: one `config_audit` row (object `retry_queue`, action `resubmit`) with
who, when, what was asked (items or filter) and what came of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from stream.control.redrive import (
    AUDIT_RETRY,
    Clock,
    Publish,
    audit,
    redrive_record,
    utc_now,
)
from stream.control.retry_scheduler import DEFAULT_SCHEDULE, RetrySchedule
from stream.messages import Redrive
from stream.store import Page, RetryFilter, RetryItem, RetryPage, Store
from stream.store.writer import Con

log = logging.getLogger("signal.control.resubmit")

Key = tuple[str, str]
Progress = Callable[[int, int], None]
"""Called with (items handled, items selected) after each chunk."""

CHUNK = 200
AUDIT_KEYS_MAX = 1000
"""An audit row lists at most this many items; the counts always cover all of them."""
RESUBMITTABLE = ("pending", "abandoned")

_ITEM_COLUMNS = tuple(f.name for f in fields(RetryItem))
_KEYS = (
    "(SELECT unnest(?::VARCHAR[]) AS c, unnest(?::VARCHAR[]) AS f, "
    "unnest(?::VARCHAR[]) AS s, unnest(?::INTEGER[]) AS a) k"
)
_MATCH = "r.change_id = k.c AND r.flow_id = k.f AND r.status = k.s AND r.attempts = k.a"
_TAKE = f"""
    UPDATE retry_items r SET status = 'retrying', next_attempt_at = ?, lease_owner = ?,
           lease_until = ?, resubmitted_by = ?, resubmitted_at = ?, updated_at = ?
    FROM {_KEYS} WHERE {_MATCH}
    RETURNING r.change_id, r.flow_id
"""
_RESOLVE = f"""
    UPDATE retry_items r SET status = 'resolved', next_attempt_at = NULL, lease_owner = NULL,
           lease_until = NULL, updated_at = ?
    FROM {_KEYS} WHERE {_MATCH}
    RETURNING r.change_id, r.flow_id
"""


def _as_keys(items: Sequence[RetryItem]) -> list[list[Any]]:
    """The items' keys with the status and attempts they were read with, as SQL list params."""
    return [
        [i.change_id for i in items],
        [i.flow_id for i in items],
        [i.status for i in items],
        [i.attempts for i in items],
    ]


def _returned(con: Con, sql: str, params: list[Any]) -> set[Key]:
    return {(str(r[0]), str(r[1])) for r in con.execute(sql, params).fetchall()}


async def get_retry_items(store: Store, keys: Sequence[Key]) -> dict[Key, RetryItem]:
    """Items by key in one read (unknown keys are absent)."""
    if not keys:
        return {}
    columns = ", ".join(f"r.{c}" for c in _ITEM_COLUMNS)
    sql = (
        f"SELECT {columns} FROM retry_items r "
        "JOIN (SELECT unnest(?::VARCHAR[]) AS c, unnest(?::VARCHAR[]) AS f) k "
        "ON r.change_id = k.c AND r.flow_id = k.f"
    )
    params = [[c for c, _ in keys], [f for _, f in keys]]
    rows = await store.read(lambda con: con.execute(sql, params).fetchall())
    items = (RetryItem(**dict(zip(_ITEM_COLUMNS, r, strict=True))) for r in rows)
    return {(i.change_id, i.flow_id): i for i in items}


class MatchCountChanged(Exception):
    """The operator confirmed a number of items, but a different number matches now: the
    queue moved (the scheduler, another operator, new failures) since they looked."""

    def __init__(self, expected: int, matching: int) -> None:
        super().__init__(f"expected {expected} matching items, found {matching}")
        self.expected = expected
        self.matching = matching


@dataclass
class ResubmitResult:
    selected: int = 0
    submitted: int = 0
    skipped_already_resolved: int = 0
    skipped_in_flight: int = 0
    not_found: int = 0
    missing_change: int = 0
    submitted_items: list[Key] = field(default_factory=list, repr=False)

    def counts(self) -> dict[str, int]:
        data = asdict(self)
        data.pop("submitted_items")
        return data


class Resubmitter:
    def __init__(
        self,
        store: Store,
        publish: Publish,
        clock: Clock = utc_now,
        schedule: RetrySchedule = DEFAULT_SCHEDULE,
    ) -> None:
        self._store = store
        self._publish = publish
        self._clock = clock
        self._schedule = schedule

    async def resubmit(
        self, keys: Sequence[Key], actor: str, *, progress: Progress | None = None
    ) -> ResubmitResult:
        """Resubmit the named (change_id, flow_id) items."""
        unique = list(dict.fromkeys(keys))
        result = await self._run(unique, actor, progress)
        await self._audit(actor, {"items": _listed(unique)}, result)
        return result

    async def resubmit_matching(
        self,
        filters: RetryFilter,
        actor: str,
        *,
        search: str | None = None,
        progress: Progress | None = None,
        expected_count: int | None = None,
    ) -> ResubmitResult:
        """Resubmit every item matching `filters` (resolved and in-flight items are skipped).

        With `expected_count`, nothing is sent unless exactly that many items match when the
        selection is read (`MatchCountChanged` otherwise), so an operator who confirmed "45"
        never resubmits 4,500."""
        keys = await self.matching(filters, search)
        if expected_count is not None and len(keys) != expected_count:
            raise MatchCountChanged(expected_count, len(keys))
        result = await self._run(keys, actor, progress)
        asked: dict[str, object] = {"filter": _filter_dict(filters)}
        if search:
            asked["search"] = search
        await self._audit(actor, asked, result)
        return result

    async def matching(self, filters: RetryFilter, search: str | None = None) -> list[Key]:
        """Keys of the items matching `filters`, read before anything changes them (the queue
        is ordered by `updated_at`, which a resubmit moves)."""
        keys: list[Key] = []
        offset = 0
        while True:
            page = await search_retry(self._store, filters, search, Page(offset=offset, limit=5000))
            keys.extend((i.change_id, i.flow_id) for i in page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return list(dict.fromkeys(keys))

    async def _run(
        self, keys: Sequence[Key], actor: str, progress: Progress | None
    ) -> ResubmitResult:
        result = ResubmitResult(selected=len(keys))
        for start in range(0, len(keys), CHUNK):
            await self._chunk(keys[start : start + CHUNK], actor, result)
            if progress is not None:
                progress(min(start + CHUNK, len(keys)), len(keys))
        return result

    async def _chunk(self, keys: Sequence[Key], actor: str, result: ResubmitResult) -> None:
        now = self._clock()
        by_key = await get_retry_items(self._store, keys)
        items: list[RetryItem] = []
        for item in (by_key.get(k) for k in keys):
            if item is None:
                result.not_found += 1
            elif item.status == "resolved":
                result.skipped_already_resolved += 1
            elif item.status not in RESUBMITTABLE:
                result.skipped_in_flight += 1
            else:
                items.append(item)
        if not items:
            return
        delivered = await self._store.seen_many((i.change_id, i.flow_id) for i in items)
        changes = await self._store.get_changes(i.change_id for i in items)
        resolve = [i for i in items if (i.change_id, i.flow_id) in delivered]
        wanted = [i for i in items if (i.change_id, i.flow_id) not in delivered]
        result.missing_change += sum(1 for i in wanted if i.change_id not in changes)
        wanted = [i for i in wanted if i.change_id in changes]
        watchdog = now + self._schedule.outcome_timeout
        lease = f"resubmit:{actor}"

        def take(con: Con) -> tuple[set[Key], set[Key]]:
            """Compare-and-set every item in one transaction: only an item still as it was read
            (status and attempts) moves, so a concurrent resubmit or scheduler run wins or
            loses whole items, never half of one."""
            resolved = _returned(con, _RESOLVE, [now, *_as_keys(resolve)]) if resolve else set()
            params = [watchdog, lease, watchdog, actor, now, now, *_as_keys(wanted)]
            taken = _returned(con, _TAKE, params) if wanted else set()
            return resolved, taken

        resolved, taken_keys = await self._store.write(take)
        result.skipped_already_resolved += len(resolved)
        lost = [i for i in resolve if (i.change_id, i.flow_id) not in resolved]
        lost += [i for i in wanted if (i.change_id, i.flow_id) not in taken_keys]
        if lost:
            lost_keys = [(i.change_id, i.flow_id) for i in lost]
            current = await get_retry_items(self._store, lost_keys)
            for now_item in (current.get(k) for k in lost_keys):
                if now_item is not None and now_item.status == "resolved":
                    result.skipped_already_resolved += 1
                else:
                    result.skipped_in_flight += 1
        taken = [i for i in wanted if (i.change_id, i.flow_id) in taken_keys]
        if not taken:
            return
        records = [
            redrive_record(
                changes[i.change_id],
                Redrive(flow_id=i.flow_id, attempt=i.attempts + 1, kind="resubmit", actor=actor),
            )
            for i in taken
        ]
        try:
            await self._publish(records)
        except Exception:
            # put the items back as they were, so the operator can simply try again
            for item in taken:
                await self._store.compare_and_set_retry(
                    replace(item, updated_at=now), expected=("retrying",)
                )
            raise
        result.submitted += len(taken)
        result.submitted_items.extend((i.change_id, i.flow_id) for i in taken)

    async def _audit(self, actor: str, asked: dict[str, object], result: ResubmitResult) -> None:
        object_id = "filter" if "filter" in asked else "items"
        items = asked.get("items")
        if isinstance(items, list) and len(items) == 1:
            object_id = "/".join(items[0])
        await audit(
            self._store,
            actor=actor,
            object_kind=AUDIT_RETRY,
            object_id=object_id,
            action="resubmit",
            change={**asked, "result": result.counts()},
            at=self._clock(),
        )


async def search_retry(
    store: Store, filters: RetryFilter, search: str | None, page: Page
) -> RetryPage:
    """`Store.list_retry`, plus an optional case-insensitive text search over the item's
    change id, flow, integration, reason and last error."""
    if not search or not search.strip():
        return await store.list_retry(filters, page)
    clauses: list[str] = []
    params: list[object] = []
    for column in ("integration", "status", "category", "flow_id"):
        value = getattr(filters, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    escaped = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    text = ("change_id", "flow_id", "flow_name", "integration", "reason", "last_error")
    clauses.append("(" + " OR ".join(f"coalesce({c}, '') ILIKE ? ESCAPE '\\'" for c in text) + ")")
    params.extend([pattern] * len(text))
    where = " AND ".join(clauses)
    columns = ", ".join(_ITEM_COLUMNS)

    def read(con: Con) -> RetryPage:
        total = con.execute(f"SELECT count(*) FROM retry_items WHERE {where}", params).fetchall()
        rows = con.execute(
            f"SELECT {columns} FROM retry_items WHERE {where} "
            "ORDER BY updated_at DESC, change_id, flow_id LIMIT ? OFFSET ?",
            [*params, page.limit, page.offset],
        ).fetchall()
        items = tuple(RetryItem(**dict(zip(_ITEM_COLUMNS, r, strict=True))) for r in rows)
        return RetryPage(items, int(total[0][0]) if total else 0)

    return await store.read(read)


def _listed(keys: Sequence[Key]) -> list[list[str]]:
    return [[c, f] for c, f in keys[:AUDIT_KEYS_MAX]]


def _filter_dict(filters: RetryFilter) -> dict[str, str]:
    return {k: v for k, v in asdict(filters).items() if v is not None}


def parse_filter(data: dict[str, object]) -> RetryFilter:
    """A `RetryFilter` from JSON or CLI options; raises ValueError naming a bad key or value."""
    allowed = {"integration", "status", "category", "flow_id"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown filter key(s): {', '.join(unknown)}")
    values: dict[str, str | None] = {}
    for key in allowed:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"filter {key} must be a string")
        values[key] = value or None
    status, category = values["status"], values["category"]
    if status is not None and status not in ("pending", "retrying", "abandoned", "resolved"):
        raise ValueError(f"status must be pending, retrying, abandoned or resolved, not {status!r}")
    if category is not None and category not in ("data", "technical"):
        raise ValueError(f"category must be data or technical, not {category!r}")
    return RetryFilter(
        integration=values["integration"],
        status=status,  # type: ignore[arg-type]
        category=category,  # type: ignore[arg-type]
        flow_id=values["flow_id"],
    )
