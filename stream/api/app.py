"""The operator API application factory."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from stream.api import (
    account,
    connections,
    flow_figures,
    flows,
    health,
    ingest,
    mappings,
    marketo_assets,
    reference,
    sources_routes,
    sql,
)
from stream.api.deps import DEPS, ApiDeps
from stream.api.ledger_routes import add_ledger_routes
from stream.api.metrics_routes import add_metrics_routes, config_providers
from stream.api.middleware import auth_middleware, error_middleware
from stream.api.preview_routes import add_preview_routes
from stream.api.replay_routes import add_replay_routes
from stream.api.retry_routes import add_retry_routes
from stream.control.operations import Operations

MAX_BODY_BYTES = 64 * 1024 * 1024
"""A large ingest batch or account import fits; anything bigger is a mistake."""


class BadRequestLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger for the operator API (`web.AppRunner(..., logger=…)`).

    aiohttp logs a request it cannot parse (a 2 MB header, 100,000 headers, Content-Length with
    Transfer-Encoding, a negative Content-Length) with `logger.exception`: an ERROR and a
    traceback, before any token is asked for, so anyone who can reach the port could fill
    control's log. Such a request is one WARNING line here, without a traceback, naming the
    client and the reason, at most `per_window` lines per `window_s` seconds (then one line
    saying how many were left out). Every other exception keeps its traceback."""

    def __init__(self, per_window: int = 20, window_s: float = 10.0) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._per_window = per_window
        self._window_s = window_s
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._logged = 0
        self._left_out = 0

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        if not isinstance(exc_info, HttpProcessingError):
            super().exception(msg, *args, exc_info=exc_info, **kw)
            return
        reason = " ".join(str(exc_info.message or type(exc_info).__name__).split())[:200]
        text = str(msg) % args if args else str(msg)
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self._window_s:
                if self._left_out:
                    self.logger.warning(
                        "%d more malformed HTTP requests were not logged", self._left_out
                    )
                self._window_start, self._logged, self._left_out = now, 0, 0
            if self._logged >= self._per_window:
                self._left_out += 1
                return
            self._logged += 1
        self.logger.warning(
            "malformed HTTP request refused (%d): %s: %s",
            exc_info.code,
            text,
            reason.encode("ascii", "backslashreplace").decode("ascii"),
        )


def create_app(deps: ApiDeps, ops: Operations | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[DEPS] = deps
    health.add_routes(app)
    ingest.add_routes(app)
    flow_figures.add_routes(app)
    flows.add_routes(app)
    connections.add_routes(app)
    marketo_assets.add_routes(app)
    mappings.add_routes(app)
    reference.add_routes(app)
    account.add_routes(app)
    sql.add_routes(app)
    sources_routes.add_routes(app)
    add_ledger_routes(app)
    active_flows, rate_shares = config_providers(deps.config)
    add_metrics_routes(
        app,
        deps.store,
        runtime=deps.runtime_provider(),
        active_flows=active_flows,
        rate_shares=rate_shares,
        ledger=deps.retention,
    )
    if ops is not None:
        add_retry_routes(app, ops)
        add_replay_routes(app, ops)
        add_preview_routes(app, ops)
    return app
