"""`/_sandbox/` admin routes of the Certain sandbox: change its data and inject faults.

Not part of Certain's API and unauthenticated (the sandbox binds loopback). Plain JSON; errors
are `{"message": …}` with 400 (bad input, naming the field, the value and what was expected) or
404 (no such account, event, registration or session). `accountCode` defaults to the seeded
account.

Data:
- `POST /_sandbox/events` `{"eventCode":…, "eventName":…, "setup":{…}, "sessions":[{"code":…}]}`
  creates an event (201) or changes an existing one (200, setup included); `dateModified` moves.
- `POST /_sandbox/registrations` `{"eventCode":…, "registrationStatusLabel":"New", "profile":{…},
  "isTest":true, …}` creates one (201); with `"count": N` creates N generated ones.
- `PATCH /_sandbox/registrations/{acct}/{evt}/{code}` `{"registrationStatusLabel":"Attended"}`
  changes one; `DELETE` on the same path soft-deletes it (`isActive` false, still served).
- `POST /_sandbox/registrations/mass` `{"eventCode":…, "set":{…}, "codes":[…]}` or
  `{"eventCode":…, "set":{…}, "where":{"registrationStatusLabel":"New"}, "limit":5000}`: one
  mass action, every record stamped with the same `dateModified`.
- `POST /_sandbox/session-registrations` `{"eventCode":…, "registrationCode":…, "sessionCode":…,
  "regSessionStatus":"Registered"}`: assign or move (reference §2.8 transitions); with
  `"registrationCodes": […]` instead, a mass move answering the codes moved and those refused.
- `POST /_sandbox/accounts/{acct}/password` `{"password":…}`: the API user's password changes
  (calls with the old one get 401 from then on).

Clock and faults:
- `POST /_sandbox/clock` `{"skewSeconds": -120}`: Certain's clock runs that far from this machine's.
- `POST /_sandbox/latency` `{"ms": 250}`: extra latency on every API call.
- `POST /_sandbox/faults` `{"status": 503, "count": 3}`: the next N API calls answer that status
  (401 comes with its challenge); `{"malformed": N}`: the next N registration records served are
  broken (a missing `registrationCode`, an unparseable `dateModified`, a `profile` that is not an
  object, in turn); `{"malformedSessions": N}`: likewise the next N session registration records
  (a missing `sessionCode`, an unparseable `dateModified`, a `regSessionStatus` that is not text).
  `GET` lists pending faults, `DELETE` clears them and the latency.
- `GET /_sandbox/status`, `GET /_sandbox/calls` (every API call: path, query, status, records).
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from simulators.certain.sandbox_changes import (
    ChangeError,
    change_registration,
    create_many,
    create_registration,
    find_event,
    mass_change,
    set_session_status,
    soft_delete,
    upsert_event,
)
from simulators.certain.sandbox_faults import StatusFault
from simulators.certain.sandbox_seed import DEFAULT_ACCOUNT
from simulators.certain.sandbox_state import SandboxEvent, format_ts

if TYPE_CHECKING:
    from simulators.certain.sandbox import CertainSandbox

MAX_BULK = 100_000

AdminHandler = Callable[[web.Request, dict[str, Any]], Awaitable[web.Response]]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ChangeError("the body is not JSON: expected a JSON object") from None
    if not isinstance(data, dict):
        raise ChangeError(f"the body is {type(data).__name__}: expected a JSON object")
    return data


def _int(data: dict[str, Any], name: str, minimum: int, maximum: int = MAX_BULK) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ChangeError(f"'{name}' is {value!r}: expected an integer {minimum}..{maximum}")
    return value


def _number(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChangeError(f"'{name}' is {value!r}: expected a number")
    return float(value)


def _str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ChangeError(f"'{name}' is {value!r}: expected a non-blank string")
    return value


def _guarded(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request, await _body(request))
        except ChangeError as err:
            return _json({"message": str(err)}, err.status)

    return wrapped


def register_admin(app: web.Application, sb: CertainSandbox) -> None:
    rng = random.Random(sb.seed * 7919 + 1)

    def account_of(data: dict[str, Any]) -> str:
        return _str(data, "accountCode") if "accountCode" in data else DEFAULT_ACCOUNT

    def event_of(data: dict[str, Any]) -> Any:
        data = dict(data)
        return find_event(sb.state, account_of(data), _str(data, "eventCode"))

    def without(data: dict[str, Any], *names: str) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k not in names}

    async def status(request: web.Request, data: dict[str, Any]) -> web.Response:
        return _json(
            {
                "now": format_ts(sb.clock.now()),
                "clockSkewSeconds": sb.clock.skew_s,
                "accounts": [
                    {
                        "accountCode": a.code,
                        "user": a.user,
                        "events": sorted(a.events),
                        "registrations": sum(len(e.registrations) for e in a.events.values()),
                    }
                    for a in sb.state.accounts.values()
                ],
                "faults": sb.faults.as_dict(),
                "calls": len(sb.calls),
            }
        )

    async def calls(request: web.Request, data: dict[str, Any]) -> web.Response:
        return _json({"calls": sb.calls})

    async def events(request: web.Request, data: dict[str, Any]) -> web.Response:
        account = account_of(data)
        existed = sb.state.event(account, str(data.get("eventCode"))) is not None
        event = upsert_event(sb.state, account, without(data, "accountCode"))
        return _json(event.as_json(frozenset(), detail=True), 200 if existed else 201)

    async def registrations(request: web.Request, data: dict[str, Any]) -> web.Response:
        event = event_of(data)
        fields = without(data, "accountCode", "eventCode", "count")
        if "count" in data:
            regs = create_many(sb.state, event, _int(data, "count", 1), fields, rng)
        else:
            regs = [create_registration(sb.state, event, fields, rng)]
        body = [r.as_json(frozenset({"registration_questions", "reg_properties"})) for r in regs]
        return _json({"registrations": body}, 201)

    def path_event(request: web.Request) -> Any:
        return find_event(sb.state, request.match_info["acct"], request.match_info["evt"])

    async def change(request: web.Request, data: dict[str, Any]) -> web.Response:
        event = path_event(request)
        reg = change_registration(sb.state, event, request.match_info["code"], data)
        return _json(reg.as_json(frozenset({"registration_questions", "reg_properties"})))

    async def delete(request: web.Request, data: dict[str, Any]) -> web.Response:
        reg = soft_delete(sb.state, path_event(request), request.match_info["code"])
        return _json(reg.as_json(frozenset()))

    async def mass(request: web.Request, data: dict[str, Any]) -> web.Response:
        event = event_of(data)
        changes = data.get("set")
        if not isinstance(changes, dict) or not changes:
            raise ChangeError(f"'set' is {changes!r}: expected an object of fields to change")
        codes = data.get("codes")
        if codes is not None and (
            not isinstance(codes, list) or not all(isinstance(c, str) for c in codes)
        ):
            raise ChangeError(f"'codes' is {codes!r}: expected a list of registration codes")
        where = data.get("where")
        if where is not None and not isinstance(where, dict):
            raise ChangeError(f"'where' is {where!r}: expected an object")
        limit = _int(data, "limit", 1) if "limit" in data else None
        changed = mass_change(sb.state, event, changes, codes, where, limit)
        stamps = sorted({r.date_modified for r in changed})
        return _json(
            {
                "changed": len(changed),
                "registrationCodes": [r.code for r in changed],
                "dateModified": [format_ts(s) for s in stamps],
            }
        )

    async def session_registrations(request: web.Request, data: dict[str, Any]) -> web.Response:
        event = event_of(data)
        if "registrationCodes" in data:
            return _json(mass_session_status(event, data))
        agenda = set_session_status(
            sb.state,
            event,
            _str(data, "registrationCode"),
            _str(data, "sessionCode"),
            _str(data, "regSessionStatus"),
        )
        return _json(agenda.as_json(event.code))

    def mass_session_status(event: SandboxEvent, data: dict[str, Any]) -> dict[str, Any]:
        """A mass session move (a session's check-in list scanned at once): each registration
        moves if Certain allows it; the refused ones are listed with their reason."""
        codes = data.get("registrationCodes")
        if (
            not isinstance(codes, list)
            or not 1 <= len(codes) <= MAX_BULK
            or not all(isinstance(c, str) for c in codes)
        ):
            raise ChangeError(
                f"'registrationCodes': expected a list of 1..{MAX_BULK} registration codes"
            )
        session_code, status = _str(data, "sessionCode"), _str(data, "regSessionStatus")
        changed: list[str] = []
        refused: list[dict[str, str]] = []
        for code in codes:
            try:
                set_session_status(sb.state, event, code, session_code, status)
            except ChangeError as error:
                refused.append({"registrationCode": code, "message": str(error)})
            else:
                changed.append(code)
        return {"changed": len(changed), "registrationCodes": changed, "refused": refused}

    async def password(request: web.Request, data: dict[str, Any]) -> web.Response:
        account = sb.state.account(request.match_info["acct"])
        if account is None:
            raise ChangeError(f"account '{request.match_info['acct']}' not found", 404)
        account.password = _str(data, "password")
        return _json({"accountCode": account.code, "user": account.user})

    async def clock(request: web.Request, data: dict[str, Any]) -> web.Response:
        sb.clock.skew_s = _number(data, "skewSeconds")
        return _json({"clockSkewSeconds": sb.clock.skew_s, "now": format_ts(sb.clock.now())})

    async def latency(request: web.Request, data: dict[str, Any]) -> web.Response:
        ms = _number(data, "ms")
        if ms < 0:
            raise ChangeError(f"'ms' is {ms!r}: expected a number >= 0")
        sb.faults.latency_ms = ms
        return _json({"latencyMs": ms})

    async def add_fault(request: web.Request, data: dict[str, Any]) -> web.Response:
        if "malformed" in data:
            sb.faults.malformed += _int(data, "malformed", 1)
        elif "malformedSessions" in data:
            sb.faults.malformed_sessions += _int(data, "malformedSessions", 1)
        elif "status" in data:
            code = _int(data, "status", 400, 599)
            count = _int(data, "count", 1) if "count" in data else 1
            sb.faults.statuses.append(StatusFault(code, count))
        else:
            raise ChangeError(
                "give 'status' (an HTTP status for the next 'count' calls), 'malformed' "
                "(how many registration records to break) or 'malformedSessions' (how many "
                "session registration records)"
            )
        return _json(sb.faults.as_dict(), 201)

    async def faults(request: web.Request, data: dict[str, Any]) -> web.Response:
        return _json(sb.faults.as_dict())

    async def clear_faults(request: web.Request, data: dict[str, Any]) -> web.Response:
        sb.faults.clear()
        return _json(sb.faults.as_dict())

    r = app.router
    reg_path = "/_sandbox/registrations/{acct}/{evt}/{code}"
    routes: list[tuple[str, str, AdminHandler]] = [
        ("GET", "/_sandbox/", status),
        ("GET", "/_sandbox/status", status),
        ("GET", "/_sandbox/calls", calls),
        ("POST", "/_sandbox/events", events),
        ("POST", "/_sandbox/registrations", registrations),
        ("POST", "/_sandbox/registrations/mass", mass),
        ("PATCH", reg_path, change),
        ("DELETE", reg_path, delete),
        ("POST", "/_sandbox/session-registrations", session_registrations),
        ("POST", "/_sandbox/accounts/{acct}/password", password),
        ("POST", "/_sandbox/clock", clock),
        ("POST", "/_sandbox/latency", latency),
        ("GET", "/_sandbox/faults", faults),
        ("POST", "/_sandbox/faults", add_fault),
        ("DELETE", "/_sandbox/faults", clear_faults),
    ]
    for method, path, handler in routes:
        r.add_route(method, path, _guarded(handler))
