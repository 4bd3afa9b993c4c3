"""Connections: CRUD with write-only secrets, Save & Test, and Refresh Target Fields.

A connection's `client_secret` is accepted on create and replace and never returned: answers
say only whether a secret is set, where it comes from and when it was last replaced. A body
without `client_secret` keeps the stored one, unless it changes the identity URL or the client
id: the secret was entered for those, so it is cleared and the answer's `secret_cleared` says so
("the client secret was cleared because the identity URL changed; enter it again").
`"client_secret": "${VAR}"` reads it from control's environment, for a name on the allow-list
only (`SIGNAL_SECRET_ENV_ALLOWLIST`; 422 otherwise, whether the variable exists or not); a
`client_secret_ref` in the body is read-only like `secret_set`. Marketo calls made by a test or a
refresh are recorded in `api_calls` like any other.

`POST /api/v1/connections/test` tests candidate settings without saving them, so an editor can
test first and save only what works (the console's Save & Test does).

A test that passes with the settings the connection has saved (`/{id}/test`, or a candidate
equal to them: Save & Test of an unchanged form) marks the connection tested
(`ConfigService.mark_tested`): the workers close its circuit breaker at once instead of waiting
for the back-off, as the operator found the connection working. A passing candidate that
differs needs no mark: saving it changes the settings, which resets the breaker anyway.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aiohttp import web
from pydantic import ValidationError

from config.models import Connection
from config.validation import Problem
from stream.api.bodies import json_object
from stream.api.deps import ApiDeps, deps_of
from stream.api.errors import (
    if_match_version,
    json_error,
    problems_response,
    validation_response,
)
from stream.api.middleware import actor_of
from stream.api.retry_routes import OPS
from stream.control.config_errors import ConfigServiceError
from stream.control.recorder import api_call_row
from stream.marketo.breaker_edge import CIRCUIT_OPEN
from stream.marketo.client import MarketoClient
from stream.marketo.connection_test import explain, refresh_target_fields, test_connection
from stream.marketo.errors import MarketoError
from stream.marketo.results import CallRecord
from stream.marketo.settings import MarketoSettings
from stream.messages import ApiCallRecord, utcnow
from stream.store import StoreError

log = logging.getLogger("signal.api.connections")

RELEASE_AFTER_PUBLISH_S = 5.0
"""How long a passing test waits for the snapshot carrying it before it releases the parked
deliveries anyway (one that beats the snapshot is only parked again, until the breaker's time)."""

_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def connection_json(deps: ApiDeps, connection: Connection) -> dict[str, Any]:
    body = connection.model_dump(mode="json")
    body.pop("client_secret", None)
    return {
        **body,
        "secret_set": connection.client_secret is not None,
        "secret_source": deps.config.secret_source(connection),
        "secret_updated_at": deps.config.secret_updated_at(connection.id),
        "secret_cleared": deps.config.secret_cleared(connection.id),
        "version": deps.config.version_of("connection", connection.id),
    }


async def list_connections(request: web.Request) -> web.Response:
    deps = deps_of(request)
    items = [connection_json(deps, c) for c in deps.config.account.connections]
    return web.json_response({"connections": items})


async def get_connection(request: web.Request) -> web.Response:
    deps = deps_of(request)
    connection = deps.config.connection(request.match_info["connection_id"])
    return web.json_response(connection_json(deps, connection))


_READ_ONLY = (
    "secret_set",
    "secret_source",
    "secret_updated_at",
    "secret_cleared",
    "client_secret_ref",
    "version",
)


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Identified)
Parsed = tuple[T | None, str | None, web.Response | None]
"""What a body parser gives: the object, its new write-only secret (None: keep the stored
one), or the 422 answer when the body does not parse."""


async def parsed_replacement(
    request: web.Request, key: str, parse: Callable[[dict[str, Any]], Parsed[T]], what: str
) -> tuple[T, str | None] | web.Response:
    """The body of `PUT …/{key}` parsed with `parse`, its `id` defaulting to the URL's: the
    object and its new secret, or the 422 answer (a body that does not parse, or that names
    another id than the URL, which would save under one name what was asked under another)."""
    object_id = request.match_info[key]
    body = await json_object(request)
    body.setdefault("id", object_id)
    parsed, secret, problem = parse(body)
    if problem is not None or parsed is None:
        return problem or json_error(422, f"invalid {what}")
    if parsed.id != object_id:
        return problems_response(
            422, [Problem("id", f"expected {object_id!r} (the id in the URL)")]
        )
    return parsed, secret


def _parse(deps: ApiDeps, body: dict[str, Any]) -> Parsed[Connection]:
    """The connection and the new secret (None: keep), or a 422 answer."""
    body = {k: v for k, v in body.items() if k not in _READ_ONLY}
    secret = body.pop("client_secret", None)
    if secret is not None:
        if not isinstance(secret, str) or not secret.strip():
            problem = Problem("client_secret", "expected a non-empty string")
            return None, None, problems_response(422, [problem])
        match = _ENV_REFERENCE.match(secret.strip())
        if match:
            allowlist = deps.config.env_allowlist
            if not allowlist.allows(match.group(1)):
                problem = Problem("client_secret", allowlist.refusal(match.group(1)))
                return None, None, problems_response(422, [problem])
            body["client_secret_ref"] = match.group(1)
            secret = None
    try:
        return Connection.model_validate(body), secret, None
    except ValidationError as error:
        return None, None, validation_response(error)


async def create_connection(request: web.Request) -> web.Response:
    deps = deps_of(request)
    connection, secret, problem = _parse(deps, await json_object(request))
    if problem is not None or connection is None:
        return problem or json_error(422, "invalid connection")
    saved = await deps.config.save_connection(
        connection, actor_of(request), create=True, secret=secret
    )
    return web.json_response(connection_json(deps, saved), status=201)


async def put_connection(request: web.Request) -> web.Response:
    deps = deps_of(request)
    deps.config.connection(request.match_info["connection_id"])
    parsed = await parsed_replacement(
        request, "connection_id", lambda body: _parse(deps, body), "connection"
    )
    if isinstance(parsed, web.Response):
        return parsed
    connection, secret = parsed
    saved = await deps.config.save_connection(
        connection,
        actor_of(request),
        create=False,
        secret=secret,
        expected_version=if_match_version(request),
    )
    return web.json_response(connection_json(deps, saved))


async def delete_connection(request: web.Request) -> web.Response:
    deps = deps_of(request)
    await deps.config.delete_connection(request.match_info["connection_id"], actor_of(request))
    return web.Response(status=204)


def _call_recorder(deps: ApiDeps) -> Any:
    async def record(call: CallRecord) -> None:
        try:
            await deps.store.record_api_calls([api_call_row(ApiCallRecord.from_call(call))])
        except Exception:
            log.exception("recording a Marketo call of a connection test failed")

    return record


async def test(request: web.Request) -> web.Response:
    deps = deps_of(request)
    connection_id = request.match_info["connection_id"]
    settings = deps.config.marketo_settings(connection_id, **deps.connection_test_settings)
    return await _test_answer(request.app, deps, settings, connection_id)


async def test_candidate(request: web.Request) -> web.Response:
    """Test connection settings before they are saved: the body of a create or replace (with
    `id`); nothing is stored and the configuration's version does not move. A body without
    `client_secret` is tested with the stored secret of the connection with that id only while
    it keeps the identity URL, client id and service URL that secret was entered for; otherwise
    422 on `client_secret` (enter it again), as a save would have cleared it."""
    deps = deps_of(request)
    candidate, secret, problem = _parse(deps, await json_object(request))
    if problem is not None or candidate is None:
        return problem or json_error(422, "invalid connection")
    settings = deps.config.candidate_settings(candidate, secret, **deps.connection_test_settings)
    return await _test_answer(request.app, deps, settings, _saved_as(deps, candidate.id, settings))


def _saved_as(deps: ApiDeps, connection_id: str, settings: MarketoSettings) -> str | None:
    """`connection_id` when `settings` are what that saved connection calls Marketo with."""
    try:
        saved = deps.config.marketo_settings(connection_id, **deps.connection_test_settings)
    except ConfigServiceError:
        return None  # a new connection, or one without a usable secret
    return connection_id if saved == settings else None


async def _test_answer(
    app: web.Application, deps: ApiDeps, settings: MarketoSettings, saved_id: str | None
) -> web.Response:
    """Test `settings`; a pass marks `saved_id` (the connection they are saved as) tested and
    releases the deliveries its breaker parked (`released` in the answer)."""
    result = await test_connection(settings, on_call=_call_recorder(deps))
    released = 0
    if result.ok and saved_id is not None:
        deps.config.mark_tested(saved_id, utcnow())
        released = await _release_parked(app, deps, saved_id)
    failure = result.failure
    return web.json_response(
        {
            "ok": result.ok,
            "message": result.message,
            "checks": [{"name": c.name, "ok": c.ok, "message": c.message} for c in result.checks],
            "code": failure.code if failure else None,
            "failure_class": failure.kind.value if failure else None,
            "fields": len(result.fields),
            "campaigns": result.campaigns,
            "released": released,
        }
    )


async def _release_parked(app: web.Application, deps: ApiDeps, connection_id: str) -> int:
    """Deliveries the connection's circuit breaker parked go again now rather than at their
    resume time (up to `max_open_s`, ten minutes, after a long outage): the pass closes the
    breaker. Released once the snapshot carrying the pass is published (bounded wait), so the
    workers close their breaker before the deliveries reach them."""
    await deps.config.published_settled(RELEASE_AFTER_PUBLISH_S)
    try:
        released = await deps.store.release_parked(connection_id, CIRCUIT_OPEN, now=utcnow())
    except StoreError:
        log.exception("releasing the deliveries parked by %s's breaker failed", connection_id)
        return 0
    if released:
        log.info(
            "%d deliveries parked by %s's circuit breaker are due now (a test passed)",
            released,
            connection_id,
        )
        ops = app.get(OPS)
        if ops is not None:
            ops.scheduler.wake()
    return released


async def refresh_fields(request: web.Request) -> web.Response:
    deps = deps_of(request)
    connection_id = request.match_info["connection_id"]
    settings = deps.config.marketo_settings(connection_id, **deps.connection_test_settings)
    async with MarketoClient(settings, on_call=_call_recorder(deps)) as client:
        try:
            fields = await refresh_target_fields(client)
        except MarketoError as error:
            message = explain(error.failure, settings.base_url, "read lead fields")
            return json_error(502, message, code=error.failure.code)
    return web.json_response(
        {
            "connection_id": connection_id,
            "count": len(fields),
            "fields": [
                {
                    "name": f.name,
                    "display_name": f.display_name,
                    "data_type": f.data_type,
                    "length": f.length,
                    "read_only": f.read_only,
                }
                for f in fields
            ],
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/connections", list_connections)
    app.router.add_post("/api/v1/connections", create_connection)
    app.router.add_get("/api/v1/connections/{connection_id}", get_connection)
    app.router.add_put("/api/v1/connections/{connection_id}", put_connection)
    app.router.add_delete("/api/v1/connections/{connection_id}", delete_connection)
    app.router.add_post("/api/v1/connections/test", test_candidate)
    app.router.add_post("/api/v1/connections/{connection_id}/test", test)
    app.router.add_post("/api/v1/connections/{connection_id}/fields/refresh", refresh_fields)
