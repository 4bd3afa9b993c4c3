"""Certain sources: how each is doing, create and replace one, and test settings before saving.

`GET /api/v1/sources`: one item per source of the account, in its order: its settings as
configured (`host`, `account_code`, `username`, `events`, `poll_interval_s`, `start`,
`request_budget_per_minute`, `active`, `password_ref`), `password_set`, `password_source`
(`env:VAR`, `stored`), `password_updated_at` and `version` (for If-Match), and how its poller is
doing: `state` (`polling`, `backing off`, `stopped: unauthorized`, `stopped: no password`,
`starting`, `inactive`; `stream.metrics.certain_sources`), `last_poll_at`, `last_poll` (records,
changes, requests of the last completed poll), `newest_modified` and `lag_s` (now minus the
newest `dateModified` seen), `totals` since control started (polls, records, changes, rejected,
requests, errors), `last_error` with `last_error_at`, and `retry_at` while backing off. A source
no poller reports (control starting it, or no poller in this process) is `starting`, or
`inactive` when configured so.

`POST /api/v1/sources` creates one, `PUT /api/v1/sources/{id}` replaces one (If-Match: the
version read): versioned, audited and published like every configuration change. The password is
write-only with a client secret's rules: `"password": "${VAR}"` reads an allow-listed variable; a
literal one is kept in the secret store; a body without one keeps the stored one unless the host
or username changed, when it is cleared and the answer's `password_cleared` says so. A poller
stopped by a 401 polls again once its source is saved with any change (a new password, say).
`DELETE /api/v1/sources/{id}` (If-Match optional) removes one with its stored password and its
poll state (watermarks, last seen: one added again under its id starts at its start point); its
poller stops within a second, mid-poll if need be, its uncommitted page dropped. No flow names a
source, so nothing refuses a delete.

`POST /api/v1/sources/test` signs in with candidate settings (the body of a create or replace)
and reads one page of `Event/{acct}`, storing nothing; without a password it uses the stored one
only while host, username and account code are those it was saved with. The answer says in
words what worked and what did not (`stream.certain.source_check`); bounded to one call of at
most `CHECK_TIMEOUT_S` and `TEST_SLOTS` tests at a time. Credentials never appear in answers.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from config.models import Account, CertainSource
from config.secret_refs import certain_secret_key
from config.validation import Problem, validate_account
from stream.api.bodies import json_object
from stream.api.connections import Parsed, parsed_replacement
from stream.api.deps import ApiDeps, deps_of
from stream.api.errors import (
    if_match_version,
    json_error,
    problems_response,
    validation_response,
)
from stream.api.limits import busy
from stream.api.middleware import actor_of
from stream.certain.source_check import check_source
from stream.control.certain_source_config import password_source
from stream.metrics.certain_sources import INACTIVE, STARTING, CertainSourceStatus

TEST_SLOTS = 4
"""Source tests running at once; each holds an outbound connection for up to 15 s."""
SLOTS: web.AppKey[asyncio.Semaphore] = web.AppKey("signal_source_test_slots", asyncio.Semaphore)

_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_READ_ONLY = frozenset(
    {
        "password_set",
        "password_source",
        "password_updated_at",
        "password_cleared",
        "version",
        "state",
        "last_poll_at",
        "last_poll",
        "newest_modified",
        "lag_s",
        "totals",
        "last_error",
        "last_error_at",
        "retry_at",
    }
)


def source_json(
    deps: ApiDeps, source: CertainSource, status: CertainSourceStatus | None, now: datetime
) -> dict[str, Any]:
    if status is None:
        state = STARTING if source.active else INACTIVE
        status = CertainSourceStatus(source.id, source.name, source.account_code, state)
    return {
        **source.model_dump(mode="json"),
        "password_set": source.password is not None,
        "password_source": password_source(source),
        "password_updated_at": deps.config.secret_updated_at(certain_secret_key(source)),
        "version": deps.config.version_of("certain_source", source.id),
        **status.to_json(now),
    }


async def list_sources(request: web.Request) -> web.Response:
    deps = deps_of(request)
    provider = deps.certain_sources
    statuses = {s.source_id: s for s in (provider() if provider is not None else ())}
    now = datetime.now(UTC)
    items = [
        source_json(deps, s, statuses.get(s.id), now) for s in deps.config.account.certain_sources
    ]
    return web.json_response({"sources": items})


def _parse(deps: ApiDeps, body: dict[str, Any]) -> Parsed[CertainSource]:
    """The source and its new literal password (None: none given), or a 422 answer."""
    body = {k: v for k, v in body.items() if k not in _READ_ONLY}
    password = body.pop("password", None)
    body.pop("password_ref", None)
    if password is not None:
        if not isinstance(password, str) or not password.strip():
            problem = Problem("password", "expected a non-empty string")
            return None, None, problems_response(422, [problem])
        match = _ENV_REFERENCE.match(password.strip())
        if match:
            body["password_ref"] = match.group(1)
            password = None
    try:
        source = CertainSource.model_validate(body)
    except ValidationError as error:
        return None, None, validation_response(error)
    problems = [
        Problem(p.path.removeprefix("certain_sources[0]."), p.message)
        for p in validate_account(Account(account="candidate", certain_sources=[source]))
        if p.path.startswith("certain_sources[0].") and not p.path.endswith(".password")
    ]
    if problems:
        return None, None, problems_response(422, problems)
    return source, password, None


async def create_source(request: web.Request) -> web.Response:
    deps = deps_of(request)
    source, password, problem = _parse(deps, await json_object(request))
    if problem is not None or source is None:
        return problem or json_error(422, "invalid Certain source")
    saved, cleared = await deps.config.save_certain_source(
        source, actor_of(request), create=True, password=password
    )
    return web.json_response(_saved(request, saved, cleared), status=201)


async def put_source(request: web.Request) -> web.Response:
    deps = deps_of(request)
    deps.config.certain_source(request.match_info["source_id"])
    parsed = await parsed_replacement(
        request, "source_id", lambda body: _parse(deps, body), "Certain source"
    )
    if isinstance(parsed, web.Response):
        return parsed
    source, password = parsed
    saved, cleared = await deps.config.save_certain_source(
        source,
        actor_of(request),
        create=False,
        password=password,
        expected_version=if_match_version(request),
    )
    return web.json_response(_saved(request, saved, cleared))


async def delete_source(request: web.Request) -> web.Response:
    deps = deps_of(request)
    await deps.config.delete_certain_source(
        request.match_info["source_id"],
        actor_of(request),
        expected_version=if_match_version(request),
    )
    return web.Response(status=204)


def _saved(request: web.Request, source: CertainSource, cleared: str | None) -> dict[str, Any]:
    deps = deps_of(request)
    provider = deps.certain_sources
    status = next((s for s in provider() if s.source_id == source.id), None) if provider else None
    return {
        **source_json(deps, source, status, datetime.now(UTC)),
        "password_cleared": cleared,
    }


async def test_candidate(request: web.Request) -> web.Response:
    deps = deps_of(request)
    source, password, problem = _parse(deps, await json_object(request))
    if problem is not None or source is None:
        return problem or json_error(422, "invalid Certain source")
    candidate = deps.config.candidate_source(source, password)
    slots = request.app[SLOTS]
    if slots.locked():
        return busy(f"{TEST_SLOTS} source tests are running; try again shortly")
    async with slots:
        result = await check_source(candidate)
    return web.json_response(
        {
            "ok": result.ok,
            "message": result.message,
            "checks": [{"name": c.name, "ok": c.ok, "message": c.message} for c in result.checks],
            "failure": result.failure,
            "status": result.status,
            "events": result.events,
            "watched": result.watched,
            "elapsed_ms": round(result.elapsed_ms, 1),
        }
    )


def add_routes(app: web.Application) -> None:
    app[SLOTS] = asyncio.Semaphore(TEST_SLOTS)
    app.router.add_get("/api/v1/sources", list_sources)
    app.router.add_post("/api/v1/sources", create_source)
    app.router.add_post("/api/v1/sources/test", test_candidate)
    app.router.add_put("/api/v1/sources/{source_id}", put_source)
    app.router.add_delete("/api/v1/sources/{source_id}", delete_source)
