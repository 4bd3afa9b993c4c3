"""Live rollups: the hourly figures of the rows the ledger still keeps, folded a few hours at a
time by control's timer, so a dashboard over a month reads a few thousand rollup rows instead of
ten million outcomes.

An hour is *folded* while `live_hours` lists it; its rows in `live_outcomes`, `live_attempts`
and `live_keys` are then exactly what the dashboards' definitions count of the hour's kept rows
(`delivery_state` by `processed_at`, `outcome_log` by `processed_at`). Kept rows change after
they are folded (a retry resolves and the pair moves to a later hour, an outcome is recorded
late, a replay becomes a pair's state), so exactness rests on finding the hours a change may
have touched, which the recorder's own columns tell without any hook in it:

- every write of a pair's state sets `delivery_state.updated_at` to the writer's time, and every
  time the pair's state ever had lies between its `first_processed_at` and its `processed_at`
  (a final state is only replaced by a newer one; a queued state counts nowhere), so the hours
  from the one to the other are all it can have left or entered;
- every attempt row is inserted with `recorded_at` set to the writer's time.

Writes go through one writer thread, one transaction after another, so a write committed after
a fold's transaction carries a time at or after the fold's (`mark`): the hours such writes touch
are *dirty*. The next fold takes them out (`unfold`) and folds them again from the rows; a
reader in between leaves them to the ledger (`dirty_hours`, used by `stream.metrics.live`), so
the figures are exact at every moment, not only after a fold. `SLACK` is subtracted from the
mark against a clock stepped back a little. Retention (`stream.store.retention`) unfolds the
hours it drops rows from, in the same transaction; an erasure (rare, it rewrites registration
codes and reasons in place) unfolds everything, noticed by its audit row's sequence number.

Each step does bounded work: it unfolds what changed and folds at most `budget` hours, newest
first (the 24 h dashboards are served first after a start), in set-based statements on the
writer thread, between the recorder's batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stream.metrics.definitions import DONE, IN_FLIGHT_STATUS, reason_code_sql
from stream.store.base import first, registered
from stream.store.writer import Con

HOUR = timedelta(hours=1)
SLACK = timedelta(minutes=2)
"""Rows written up to this long before the mark still count as changed since it (a clock
stepped back by less). The hours they touch are taken out by every step within it, so an hour
written just before a step is folded for good one slack later."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATE = "fold"

_ERASURES = "SELECT max(seq) FROM config_audit_log WHERE object = 'ledger' AND action = 'erase'"

_DIRTY = """
    SELECT DISTINCT h.hour FROM (
        SELECT unnest(range(date_trunc('hour', first_processed_at),
                            date_trunc('hour', processed_at) + INTERVAL 1 HOUR,
                            INTERVAL 1 HOUR)) AS hour
        FROM delivery_state WHERE updated_at >= $since
        UNION ALL
        SELECT date_trunc('hour', processed_at) FROM outcome_log WHERE recorded_at >= $since
    ) h
    SEMI JOIN live_hours l ON l.hour = h.hour
    WHERE h.hour >= $lo AND h.hour < $hi
"""
"""Folded hours in [lo, hi) that a write since `since` may have changed (see the module)."""

_LIVE_TABLES = ("live_outcomes", "live_attempts", "live_keys", "live_in_flight")


@dataclass(frozen=True, slots=True)
class FoldState:
    mark: datetime | None
    """The writer's time at the last fold; None: never folded."""
    erasures: int | None
    """The newest erasure's audit sequence number the fold saw."""


@dataclass(frozen=True, slots=True)
class FoldReport:
    folded: int
    unfolded: int
    reset: bool
    left: int
    """Complete hours with rows still not folded after this step."""


def floor_hour(at: datetime) -> datetime:
    return EPOCH + ((at - EPOCH) // HOUR) * HOUR


def ceil_hour(at: datetime) -> datetime:
    low = floor_hour(at)
    return low if low == at else low + HOUR


def state(con: Con) -> FoldState:
    row = first(
        con.execute("SELECT mark, seq FROM live_fold_state WHERE name = ?", [STATE]).fetchall()
    )
    return FoldState(None, None) if row is None else FoldState(row[0], row[1])


def erasures(con: Con) -> int | None:
    row = first(con.execute(_ERASURES).fetchall())
    return None if row is None or row[0] is None else int(row[0])


def dirty_hours(con: Con, since: datetime, lo: datetime, hi: datetime) -> list[datetime]:
    """Folded hours in [lo, hi) that writes at or after `since` may have changed."""
    rows = con.execute(_DIRTY, {"since": since, "lo": lo, "hi": hi}).fetchall()
    return sorted(r[0] for r in rows)


def folded_hours(con: Con, lo: datetime, hi: datetime) -> list[datetime]:
    rows = con.execute(
        "SELECT hour FROM live_hours WHERE hour >= ? AND hour < ? ORDER BY hour", [lo, hi]
    ).fetchall()
    return [r[0] for r in rows]


def clean_hours(con: Con, lo: datetime, hi: datetime) -> list[datetime]:
    """Folded hours in [lo, hi) whose live rollups are exact now: none if an erasure came after
    the last fold, else the folded ones no write since the last fold may have changed."""
    folded = state(con)
    if folded.mark is None or folded.erasures != erasures(con):
        return []
    hours = folded_hours(con, lo, hi)
    if not hours:
        return []
    dirty = set(dirty_hours(con, folded.mark - SLACK, lo, hi))
    return [h for h in hours if h not in dirty]


def runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours as half-open ranges of consecutive hours."""
    out: list[tuple[datetime, datetime]] = []
    for h in sorted(hours):
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + HOUR)
        else:
            out.append((h, h + HOUR))
    return out


def range_condition(column: str, ranges: list[tuple[Any, Any]]) -> tuple[str, list[Any]]:
    """SQL `column` in any of `ranges` (half-open) and its parameters; `false` for none."""
    if not ranges:
        return "false", []
    parts = [f"({column} >= ? AND {column} < ?)" for _ in ranges]
    params: list[Any] = [v for r in ranges for v in r]
    return "(" + " OR ".join(parts) + ")", params


def named_condition(
    column: str, ranges: list[tuple[Any, Any]], name: str
) -> tuple[str, dict[str, Any]]:
    """`range_condition` with named parameters `name0`, `name1`, ... (for statements that name
    theirs: DuckDB takes one style per statement)."""
    if not ranges:
        return "false", {}
    parts, params = [], {}
    for i, (lo, hi) in enumerate(ranges):
        parts.append(f"({column} >= ${name}{2 * i} AND {column} < ${name}{2 * i + 1})")
        params[f"{name}{2 * i}"], params[f"{name}{2 * i + 1}"] = lo, hi
    return "(" + " OR ".join(parts) + ")", params


def hour_number(at: datetime) -> int:
    """The hour `at` falls in, counted from the epoch (`live_keys.hour`)."""
    return (at - EPOCH) // HOUR


def unfold(con: Con, hours: list[datetime]) -> int:
    """Take `hours` out of the live rollups (their figures come from the ledger again)."""
    if not hours:
        return 0
    spans = runs(hours)
    cond, params = range_condition("hour", spans)
    numbered, numbers = range_condition(
        "hour", [(hour_number(lo), hour_number(hi)) for lo, hi in spans]
    )
    for table in (*_LIVE_TABLES, "live_hours"):
        if table == "live_keys":
            con.execute(f"DELETE FROM {table} WHERE {numbered}", numbers)
        else:
            con.execute(f"DELETE FROM {table} WHERE {cond}", params)
    return len(hours)


def unfold_all(con: Con) -> None:
    for table in (*_LIVE_TABLES, "live_hours"):
        con.execute(f"DELETE FROM {table}")


_FOLD_OUTCOMES = f"""
    INSERT INTO live_outcomes
    SELECT hour, mode, status, action, lead_result,
           {reason_code_sql()}, category, sum(n)
    FROM (SELECT date_trunc('hour', processed_at) AS hour, mode, status, action, lead_result,
                 category, reason, count(*) AS n
          FROM delivery_state WHERE {{cond}} AND {DONE} GROUP BY ALL)
    GROUP BY ALL
"""
"""Grouped by reason text first: the reason's regular expressions run once per distinct text."""

HOUR_US = 3_600_000_000
HOUR_OF = "epoch_us({}) // 3600000000"
"""SQL: the hour (counted from the epoch) of a timestamp, as `live_keys` numbers them."""
CHANGE, REGISTRATION, RETRIED_PAIR = 0, 1, 2
"""`live_keys.kind`."""

_FOLD_STATE_KEYS = f"""
    INSERT INTO live_keys
    SELECT DISTINCT {HOUR_OF.format("processed_at")}, mode = 'test', {CHANGE}, hash(change_id),
           NULL
    FROM delivery_state WHERE {{cond}} AND {DONE} AND mode IN ('live', 'test')
    UNION ALL
    SELECT DISTINCT {HOUR_OF.format("processed_at")}, mode = 'test', {REGISTRATION},
           hash(registration_code), NULL
    FROM delivery_state
    WHERE {{cond}} AND {DONE} AND mode IN ('live', 'test') AND registration_code IS NOT NULL
"""
"""Only the two modes the dashboards know (`stream.metrics.definitions.MODES`) have keys."""

_FOLD_IN_FLIGHT = f"""
    INSERT INTO live_in_flight
    SELECT date_trunc('hour', processed_at), mode, lead_result, count(*), min(processed_at)
    FROM delivery_state WHERE {{cond}} AND status = '{IN_FLIGHT_STATUS}' GROUP BY ALL
"""
"""Pairs in flight (not outcomes, so not in `live_outcomes`): a queued state is rewritten when
answered or queued again, each write setting `updated_at` and keeping `first_processed_at` at or
before the queued row's time, so the hours it leaves are found dirty as an outcome's are."""

_FOLD_ATTEMPTS = """
    INSERT INTO live_attempts
    SELECT date_trunc('hour', processed_at), mode, status, attempt > 1 AND NOT replayed,
           possible_repeat, count(*)
    FROM outcome_log WHERE {cond} GROUP BY ALL
"""

_FOLD_RETRIED = f"""
    INSERT INTO live_keys
    SELECT DISTINCT {HOUR_OF.format("processed_at")}, mode = 'test', {RETRIED_PAIR},
           hash(change_id, flow_id), NULL
    FROM outcome_log
    WHERE {{cond}} AND attempt > 1 AND NOT replayed AND status <> '{IN_FLIGHT_STATUS}'
      AND mode IN ('live', 'test')
"""

_OLDEST = """
    SELECT least((SELECT min(processed_at) FROM delivery_state),
                 (SELECT min(processed_at) FROM outcome_log))
"""


def _write_state(con: Con, mark: datetime, seq: int | None) -> None:
    con.execute(
        "INSERT INTO live_fold_state VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET mark = excluded.mark, seq = excluded.seq",
        [STATE, mark, seq],
    )


def fold_hours(con: Con, hours: list[datetime], at: datetime) -> None:
    """Fold `hours` (not folded now) from the rows the ledger keeps."""
    for lo, hi in runs(hours):
        cond, params = range_condition("processed_at", [(lo, hi)])
        for sql, times in (
            (_FOLD_OUTCOMES, 1),
            (_FOLD_IN_FLIGHT, 1),
            (_FOLD_STATE_KEYS, 2),
            (_FOLD_ATTEMPTS, 1),
            (_FOLD_RETRIED, 1),
        ):
            con.execute(sql.format(cond=cond), params * times)
    if hours:
        con.executemany("INSERT INTO live_hours VALUES (?, ?)", [[h, at] for h in hours])
        _link(con, hours)


_LINK = """
    UPDATE live_keys SET prev = n.prev
    FROM (SELECT hour, test, kind, key,
                 lag(hour) OVER (PARTITION BY test, kind, key ORDER BY hour) AS prev
          FROM live_keys
          SEMI JOIN (SELECT DISTINCT test, kind, key FROM live_keys
                     WHERE {new} OR {pointing}) a USING (test, kind, key)) n
    WHERE live_keys.hour = n.hour AND live_keys.test = n.test AND live_keys.kind = n.kind
      AND live_keys.key = n.key AND live_keys.prev IS DISTINCT FROM n.prev
"""


def _link(con: Con, hours: list[datetime]) -> None:
    """Set `prev` right for every key the folded `hours` hold or held: the keys of their new
    rows, and the keys of rows whose `prev` pointed into them (an earlier fold of the hour).
    A `prev` pointing to an hour taken out and not folded again yet stays as it was: readers
    treat a `prev` outside the clean hours as unknown (`stream.metrics.live`)."""
    spans = [(hour_number(lo), hour_number(hi)) for lo, hi in runs(hours)]
    new, new_params = range_condition("hour", spans)
    pointing, pointing_params = range_condition("prev", spans)
    con.execute(_LINK.format(new=new, pointing=pointing), new_params + pointing_params)


_CHANGED_PAIRS = "SELECT change_id, flow_id, mode FROM delivery_state WHERE updated_at >= ?"

_RETRY_MODES_CHANGED = """
    UPDATE retry_items SET mode = c.mode FROM changed_pairs c
    WHERE retry_items.change_id = c.change_id AND retry_items.flow_id = c.flow_id
      AND retry_items.mode IS DISTINCT FROM c.mode
"""
"""The changed pairs are read first (as Arrow, so DuckDB knows how few they are and joins the
items to them): with the state's subquery in the UPDATE it built its hash table over every item,
286 against 84-139 ms for 40,000 changed pairs over 1.3M items."""

_RETRY_MODES_UNREAD = """
    UPDATE retry_items SET mode = coalesce(d.mode, '')
    FROM (SELECT r.change_id, r.flow_id, d.mode
          FROM (SELECT change_id, flow_id FROM retry_items WHERE mode IS NULL) r
          LEFT JOIN delivery_state d USING (change_id, flow_id)) d
    WHERE retry_items.change_id = d.change_id AND retry_items.flow_id = d.flow_id
"""


def fill_retry_modes(con: Con, since: datetime | None) -> None:
    """Set `retry_items.mode` to the mode of the pair's state ('' for none), as the fold's
    transaction sees it: for the items whose pair's state was written since `since` (the last
    fold's mark less the slack; every state write sets `updated_at`), then for the items not read
    yet. A new item's pair has its state written in the same batch, so after the first fill the
    second statement (a join with every state) runs only for the rare item written alone.

    Readers (`stream.metrics.queries`) take an item's mode from here unless its pair's state was
    written since the mark, when they read it from the state; an item with no mode yet is joined
    with the outcomes as before. Nothing deletes a pair's state while its item is kept
    (retention holds such pairs; an erasure deletes the item too), so a filled mode stays the
    state's mode until a write of the state, which the readers see by its `updated_at`."""
    if since is not None:
        changed = con.sql(_CHANGED_PAIRS, params=[since]).to_arrow_table()
        if changed.num_rows:
            with registered(con, "changed_pairs", changed):
                con.execute(_RETRY_MODES_CHANGED)
    row = first(con.execute("SELECT count(*) FROM retry_items WHERE mode IS NULL").fetchall())
    if row is not None and row[0]:
        con.execute(_RETRY_MODES_UNREAD)


def fold_step(con: Con, *, now: datetime, budget: int = 24) -> FoldReport:
    """One bounded step, in the caller's (the writer's) transaction: unfold what changed since
    the last step, then fold up to `budget` complete hours before `now`, newest first."""
    (mark,) = first(con.execute("SELECT now()").fetchall()) or (None,)
    assert isinstance(mark, datetime)
    before = state(con)
    seen = erasures(con)
    reset = before.mark is not None and before.erasures != seen
    unfolded = 0
    if reset:
        unfold_all(con)
    elif before.mark is not None:
        unfolded = unfold(
            con, dirty_hours(con, before.mark - SLACK, EPOCH, floor_hour(mark) + HOUR)
        )
    (oldest,) = first(con.execute(_OLDEST).fetchall()) or (None,)
    todo: list[datetime] = []
    if oldest is not None:
        last = floor_hour(now)  # hours ending at or before now are complete
        rows = con.execute(
            """
            SELECT h FROM (
                SELECT unnest(range(?::TIMESTAMPTZ, ?::TIMESTAMPTZ, INTERVAL 1 HOUR)) AS h)
            ANTI JOIN live_hours l ON l.hour = h ORDER BY h DESC
            """,
            [floor_hour(oldest), last],
        ).fetchall()
        todo = [r[0] for r in rows]
    chosen = todo[:budget]
    fold_hours(con, chosen, mark)
    fill_retry_modes(con, None if before.mark is None else before.mark - SLACK)
    _write_state(con, mark, seen)
    return FoldReport(len(chosen), unfolded, reset, len(todo) - len(chosen))
