"""The operator API application factory."""

from __future__ import annotations

from aiohttp import web

from stream.api import (
    account,
    connections,
    flow_figures,
    flows,
    health,
    ingest,
    mappings,
    reference,
    sql,
)
from stream.api.deps import DEPS, ApiDeps
from stream.api.metrics_routes import add_metrics_routes, config_providers
from stream.api.middleware import auth_middleware, error_middleware
from stream.api.preview_routes import add_preview_routes
from stream.api.replay_routes import add_replay_routes
from stream.api.retry_routes import add_retry_routes
from stream.control.operations import Operations

MAX_BODY_BYTES = 64 * 1024 * 1024
"""A large ingest batch or account import fits; anything bigger is a mistake."""


def create_app(deps: ApiDeps, ops: Operations | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[DEPS] = deps
    health.add_routes(app)
    app.router.add_post("/api/v1/changes", ingest.post_changes)
    flow_figures.add_routes(app)
    flows.add_routes(app)
    connections.add_routes(app)
    mappings.add_routes(app)
    reference.add_routes(app)
    account.add_routes(app)
    sql.add_routes(app)
    active_flows, rate_shares = config_providers(deps.config)
    add_metrics_routes(
        app,
        deps.store,
        runtime=deps.runtime_provider(),
        active_flows=active_flows,
        rate_shares=rate_shares,
    )
    if ops is not None:
        add_retry_routes(app, ops)
        add_replay_routes(app, ops)
        add_preview_routes(app, ops)
    return app
