"""Per-flow figures for the console's flow list: outcomes per flow over a period and a bucketed
series for a sparkline, read from the store with a parameterised query.

    GET /api/v1/flows/figures?period=today|24h|7d… [&to=<ISO time with zone>]

`today` runs from midnight UTC of `to`'s day; any other period ends at `to` (default now). `to`
lets a client line the buckets up with the clock it shows. Buckets are one hour up to two days,
one day beyond, counted from the start of the window, oldest first; each holds every outcome
the flow recorded in it (delivered, failed, not activated, filtered out …), so a flow that
receives traffic but sends nothing still shows a trend. A delivery still in flight (queued)
is not an outcome yet and counts nowhere.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from stream.api.deps import deps_of
from stream.api.errors import json_error
from stream.metrics.definitions import DONE, ParameterError, Window, parse_window
from stream.store.errors import StoreClosedError, StoreError
from stream.store.writer import Con

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
COUNTED = ("delivered", "failed", "not_activated")

_SQL = f"""
    SELECT flow_id,
           CAST(floor(epoch(processed_at - ?::TIMESTAMPTZ) / ?) AS BIGINT) AS bucket,
           count(*) FILTER (WHERE status = 'delivered') AS delivered,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'not_activated') AS not_activated,
           count(*) AS outcomes
    FROM outcomes
    WHERE processed_at >= ?::TIMESTAMPTZ AND processed_at < ?::TIMESTAMPTZ AND {DONE}
    GROUP BY ALL
"""


def figures_window(period: str | None, end: datetime | None) -> Window:
    """Raises `ParameterError` for a period or end this route does not take."""
    if end is not None and (end.tzinfo is None or end.utcoffset() is None):
        raise ParameterError("to must include a time zone (e.g. 2026-11-28T12:00:00Z)")
    stop = (end or datetime.now(UTC)).astimezone(UTC)
    text = (period or "24h").strip().lower()
    if text == "today":
        midnight = stop.replace(hour=0, minute=0, second=0, microsecond=0)
        if midnight == stop:
            stop = stop + timedelta(microseconds=1)
        return Window(midnight, stop, "today")
    return parse_window(text, end=stop)


def bucket_of(window: Window) -> timedelta:
    return HOUR if window.end - window.start <= 2 * DAY else DAY


async def flow_figures(request: web.Request) -> web.Response:
    deps = deps_of(request)
    text = request.query.get("to")
    end: datetime | None = None
    if text:
        try:
            end = datetime.fromisoformat(text.strip())
        except ValueError:
            return json_error(400, f"to must be an ISO 8601 time, got {text!r}", "to")
    try:
        window = figures_window(request.query.get("period"), end)
    except ParameterError as error:
        path = "to" if str(error).startswith("to ") else "period"
        return json_error(400, str(error), path)
    step = bucket_of(window)
    count = max(1, math.ceil((window.end - window.start) / step))
    params = [window.start, step.total_seconds(), window.start, window.end]

    def read(con: Con) -> list[tuple[Any, ...]]:
        return con.execute(_SQL, params).fetchall()

    try:
        rows = await deps.store.read(read)
    except StoreClosedError:
        return json_error(503, "the database is closed; the control service is stopping")
    except StoreError as error:
        return json_error(500, f"the database could not answer: {error}")
    flows: dict[str, dict[str, Any]] = {
        view.flow.id: _empty(count) for view in deps.config.flow_views()
    }
    for flow_id, bucket, delivered, failed, not_activated, outcomes in rows:
        figures = flows.setdefault(str(flow_id), _empty(count))
        figures["delivered"] += int(delivered)
        figures["failed"] += int(failed)
        figures["not_activated"] += int(not_activated)
        if bucket is not None and 0 <= int(bucket) < count:
            figures["series"][int(bucket)] += int(outcomes)
    return web.json_response(
        {
            "period": window.label,
            "from": window.start.isoformat(),
            "to": window.end.isoformat(),
            "bucket_s": int(step.total_seconds()),
            "flows": flows,
        }
    )


def _empty(buckets: int) -> dict[str, Any]:
    return {**dict.fromkeys(COUNTED, 0), "series": [0] * buckets}


def add_routes(app: web.Application) -> None:
    """Before the flow routes: `/flows/{flow_id}` would otherwise take `figures` as an id."""
    app.router.add_get("/api/v1/flows/figures", flow_figures)
