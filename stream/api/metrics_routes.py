"""Operator API routes of the metrics dashboard (DESIGN 4.3) and the Prometheus scrape.

    GET /api/v1/metrics/summary          ?mode=live|test &period=24h | &from=…&to=…
    GET /api/v1/metrics/troubleshooting  same parameters
    GET /api/v1/activity                 same, plus &limit=1..500 &before=<next_before>
                                         &status=delivered,failed &exclude_status=not_activated
    GET /metrics                         Prometheus text format 0.0.4

Authentication is the application's bearer-token middleware, for `/metrics` too: the counters
name connections, flows' outcomes and failure codes, which is more than an anonymous caller on
the host should read, and Prometheus sends a bearer token with `authorization.credentials_file`.
Only `/healthz` is meant to be open.

Errors use the API's shape, `{"errors": [{"path": …, "message": …}]}`: a bad parameter answers
400 with the parameter's name as `path`; a closed store 503, a failing one 500 (empty path).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from config.models import Mode as FlowMode
from stream.api.errors import json_error
from stream.control.config_service import ConfigService
from stream.metrics import activity, prometheus, queries
from stream.metrics.definitions import Mode, ParameterError, Window, parse_mode, parse_window
from stream.metrics.queries import RuntimeStatus
from stream.store.errors import StoreClosedError, StoreError
from stream.store.store import Store

RuntimeProvider = Callable[[], RuntimeStatus | Awaitable[RuntimeStatus]]
ActiveFlowsProvider = Callable[[Mode], int | Awaitable[int | None] | None]
RateSharesProvider = Callable[[], Mapping[str, float] | Awaitable[Mapping[str, float]]]


class _BadParameter(Exception):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _timestamp(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _BadParameter(name, f"{name} must be an ISO 8601 time, got {text!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise _BadParameter(name, f"{name} must include a time zone, e.g. {text.strip()}Z")
    return value


def _mode_and_window(request: web.Request) -> tuple[Mode, Window]:
    try:
        mode = parse_mode(request.query.get("mode"))
    except ParameterError as exc:
        raise _BadParameter("mode", str(exc)) from None
    start, end = _timestamp(request, "from"), _timestamp(request, "to")
    try:
        window = parse_window(request.query.get("period"), start=start, end=end)
    except ParameterError as exc:
        raise _BadParameter("period", str(exc)) from None
    return mode, window


def _statuses(request: web.Request, name: str) -> tuple[str, ...] | None:
    try:
        return activity.parse_statuses(request.query.get(name), name)
    except ParameterError as exc:
        raise _BadParameter(name, str(exc)) from None


def _limit(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None:
        return activity.DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= activity.MAX_LIMIT:
        raise _BadParameter("limit", f"limit must be a whole number from 1 to {activity.MAX_LIMIT}")
    return limit


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _BadParameter as exc:
            return json_error(400, exc.message, exc.parameter)
        except StoreClosedError:
            return json_error(503, "the database is closed; the control service is stopping")
        except StoreError as exc:
            return json_error(500, f"the database could not answer: {exc}")

    return run


def add_metrics_routes(
    app: web.Application,
    store: Store,
    *,
    runtime: RuntimeProvider | None = None,
    active_flows: ActiveFlowsProvider | None = None,
    rate_shares: RateSharesProvider | None = None,
    ledger: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> None:
    """Register the four routes on `app`.

    `runtime` reports what only the running services know (last change seen, consumer lag,
    workers alive); `active_flows(mode)` and `rate_shares()` come from the configuration the
    control holds. Each may be sync or async; left out, the runtime figures are null and the
    other two are read from the configuration objects in the store.
    """

    async def status() -> RuntimeStatus:
        return RuntimeStatus() if runtime is None else await _resolve(runtime())

    async def shares() -> Mapping[str, float] | None:
        return None if rate_shares is None else await _resolve(rate_shares())

    async def summary(request: web.Request) -> web.StreamResponse:
        mode, window = _mode_and_window(request)
        flows = None if active_flows is None else await _resolve(active_flows(mode))
        body = await queries.summary(
            store, mode, window, active_flows=flows, runtime=await status()
        )
        return web.json_response(body)

    async def troubleshooting(request: web.Request) -> web.StreamResponse:
        mode, window = _mode_and_window(request)
        body = await queries.troubleshooting(store, mode, window, rate_shares=await shares())
        recovery = (await status()).recovery
        # Recovery covers the whole ledger (every mode, its own horizon), not the window.
        body["recovery"] = None if recovery is None else recovery.to_json()
        # Retention's settings, disk use and oldest rows: the ledger's, not the window's.
        body["ledger"] = None if ledger is None else await ledger()
        return web.json_response(body)

    async def feed(request: web.Request) -> web.StreamResponse:
        mode, window = _mode_and_window(request)
        limit = _limit(request)
        statuses, exclude = _statuses(request, "status"), _statuses(request, "exclude_status")
        text = request.query.get("before")
        try:
            before = activity.decode_cursor(text) if text else None
        except ParameterError as exc:
            raise _BadParameter("before", str(exc)) from None
        return web.json_response(
            await activity.page(
                store,
                mode,
                window,
                limit=limit,
                before=before,
                statuses=statuses,
                exclude=exclude,
            )
        )

    async def scrape(request: web.Request) -> web.StreamResponse:
        text = await prometheus.exposition(
            store, runtime=await status(), rate_shares=await shares()
        )
        response = web.Response(text=text)
        response.headers["Content-Type"] = prometheus.CONTENT_TYPE
        return response

    app.router.add_get("/api/v1/metrics/summary", _guarded(summary))
    app.router.add_get("/api/v1/metrics/troubleshooting", _guarded(troubleshooting))
    app.router.add_get("/api/v1/activity", _guarded(feed))
    app.router.add_get("/metrics", _guarded(scrape))


def config_providers(config: ConfigService) -> tuple[ActiveFlowsProvider, RateSharesProvider]:
    """`active_flows` and `rate_shares` from the control's configuration: a flow counts as active
    when it is switched on and complete (an incomplete flow never runs)."""

    def active_flows(mode: Mode) -> int:
        wanted = FlowMode(mode)
        return sum(
            1
            for view in config.flow_views()
            if view.flow.active and view.complete and view.flow.mode is wanted
        )

    def rate_shares() -> Mapping[str, float]:
        return {c.id: c.rate_share for c in config.account.connections}

    return active_flows, rate_shares
