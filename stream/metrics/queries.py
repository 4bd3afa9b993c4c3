"""The dashboard's SQL: Summary and Troubleshooting for one mode and window.

Each figure is read from the stable views (`outcomes`, `outcome_attempts`, `retry_queue`,
`api_calls`) with the window as bound parameters on `processed_at`/`started_at`, so DuckDB can
skip whole row groups by their min/max (rows arrive roughly in time order). The functions taking
a cursor are synchronous and run on a store reader thread; `summary` and `troubleshooting` are
the coroutines the API calls. Results are JSON-ready dicts (times as ISO 8601 UTC).

Rows retention dropped (`stream.store.retention`) are counted from the hourly rollups: each
figure adds the rollup hours that start in the window to the rows still kept, and a distinct
count (changes, registrations, retried pairs) counts the union of the kept rows' key hashes and
the rollup's. Latency percentiles and the busiest 20 s come from the calls still kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stream.messages import VERIFIED_IN_MARKETO
from stream.metrics import live
from stream.metrics.certain_sources import CertainSourceStatus
from stream.metrics.definitions import (
    DONE,
    FAILURE_CATEGORIES,
    IN_FLIGHT_STATUS,
    NOT_TRIGGERED_STATUSES,
    OPEN_RETRY_STATUSES,
    QUANTILES,
    RATE_WINDOW,
    RETRY_STATUSES,
    Mode,
    Window,
    call_error_code_sql,
    call_is_error_sql,
    rate_budget,
    reason_code_sql,
)
from stream.metrics.lag import LagReading
from stream.metrics.recovery import RecoveryStatus
from stream.store import rollup_fold
from stream.store.base import registered
from stream.store.store import Store
from stream.store.writer import Con

_US = 1_000_000


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """What only the running services know; None means unknown."""

    last_change_seen_at: datetime | None = None
    consumer_lag: LagReading | None = None
    """Lag per topic and reading group (stream/metrics/consumer_lag.py); None: not read."""
    workers_alive: int | None = None
    """Pipeline workers heard from lately (stream/heartbeats.py); None: not known."""
    recovery: RecoveryStatus | None = None
    """The control's recovery service (stream/control/recovery.py), when it runs."""
    certain_sources: tuple[CertainSourceStatus, ...] = ()
    """Each configured Certain source's poller (stream/control/certain_poller.py)."""
    retention: Mapping[str, Any] | None = None
    """The pruner's settings and totals (stream/control/retention.py `snapshot`)."""


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _micros(step: timedelta) -> int:
    return int(step.total_seconds() * _US)


def period_json(window: Window) -> dict[str, Any]:
    return {
        "label": window.label,
        "from": iso(window.start),
        "to": iso(window.end),
        "bucket_seconds": int(window.bucket.total_seconds()),
    }


def _buckets(
    window: Window, rows: list[tuple[Any, ...]], names: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Every bucket of the window (empty ones as zeros) from rows of (bucket index, *values)."""
    step = window.bucket
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    found = {int(r[0]): r[1:] for r in rows}
    out = []
    for start in window.bucket_starts():
        values = found.get((start - epoch) // step, (0,) * len(names))
        out.append({"start": iso(start), **{n: int(v) for n, v in zip(names, values, strict=True)}})
    return out


def _add_buckets(*parts: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows of (bucket, *counts) from kept rows and rollups, added per bucket."""
    added: dict[int, list[int]] = {}
    for rows in parts:
        for bucket, *counts in rows:
            into = added.setdefault(int(bucket), [0] * len(counts))
            for i, n in enumerate(counts):
                into[i] += int(n or 0)
    return [(bucket, *counts) for bucket, counts in added.items()]


def _one(con: Con, sql: str, params: list[Any]) -> tuple[Any, ...]:
    rows = con.execute(sql, params).fetchall()
    return tuple(rows[0])


# -- Summary --------------------------------------------------------------------------------

_IN_WINDOW = f"mode = ? AND processed_at >= ? AND processed_at < ? AND {DONE}"
"""Outcomes of a mode in the window; deliveries still in flight are not outcomes yet."""

_IN_HOURS = "mode = ? AND hour >= ? AND hour < ?"
"""Rollup hours of a mode starting in the window (rollups hold no delivery in flight)."""

_ROLLUP_TOTALS = f"""
    SELECT coalesce(sum(pairs) FILTER (WHERE status = 'delivered'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered' AND action = 'form_post'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered' AND lead_result = 'created'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered' AND lead_result = 'updated'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered'
                                       AND action = 'update_program_status'
                                       AND lead_result <> 'not_changed'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered'
                                       AND action = 'update_program_status'
                                       AND lead_result = 'not_changed'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'failed' AND category = 'data'), 0)
    FROM rollup_outcomes WHERE {_IN_HOURS}
"""

_LIVE_TOTALS = """
    SELECT coalesce(sum(pairs) FILTER (WHERE status = 'delivered'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered' AND action = 'form_post'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered' AND lead_result = 'created'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered' AND lead_result = 'updated'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered'
                                       AND action = 'update_program_status'
                                       AND lead_result IS DISTINCT FROM 'not_changed'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'delivered'
                                       AND action = 'update_program_status'
                                       AND lead_result = 'not_changed'), 0),
           coalesce(sum(pairs) FILTER (WHERE status = 'failed' AND category = 'data'), 0)
    FROM live_outcomes WHERE mode = ? AND {live}
"""
"""`_SUMMARY_TOTALS` (and data failures) of the live rollups' clean hours: the same conditions
on the same values (NULL is kept there)."""

_LIVE_REASONS = """
    SELECT status, reason_code, sum(pairs) FROM live_outcomes
    WHERE mode = ? AND {live} AND status <> 'delivered' GROUP BY ALL
"""

_ROLLUP_REASONS = f"""
    SELECT status, reason_code, sum(pairs) FROM rollup_outcomes
    WHERE {_IN_HOURS} AND status <> 'delivered' GROUP BY ALL
"""

_SUMMARY_TOTALS = f"""
    SELECT count(*) FILTER (WHERE status = 'delivered'),
           count(*) FILTER (WHERE status = 'delivered' AND action = 'form_post'),
           count(*) FILTER (WHERE status = 'delivered' AND lead_result = 'created'),
           count(*) FILTER (WHERE status = 'delivered' AND lead_result = 'updated'),
           count(*) FILTER (WHERE status = 'delivered' AND action = 'update_program_status'
                            AND lead_result IS DISTINCT FROM 'not_changed'),
           count(*) FILTER (WHERE status = 'delivered' AND action = 'update_program_status'
                            AND lead_result = 'not_changed')
    FROM outcomes WHERE mode = ? AND {{raw}} AND {DONE}
"""
"""Delivered pairs, form posts, leads created and updated, and the program status changes
Marketo made or left as they were (lead in or past it): one scan of the window."""

_SUMMARY_REASONS = f"""
    SELECT status, {reason_code_sql()} AS code, sum(n) FROM (
        SELECT status, category, reason, count(*) AS n
        FROM outcomes WHERE mode = ? AND {{raw}} AND {DONE} AND status <> 'delivered'
        GROUP BY ALL)
    GROUP BY ALL
"""
"""Not-triggered pairs by reason code: the texts are grouped first, so the reason's regular
expressions run once per distinct text, not once per pair."""

_NOT_TRIGGERED_IN = ", ".join(f"'{s}'" for s in NOT_TRIGGERED_STATUSES)

_SUMMARY_ACTIVITY = f"""
    WITH raw AS (
        SELECT epoch_us(processed_at) // $step AS bucket, hash(change_id) AS c,
               CASE WHEN registration_code IS NOT NULL THEN hash(registration_code) END AS r,
               (status = 'delivered')::BIGINT AS t,
               (status IN ({_NOT_TRIGGERED_IN}))::BIGINT AS nt
        FROM outcomes
        WHERE mode = $mode AND {{raw}} AND {DONE}),
    pruned AS (
        SELECT epoch_us(hour) // $step AS bucket,
               CASE kind WHEN 'change' THEN 0 ELSE 1 END AS kind, key
        FROM rollup_keys
        WHERE mode = $mode AND hour >= $start AND hour < $end
          AND kind IN ('change', 'registration')),
    unknown AS (
        SELECT hour // $hours AS bucket, kind, key,
               prev >= hour // $hours * $hours AS in_bucket, prev >= $first_hour AS in_window
        FROM live_keys
        WHERE test = $test AND {{keys}} AND kind IN (0, 1)
          AND prev IS NOT NULL AND NOT ({{keys_prev}})),
    rest_bucket AS (
        SELECT DISTINCT bucket, key FROM (
            SELECT bucket, c AS key FROM raw
            UNION ALL SELECT bucket, key FROM pruned WHERE kind = 0
            UNION ALL SELECT bucket, key FROM unknown WHERE kind = 0 AND in_bucket)),
    rest_window AS (
        SELECT DISTINCT kind, key FROM (
            SELECT 0 AS kind, c AS key FROM raw
            UNION ALL SELECT 1, r FROM raw WHERE r IS NOT NULL
            UNION ALL SELECT kind, key FROM pruned
            UNION ALL SELECT kind, key FROM unknown WHERE in_window)),
    firsts AS (
        SELECT f.bucket, f.kind,
               count(*) FILTER (WHERE f.kind = 0 AND f.first_in_bucket) AS bucket_firsts,
               count(*) FILTER (WHERE f.kind = 0 AND f.first_in_bucket
                                AND rb.key IS NOT NULL) AS bucket_both,
               count(*) FILTER (WHERE f.first_in_window) AS window_firsts,
               count(*) FILTER (WHERE f.first_in_window AND rw.key IS NOT NULL) AS window_both
        FROM (SELECT hour // $hours AS bucket, kind, key,
                     prev IS NULL OR prev < hour // $hours * $hours AS first_in_bucket,
                     prev IS NULL OR prev < $first_hour AS first_in_window
              FROM live_keys WHERE test = $test AND {{keys}} AND kind IN (0, 1)) f
        LEFT JOIN rest_bucket rb ON rb.bucket = f.bucket AND rb.key = f.key AND f.kind = 0
        LEFT JOIN rest_window rw ON rw.kind = f.kind AND rw.key = f.key
        GROUP BY ALL),
    changes AS (
        SELECT bucket, sum(n) AS n FROM (
            SELECT bucket, bucket_firsts - bucket_both AS n FROM firsts WHERE kind = 0
            UNION ALL SELECT bucket, count(*) FROM rest_bucket GROUP BY bucket)
        GROUP BY bucket),
    pairs AS (
        SELECT bucket, sum(t) AS t, sum(nt) AS nt FROM (
            SELECT bucket, t, nt FROM raw
            UNION ALL
            SELECT epoch_us(hour) // $step,
                   CASE WHEN status = 'delivered' THEN pairs ELSE 0 END,
                   CASE WHEN status IN ({_NOT_TRIGGERED_IN}) THEN pairs ELSE 0 END
            FROM live_outcomes WHERE mode = $mode AND {{live}}
            UNION ALL
            SELECT epoch_us(hour) // $step,
                   CASE WHEN status = 'delivered' THEN pairs ELSE 0 END,
                   CASE WHEN status IN ({_NOT_TRIGGERED_IN}) THEN pairs ELSE 0 END
            FROM rollup_outcomes WHERE mode = $mode AND hour >= $start AND hour < $end)
        GROUP BY bucket),
    window_keys AS (
        SELECT kind, sum(n) AS n FROM (
            SELECT kind, window_firsts - window_both AS n FROM firsts
            UNION ALL SELECT kind, count(*) FROM rest_window GROUP BY kind)
        GROUP BY kind)
    SELECT false, bucket, coalesce(c.n, 0), NULL, coalesce(p.t, 0), coalesce(p.nt, 0)
    FROM changes c FULL JOIN pairs p USING (bucket)
    UNION ALL
    SELECT true, NULL,
           coalesce((SELECT n FROM window_keys WHERE kind = 0), 0),
           coalesce((SELECT n FROM window_keys WHERE kind = 1), 0), NULL, NULL
"""
r"""Per bucket: distinct changes, triggered and not-triggered pairs; over the whole window (the
row whose first column is true): distinct changes and registrations. Kept rows, the live
rollups' clean hours and pruned hours' key hashes count as one set.

A distinct count over the clean hours is a filtered count, not a grouping of millions of hashes:
a key's row in a clean hour whose `prev` (the previous folded hour holding the key) lies before
the bucket (or the window) is the key's first row there, and no other row of the key is. Every
key of the clean hours has such a row, or a row whose `prev` is inside the bucket (window) but
not clean, so unknown. The rest (keys of the ledger's rows, pruned hours' keys, and the keys of
those rows after an unknown `prev`) is a small set, counted distinct and added less the keys
both sets hold: |first rows ∪ rest| = |first rows| + |rest - first rows|. One scan of the clean
hours' keys counts the first rows and, joined to the small set, those it also holds."""

_LAST_RECORDED = f"SELECT max(processed_at) FROM outcomes WHERE mode = ? AND {DONE}"

_LAST_RECORDED_SINCE = f"{_LAST_RECORDED} AND processed_at >= ?"
"""The same over outcomes since a time: DuckDB skips the row groups older than it by their
min/max, so a ledger that recorded anything in the window is not scanned whole for it. Any row
since a time holds the newest of all, so the window's last hour is tried first, then the window,
then everything."""

_IN_FLIGHT = f"""
    SELECT count(*), min(processed_at) FROM outcomes
    WHERE mode = ? AND status = '{IN_FLIGHT_STATUS}'
"""

_IN_FLIGHT_LIVE = f"""
    SELECT coalesce(sum(n), 0), min(first) FROM (
        SELECT count(*) AS n, min(processed_at) AS first FROM outcomes
        WHERE mode = ? AND status = '{IN_FLIGHT_STATUS}' AND {{raw}}
        UNION ALL
        SELECT sum(pairs), min(oldest) FROM live_in_flight WHERE mode = ? AND {{clean}})
"""
"""`_IN_FLIGHT` from the live rollups' clean hours (`live_in_flight`) and the rows of every other
instant (`stream.metrics.live.all_time`): the states' status column is not read whole."""


_REPEATS = """
    SELECT count(*) FROM outcome_attempts
    WHERE mode = ? AND possible_repeat AND processed_at >= ? AND processed_at < ?
"""


_VERIFIED = f"""
    SELECT (SELECT count(*) FROM outcomes
            WHERE mode = ? AND lead_result = '{VERIFIED_IN_MARKETO}'
              AND processed_at >= ? AND processed_at < ?)
         + (SELECT coalesce(sum(pairs), 0) FROM rollup_outcomes
            WHERE {_IN_HOURS} AND lead_result = '{VERIFIED_IN_MARKETO}')
"""


def verified_after_crash_on(con: Con, mode: Mode, start: datetime, end: datetime) -> int:
    """Pairs whose unanswered call Marketo's activity log showed it had run, recorded delivered
    instead of sent again: the repeats verification avoided."""
    return int(_one(con, _VERIFIED, [mode, start, end, mode, start, end])[0])


def repeats_after_crash_on(con: Con, mode: Mode, start: datetime, end: datetime) -> int:
    """Deliveries made again after a crash for pairs marked "sending" without Marketo's answer
    on record: Marketo may have run each of them twice (the window a crash cannot close)."""
    return int(_one(con, _REPEATS, [mode, start, end])[0])


def in_flight_on(con: Con, mode: Mode, now: datetime | None = None) -> dict[str, Any]:
    """Deliveries of `mode` routed to Marketo and not answered yet (pairs whose state is
    queued), and the oldest of them."""
    parts, raw, raw_params = live.all_time(con)
    if parts.clean:
        clean, clean_params = parts.rollup_condition()
        count, oldest = _one(
            con,
            _IN_FLIGHT_LIVE.format(raw=raw, clean=clean),
            [mode, *raw_params, mode, *clean_params],
        )
    else:
        count, oldest = _one(con, _IN_FLIGHT, [mode])
    now = now or datetime.now(UTC)
    return {
        "queued": int(count),
        "oldest_queued_at": iso(oldest),
        "oldest_queued_age_s": None if oldest is None else max(0.0, (now - oldest).total_seconds()),
    }


_ACTIVE_FLOWS = """
    SELECT count(*) FROM config_objects
    WHERE kind = 'flow' AND coalesce(body->>'active', 'false') = 'true'
      AND coalesce(body->>'mode', 'test') = ?
"""


def summary_on(
    con: Con,
    mode: Mode,
    window: Window,
    *,
    active_flows: int | None = None,
    runtime: RuntimeStatus | None = None,
) -> dict[str, Any]:
    """The Summary tab; `active_flows` None = count the stored flow objects of `mode`."""
    runtime = runtime or RuntimeStatus()
    span = [mode, window.start, window.end]
    parts = live.split(con, window)
    raw, raw_params = parts.raw_condition()
    folded, folded_params = parts.rollup_condition()
    raw_span, live_span = [mode, *raw_params], [mode, *folded_params]
    triggered, forms, created, updated, program_changed, program_not_changed = _one(
        con, _SUMMARY_TOTALS.format(raw=raw), raw_span
    )
    for more in (
        _one(con, _ROLLUP_TOTALS, span),
        _one(con, _LIVE_TOTALS.format(live=folded), live_span),
    ):
        r_triggered, r_forms, r_created, r_updated, r_changed, r_not_changed, _ = more
        triggered, forms = triggered + r_triggered, forms + r_forms
        created, updated = created + r_created, updated + r_updated
        program_changed, program_not_changed = (
            program_changed + r_changed,
            program_not_changed + r_not_changed,
        )
    not_triggered: dict[str, Any] = {
        "total": 0,
        "not_activated": {"total": 0, "by_reason": {}},
        "filtered_out": {"total": 0, "by_reason": {}},
        "failed": {"total": 0, "by_category": {c: 0 for c in FAILURE_CATEGORIES}},
    }
    other: dict[str, int] = {}
    reasons = con.execute(_SUMMARY_REASONS.format(raw=raw), raw_span).fetchall()
    reasons += con.execute(_ROLLUP_REASONS, span).fetchall()
    reasons += con.execute(_LIVE_REASONS.format(live=folded), live_span).fetchall()
    for status, code, count in sorted(reasons):
        n = int(count)
        if status in NOT_TRIGGERED_STATUSES:
            group = not_triggered[status]
            group["total"] += n
            key = "by_category" if status == "failed" else "by_reason"
            group[key][code] = group[key].get(code, 0) + n
            not_triggered["total"] += n
        else:
            other[status] = other.get(status, 0) + n
    changes, registrations, activity = 0, 0, []
    raw_named, raw_values = rollup_fold.named_condition("processed_at", parts.raw, "raw")
    live_named, live_values = rollup_fold.named_condition("hour", parts.clean, "live")
    numbered = parts.numbered()
    keys_named, keys_values = rollup_fold.named_condition("hour", numbered, "n")
    keys_prev, _ = rollup_fold.named_condition("prev", numbered, "n")
    step = _micros(window.bucket)
    for whole, bucket, n_changes, n_registrations, n_triggered, n_not in con.execute(
        _SUMMARY_ACTIVITY.format(
            raw=raw_named, live=live_named, keys=keys_named, keys_prev=keys_prev
        ),
        {
            "step": step,
            "hours": max(1, step // rollup_fold.HOUR_US),
            "first_hour": rollup_fold.hour_number(rollup_fold.ceil_hour(window.start)),
            "mode": mode,
            "test": mode == "test",
            "start": window.start,
            "end": window.end,
            **raw_values,
            **live_values,
            **keys_values,
        },
    ).fetchall():
        if whole:
            changes, registrations = n_changes, n_registrations
        else:
            activity.append((bucket, n_changes, n_triggered, n_not))
    if active_flows is None:
        active_flows = int(_one(con, _ACTIVE_FLOWS, [mode])[0])
    (last_recorded,) = _one(
        con, _LAST_RECORDED_SINCE, [mode, max(window.start, window.end - rollup_fold.HOUR)]
    )
    if last_recorded is None:
        (last_recorded,) = _one(con, _LAST_RECORDED_SINCE, [mode, window.start])
    if last_recorded is None:
        (last_recorded,) = _one(con, _LAST_RECORDED, [mode])
    in_flight = in_flight_on(con, mode)
    lag = runtime.consumer_lag
    return {
        "mode": mode,
        "period": period_json(window),
        "changes_processed": int(changes),
        "unique_registrations": int(registrations),
        "actions_triggered": int(triggered),
        "actions_not_triggered": not_triggered,
        "other_outcomes": other,
        "active_flows": active_flows,
        "form_posts": int(forms),
        "leads_created": int(created),
        "leads_updated": int(updated),
        "program_status_changes": {
            "changed": int(program_changed),
            "not_changed": int(program_not_changed),
        },
        "registration_activity": _buckets(
            window, activity, ("changes", "triggered", "not_triggered")
        ),
        "processing_status": {
            "last_change_recorded_at": iso(last_recorded),
            "in_flight": in_flight,
            "last_change_seen_at": iso(runtime.last_change_seen_at),
            "consumer_lag": None if lag is None else lag.total(),
            "consumer_lag_by_topic": None if lag is None else lag.by_topic(),
            "workers_alive": runtime.workers_alive,
        },
    }


# -- Troubleshooting ------------------------------------------------------------------------

_RETRY_QUEUE = f"""
    SELECT r.status, r.category, count(*),
           count(*) FILTER (WHERE r.status = 'abandoned'
                            AND r.updated_at >= $start AND r.updated_at < $end)
    FROM retry_queue r
    JOIN outcomes o ON o.change_id = r.change_id AND o.flow_id = r.flow_id
    WHERE o.mode = $mode
      AND (r.status IN ({", ".join(f"'{s}'" for s in OPEN_RETRY_STATUSES)})
           OR (r.status = 'resolved' AND r.updated_at >= $start AND r.updated_at < $end))
    GROUP BY ALL
"""
"""The queue's items of a mode by status and category, and those abandoned in the window. A
pair has at most one state, so the join keeps each item once; unlike a semi join it lets DuckDB
build its hash table on the items rather than on every outcome of the mode."""

_OPEN_OR_RESOLVED = f"""
    (status IN ({", ".join(f"'{s}'" for s in OPEN_RETRY_STATUSES)})
     OR (status = 'resolved' AND updated_at >= $start AND updated_at < $end))
"""

_RETRY_ITEMS_BY_MODE = """
    SELECT mode, status, category, count(*),
           count(*) FILTER (WHERE updated_at >= $start AND updated_at < $end)
    FROM retry_items GROUP BY ALL
"""
"""The queue's items by the mode the fold filled in (`rollup_fold.fill_retry_modes`; NULL: not
filled yet), status and category, all and updated in the window: one pass over the queue, no
join and no filter (`_in_queue` picks `_RETRY_QUEUE`'s figures from them; filtering first cost
more than grouping every item)."""

_CHANGED_PAIRS = "SELECT change_id, flow_id, mode FROM delivery_state WHERE updated_at >= ?"
"""Pairs whose state was written since the fold's mark (less the slack): their items' filled
mode may be stale."""

_RETRY_ITEMS_CHANGED = """
    SELECT r.mode, c.mode, r.status, r.category, count(*),
           count(*) FILTER (WHERE r.updated_at >= $start AND r.updated_at < $end)
    FROM changed_pairs c
    JOIN retry_items r ON r.change_id = c.change_id AND r.flow_id = c.flow_id
    GROUP BY ALL
"""
"""The items of those pairs by filled mode and by the state's mode now: counted under the one,
they move to the other. A pair has at most one state, so each item once."""

_RETRY_QUEUE_UNREAD = f"""
    SELECT r.status, r.category, count(*),
           count(*) FILTER (WHERE r.status = 'abandoned'
                            AND r.updated_at >= $start AND r.updated_at < $end)
    FROM (SELECT * FROM retry_queue WHERE {_OPEN_OR_RESOLVED}) r
    SEMI JOIN (SELECT change_id, flow_id FROM retry_items WHERE mode IS NULL) u
      ON u.change_id = r.change_id AND u.flow_id = r.flow_id
    ANTI JOIN (SELECT change_id, flow_id FROM delivery_state WHERE updated_at >= $since) c
      ON c.change_id = r.change_id AND c.flow_id = r.flow_id
    JOIN outcomes o ON o.change_id = r.change_id AND o.flow_id = r.flow_id
    WHERE o.mode = $mode
    GROUP BY ALL
"""
"""`_RETRY_QUEUE` for the items the fold has not given a mode yet (none after a fold unless an
item was written without its pair's state)."""


def retry_queue_on(
    con: Con, mode: Mode, start: datetime, end: datetime
) -> list[tuple[str, str, int, int]]:
    """The retry queue's items of `mode`: (status, category, items, abandoned in the window),
    open ones and those resolved in the window; `_RETRY_QUEUE`'s figures."""
    params: dict[str, Any] = {"start": start, "end": end, "mode": mode}
    folded = rollup_fold.state(con).mark
    if not live.ENABLED or folded is None:
        return _counted(con.execute(_RETRY_QUEUE, params).fetchall())
    since = folded - rollup_fold.SLACK
    window = {"start": start, "end": end}
    counts: dict[tuple[str | None, str, str], list[int]] = {}

    def add(item_mode: str | None, status: str, category: str, n: int, in_window: int) -> None:
        into = counts.setdefault((item_mode, status, category), [0, 0])
        into[0] += n
        into[1] += in_window

    for row in con.execute(_RETRY_ITEMS_BY_MODE, window).fetchall():
        add(*row)
    changed = con.sql(_CHANGED_PAIRS, params=[since]).to_arrow_table()
    if changed.num_rows:
        with registered(con, "changed_pairs", changed):
            moved = con.execute(_RETRY_ITEMS_CHANGED, window).fetchall()
        for filled, now_mode, status, category, n, in_window in moved:
            add(filled, status, category, -n, -in_window)
            add(now_mode, status, category, n, in_window)
    out, unread = [], False
    for (item_mode, status, category), (n, in_window) in counts.items():
        figures = _in_queue(status, category, n, in_window)
        if figures is None:
            continue
        if item_mode is None:
            unread = True
        elif item_mode == mode:
            out.append(figures)
    if unread:
        params["since"] = since
        out += _counted(con.execute(_RETRY_QUEUE_UNREAD, params).fetchall())
    return out


def _in_queue(
    status: str, category: str, n: int, in_window: int
) -> tuple[str, str, int, int] | None:
    """`_RETRY_QUEUE`'s row of a group of items, all `n` of them and `in_window` updated in the
    window: open items all, abandoned ones in the window among them, resolved ones in the window
    only; None when it counts none."""
    if status in OPEN_RETRY_STATUSES and n:
        return status, category, n, in_window if status == "abandoned" else 0
    if status == "resolved" and in_window:
        return status, category, in_window, 0
    return None


def _counted(rows: list[Any]) -> list[tuple[str, str, int, int]]:
    return [(str(s), str(c), int(n), int(a)) for s, c, n, a in rows]


_RETRIED = f"""
    SELECT count(DISTINCT k), count(*) FILTER (WHERE attempt) FROM (
        SELECT hash(change_id, flow_id) AS k, true AS attempt
        FROM outcome_attempts WHERE {_IN_WINDOW} AND attempt > 1 AND NOT replayed
        UNION ALL
        SELECT key, false FROM rollup_keys WHERE {_IN_HOURS} AND kind = 'retried_pair')
"""
"""Retried pairs (kept attempts and pruned hours' pair hashes as one set), kept retry attempts."""

_ROLLUP_ATTEMPTS = f"""
    SELECT coalesce(sum(attempts) FILTER (WHERE retry AND status <> '{IN_FLIGHT_STATUS}'), 0),
           coalesce(sum(attempts) FILTER (WHERE possible_repeat), 0)
    FROM rollup_attempts WHERE {_IN_HOURS}
"""

_ROLLUP_RETRY_ACTIVITY = f"""
    SELECT epoch_us(hour) // ? AS bucket, sum(attempts),
           coalesce(sum(attempts) FILTER (WHERE status = 'delivered'), 0),
           coalesce(sum(attempts) FILTER (WHERE status = 'failed'), 0)
    FROM rollup_attempts WHERE {_IN_HOURS} AND retry AND status <> '{IN_FLIGHT_STATUS}'
    GROUP BY bucket
"""

_ROLLUP_RESOLVED = f"""
    SELECT status, category, sum(items) FROM rollup_retry_items WHERE {_IN_HOURS} GROUP BY ALL
"""

_ROLLUP_CALLS = """
    SELECT connection_id, sum(calls), coalesce(sum(calls) FILTER (WHERE error_code <> ''), 0)
    FROM rollup_api_calls WHERE hour >= ? AND hour < ? GROUP BY 1
"""

_ROLLUP_CALL_ERRORS = """
    SELECT connection_id, error_code, sum(calls) FROM rollup_api_calls
    WHERE hour >= ? AND hour < ? AND error_code <> '' GROUP BY ALL
"""
"""`_IN_WINDOW` leaves out the queued rows: routing a retry is not an attempt, its answer is."""

_RETRY_ACTIVITY = f"""
    SELECT epoch_us(processed_at) // ? AS bucket, count(*),
           count(*) FILTER (WHERE status = 'delivered'),
           count(*) FILTER (WHERE status = 'failed')
    FROM outcome_attempts WHERE {_IN_WINDOW} AND attempt > 1 AND NOT replayed
    GROUP BY bucket
"""

_DATA_FAILURES = f"""
    SELECT count(*) FROM outcomes
    WHERE {_IN_WINDOW} AND status = 'failed' AND category = 'data'
"""

_REJECTED = "SELECT count(*) FROM rejected_changes WHERE received_at >= ? AND received_at < ?"

_CALLS = f"""
    SELECT connection_id, count(*),
           count(*) FILTER (WHERE {call_is_error_sql()}),
           quantile_cont(duration_ms, [{", ".join(str(q) for q in QUANTILES)}]),
           count(*) FILTER (WHERE started_at >= ?)
    FROM api_calls WHERE started_at >= ? AND started_at < ?
    GROUP BY connection_id
"""

_CALL_ERRORS = f"""
    SELECT connection_id, {call_error_code_sql()} AS code, count(*)
    FROM api_calls
    WHERE started_at >= ? AND started_at < ? AND {call_is_error_sql()}
    GROUP BY ALL
"""

_CALL_PEAK_WINDOW = f"""
    SELECT connection_id, max(n) FROM (
        SELECT connection_id, count(*) OVER (
            PARTITION BY connection_id ORDER BY started_at
            RANGE BETWEEN CURRENT ROW AND INTERVAL {_micros(RATE_WINDOW) - 1} MICROSECONDS FOLLOWING
        ) AS n
        FROM api_calls WHERE started_at >= ? AND started_at < ?)
    GROUP BY connection_id
"""
"""The busiest `RATE_WINDOW` of each connection as a moving count: the definition. DuckDB counts
each call's frame from a segment tree, about 1.1 s over the 500,000 calls of 30 days."""

_CALL_PEAK = f"""
    WITH c AS (
        SELECT connection_id, started_at,
               rank() OVER (PARTITION BY connection_id ORDER BY started_at) AS r
        FROM api_calls WHERE started_at >= ? AND started_at < ?),
    past AS (SELECT connection_id, count(*) + 1 AS r FROM c GROUP BY 1)
    SELECT a.connection_id, max(coalesce(b.r, p.r) - a.r)
    FROM c a
    ASOF LEFT JOIN c b
      ON b.connection_id = a.connection_id
     AND b.started_at >= a.started_at + INTERVAL {_micros(RATE_WINDOW)} MICROSECONDS
    JOIN past p ON p.connection_id = a.connection_id
    GROUP BY 1
"""
"""`_CALL_PEAK_WINDOW`'s figures from ranks: the calls in [t, t + window) of a call at t are
those before t + window less those before t, and a call's rank is one more than the calls
before its time, so the count is the rank of the first call at or after t + window (one past the
last call if none) less the call's rank. Two sorts and an as-of join instead of a frame per
call."""

_SHARES = """
    SELECT object_id, TRY_CAST(body->>'rate_share' AS DOUBLE) FROM config_objects
    WHERE kind = 'connection'
"""


def troubleshooting_on(
    con: Con,
    mode: Mode,
    window: Window,
    *,
    rate_shares: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The Troubleshooting tab; `rate_shares` None = read them from the stored connections."""
    span = [mode, window.start, window.end]
    times = [window.start, window.end]
    queue: dict[str, dict[str, int]] = {
        s: {c: 0 for c in FAILURE_CATEGORIES} for s in RETRY_STATUSES
    }
    abandoned = 0
    in_queue = retry_queue_on(con, mode, window.start, window.end)
    for status, category, count, abandoned_in_window in in_queue:
        queue.setdefault(status, {}).setdefault(category, 0)
        queue[status][category] += int(count)
        abandoned += int(abandoned_in_window)
    for status, category, count in con.execute(_ROLLUP_RESOLVED, span).fetchall():
        queue.setdefault(status, {}).setdefault(category, 0)
        queue[status][category] += int(count)
    retried_pairs, retry_attempts = _one(con, _RETRIED, span + span)
    pruned_retries, _ = _one(con, _ROLLUP_ATTEMPTS, span)
    retry_attempts += pruned_retries
    (data_failures,) = _one(con, _DATA_FAILURES, span)
    data_failures += _one(con, _ROLLUP_TOTALS, span)[6]
    (rejected,) = _one(con, _REJECTED, times)
    step = [_micros(window.bucket), *span]
    activity = _add_buckets(
        con.execute(_RETRY_ACTIVITY, step).fetchall(),
        con.execute(_ROLLUP_RETRY_ACTIVITY, step).fetchall(),
    )

    if rate_shares is None:
        rate_shares = {
            str(cid): float(share)
            for cid, share in con.execute(_SHARES).fetchall()
            if share is not None
        }
    recent_from = window.end - RATE_WINDOW
    errors: dict[str, dict[str, int]] = {}
    call_errors = con.execute(_CALL_ERRORS, times).fetchall()
    for cid, code, count in sorted(
        call_errors + con.execute(_ROLLUP_CALL_ERRORS, times).fetchall()
    ):
        errors.setdefault(cid, {}).setdefault(code, 0)
        errors[cid][code] += int(count)
    peaks = {cid: int(n) for cid, n in con.execute(_CALL_PEAK, times).fetchall()}
    kept = {r[0]: r for r in con.execute(_CALLS, [recent_from, *times]).fetchall()}
    pruned = {r[0]: r for r in con.execute(_ROLLUP_CALLS, times).fetchall()}
    rows = []
    for cid in sorted(set(kept) | set(pruned)):
        _, calls, failed, quantiles, recent = kept.get(cid, (cid, 0, 0, None, 0))
        _, more_calls, more_failed = pruned.get(cid, (cid, 0, 0))
        quantiles = quantiles or [None] * len(QUANTILES)
        rows.append((cid, calls + more_calls, failed + more_failed, quantiles, recent))
    connections = []
    for cid, calls, failed, quantiles, recent in rows:
        budget = rate_budget(rate_shares.get(cid, 1.0))
        connections.append(
            {
                "connection_id": cid,
                "calls": int(calls),
                "errors": int(failed),
                "errors_by_code": errors.get(cid, {}),
                "latency_ms": {
                    f"p{round(q * 100)}": None if v is None else float(v)
                    for q, v in zip(QUANTILES, quantiles, strict=True)
                },
                "rate_limit": {
                    "budget_per_20s": budget,
                    "calls_last_20s": int(recent),
                    "headroom": budget - int(recent),
                    "peak_20s": peaks.get(cid, 0),
                    "peak_headroom": budget - peaks.get(cid, 0),
                },
            }
        )
    return {
        "mode": mode,
        "period": period_json(window),
        "in_flight": in_flight_on(con, mode),
        "repeat_after_crash": repeats_after_crash_on(con, mode, window.start, window.end)
        + int(_one(con, _ROLLUP_ATTEMPTS, span)[1]),
        "verified_after_crash": verified_after_crash_on(con, mode, window.start, window.end),
        "retry_queue": {
            "by_status": {s: sum(c.values()) for s, c in queue.items()},
            "by_status_and_category": queue,
            "open": sum(sum(queue[s].values()) for s in OPEN_RETRY_STATUSES),
        },
        "total_retried": int(retried_pairs),
        "retry_attempts": int(retry_attempts),
        "retried_abandoned": int(abandoned),
        "validation_errors": {
            "total": int(rejected) + int(data_failures),
            "rejected_input": int(rejected),
            "data_failures": int(data_failures),
        },
        "retry_activity": _buckets(window, activity, ("retries", "delivered", "failed")),
        "connection_activity": connections,
    }


# -- coroutines -----------------------------------------------------------------------------


async def summary(
    store: Store,
    mode: Mode,
    window: Window,
    *,
    active_flows: int | None = None,
    runtime: RuntimeStatus | None = None,
) -> dict[str, Any]:
    return await store.read(
        lambda con: live.one_snapshot(
            con,
            lambda c: summary_on(c, mode, window, active_flows=active_flows, runtime=runtime),
        ),
    )


async def troubleshooting(
    store: Store,
    mode: Mode,
    window: Window,
    *,
    rate_shares: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    return await store.read(
        lambda con: live.one_snapshot(
            con, lambda c: troubleshooting_on(c, mode, window, rate_shares=rate_shares)
        )
    )
