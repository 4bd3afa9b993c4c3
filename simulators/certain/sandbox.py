"""The Certain sandbox: a real HTTP server that answers like a Certain account's REST API.

It is the far end of the Certain source in development, tests, demos and benchmarks, so it
follows reference/certain-data.md rather than what any one poller expects:

- §3 base path `/certainExternal/service/v1/{Object}/{accountCode}[/{eventCode}[/{code}]]`,
  HTTP Basic auth (401 with a `WWW-Authenticate` challenge otherwise; valid credentials used on
  another account: 403), JSON answers.
- §3 collections in the envelope `{"size", "completeCollectionSize", "maxResults", <plural>}`
  with `max_results`/`start_index` paging, `dateModified_after|before` (both timestamp formats),
  `orderBy=<field>_asc|_desc`; 404 when nothing matches, 400 with a readable message.
- Endpoints a poller needs: `Event/{acct}` (§2.2, `isActive`, `includeList=tags`),
  `Event/{acct}/{evt}` (with the event's questions and setup, [INFERRED] shape of DESIGN 4.2),
  `Registration/{acct}[/{evt}[/{code}]]` (§2.4, `includeList=registration_questions,
  reg_properties`), `AttendeeType/{acct}/{evt}` (§2.6), session registrations as
  `RegistrationAgenda/{acct}/{evt}` → `registrationAgendas` carrying `sessionCode`, `instanceId`
  and `regSessionStatus` (§2.8), and the API 2.0 session list
  `/api/standard/2.0/accounts/{acct}/events/{evt}/sessions` (§2.8).

Error bodies are `{"message": …}` ([INFERRED]: the reference names readable messages, not their
envelope). Admin routes under `/_sandbox/` (sandbox_admin.py) change the data and inject faults;
the same operations are methods here for tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from simulators.certain.sandbox_admin import register_admin
from simulators.certain.sandbox_faults import (
    MALFORMED_SESSION_VARIANTS,
    MALFORMED_VARIANTS,
    Faults,
)
from simulators.certain.sandbox_query import (
    Collection,
    QueryError,
    envelope,
    include_list,
    select,
)
from simulators.certain.sandbox_seed import DEFAULT_PASSWORD, DEFAULT_USER, seeded_state
from simulators.certain.sandbox_state import (
    SandboxClock,
    SandboxEvent,
    SandboxRegistration,
    SandboxState,
    SessionRegistration,
)

__all__ = ["CertainSandbox", "Faults", "build_app"]

V1 = "/certainExternal/service/v1"
V2 = "/api/standard/2.0"
REALM = 'Basic realm="certainExternal"'
CALL_LOG_MAX = 20000
SHUTDOWN_GRACE_S = 1.0

Handler = Callable[[web.Request, "Served"], dict[str, Any]]


@dataclass
class Served:
    """What one API call served, for the call log (records counts poll cost)."""

    records: int = 0
    malformed: list[str] = field(default_factory=list)


class CertainSandbox:
    def __init__(
        self,
        seed: int = 1,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        per_event: int | None = None,
    ) -> None:
        self.seed = seed
        self.clock = SandboxClock()
        extra = {} if per_event is None else {"per_event": per_event}
        self.state: SandboxState = seeded_state(self.clock, seed, user, password, **extra)
        self.faults = Faults()
        self.calls: list[dict[str, Any]] = []
        self.after_answer: list[Callable[[web.Request], None]] = []
        """Called after each API answer (not admin routes): a test changes records between two
        page reads of a poll with one, as Certain users do while a poller pages."""
        self._malformed_turn = 0
        self._malformed_session_turn = 0
        self.url = ""
        self.app = build_app(self)
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = a free port); returns the base URL."""
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> CertainSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the request pipeline -----------------------------------------------------------------

    def api(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap an endpoint: latency → injected status → Basic auth → handler → call log."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            started = time.monotonic()
            served = Served()
            response = await self._answer(request, handler, served)
            self._log(request, response.status, served, started)
            for hook in self.after_answer:
                hook(request)
            return response

        return wrapped

    async def _answer(
        self, request: web.Request, handler: Handler, served: Served
    ) -> web.StreamResponse:
        if self.faults.latency_ms > 0:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        injected = self.faults.take_status()
        if injected == 401:
            return _unauthorized("Invalid credentials")
        if injected is not None:
            return web.Response(status=injected, text=f"{injected} injected by the sandbox")
        refusal = self._authorize(request)
        if refusal is not None:
            return refusal
        try:
            return web.json_response(handler(request, served))
        except QueryError as err:
            return web.json_response({"message": err.message}, status=err.status)

    def _authorize(self, request: web.Request) -> web.StreamResponse | None:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            return _unauthorized("Authentication required")
        try:
            user, sep, password = base64.b64decode(encoded.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return _unauthorized("Malformed Basic credentials")
        owner = next(
            (a for a in self.state.accounts.values() if a.user == user and a.password == password),
            None,
        )
        if not sep or owner is None:
            return _unauthorized("Invalid credentials")
        wanted = request.match_info.get("acct", "")
        if wanted != owner.code:
            return web.json_response(
                {"message": f"User '{user}' has no access to account '{wanted}'"}, status=403
            )
        return None

    def _log(self, request: web.Request, status: int, served: Served, started: float) -> None:
        if len(self.calls) >= CALL_LOG_MAX:
            del self.calls[: CALL_LOG_MAX // 10]
        self.calls.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "status": status,
                "records": served.records,
                "malformed": served.malformed,
                "at": self.clock.now(),
                "durationMs": round((time.monotonic() - started) * 1000, 3),
            }
        )

    def spoil(self, record: dict[str, Any], served: Served) -> dict[str, Any]:
        """Break the record if a malformed-record fault is pending."""
        if self.faults.malformed <= 0:
            return record
        self.faults.malformed -= 1
        reason, breaker = MALFORMED_VARIANTS[self._malformed_turn % len(MALFORMED_VARIANTS)]
        self._malformed_turn += 1
        served.malformed.append(f"{record.get('registrationCode', '?')}: {reason}")
        breaker(record)
        return record

    def spoil_session(self, record: dict[str, Any], served: Served) -> dict[str, Any]:
        """Break the session registration record if such a fault is pending."""
        if self.faults.malformed_sessions <= 0:
            return record
        self.faults.malformed_sessions -= 1
        variants = MALFORMED_SESSION_VARIANTS
        reason, breaker = variants[self._malformed_session_turn % len(variants)]
        self._malformed_session_turn += 1
        served.malformed.append(f"{record.get('registrationCode', '?')}: {reason}")
        breaker(record)
        return record

    # -- lookups shared by the endpoints ------------------------------------------------------

    def event_of(self, request: web.Request) -> SandboxEvent:
        acct, evt = request.match_info["acct"], request.match_info["evt"]
        event = self.state.event(acct, evt)
        if event is None:
            raise QueryError(404, f"Event '{evt}' not found in account '{acct}'")
        return event


def _unauthorized(message: str) -> web.Response:
    return web.json_response({"message": message}, status=401, headers={"WWW-Authenticate": REALM})


# --- endpoints ---------------------------------------------------------------------------------

REGISTRATIONS = Collection(
    plural="registrations",
    sort_keys={
        "dateModified": lambda r: (r.date_modified, r.pk_reg_id),
        "dateCreated": lambda r: (r.date_created, r.pk_reg_id),
        "statusModified": lambda r: (r.status_modified, r.pk_reg_id),
        "registrationCode": lambda r: r.code,
        "registrationStatusLabel": lambda r: (r.status, r.pk_reg_id),
        "lastName": lambda r: (str(r.profile.get("lastName") or ""), r.pk_reg_id),
    },
    equality={
        "isActive": lambda r: r.is_active,
        "registrationStatusLabel": lambda r: r.status,
        "attendeeTypeCode": lambda r: r.attendee_type,
        "email": lambda r: r.profile.get("email"),
    },
    date_modified=lambda r: r.date_modified,
    date_created=lambda r: r.date_created,
)

EVENTS = Collection(
    plural="events",
    sort_keys={
        "dateModified": lambda e: (e.date_modified, e.code),
        "dateCreated": lambda e: (e.date_created, e.code),
        "eventCode": lambda e: e.code,
    },
    equality={"isActive": lambda e: e.is_active, "eventStatus": lambda e: e.status},
    date_modified=lambda e: e.date_modified,
    date_created=lambda e: e.date_created,
)

AGENDAS = Collection(
    plural="registrationAgendas",
    sort_keys={
        "dateModified": lambda a: (a.date_modified, a.registration_code, a.session.code),
        "dateCreated": lambda a: (a.date_created, a.registration_code, a.session.code),
    },
    equality={
        "registrationCode": lambda a: a.registration_code,
        "sessionCode": lambda a: a.session.code,
        "regSessionStatus": lambda a: a.status,
    },
    date_modified=lambda a: a.date_modified,
    date_created=lambda a: a.date_created,
)

SESSIONS = Collection(
    plural="sessions",
    sort_keys={"dateModified": lambda s: (s.date_modified, s.code)},
    equality={"isActive": lambda s: s.is_active},
    date_modified=lambda s: s.date_modified,
)


def _registrations(
    sb: CertainSandbox, request: web.Request, served: Served, records: list[SandboxRegistration]
) -> dict[str, Any]:
    page = select(records, request.query, REGISTRATIONS, "registrations")
    include = include_list(request.query)
    items = [sb.spoil(r.as_json(include), served) for r in page.items]
    served.records = len(items)
    return envelope(page, REGISTRATIONS.plural, items)


def register_api(app: web.Application, sb: CertainSandbox) -> None:
    def events(request: web.Request, served: Served) -> dict[str, Any]:
        account = sb.state.accounts[request.match_info["acct"]]
        page = select(list(account.events.values()), request.query, EVENTS, "events")
        include = include_list(request.query)
        items = [e.as_json(include) for e in page.items]
        served.records = len(items)
        return envelope(page, EVENTS.plural, items)

    def event(request: web.Request, served: Served) -> dict[str, Any]:
        served.records = 1
        return sb.event_of(request).as_json(include_list(request.query), detail=True)

    def account_registrations(request: web.Request, served: Served) -> dict[str, Any]:
        account = sb.state.accounts[request.match_info["acct"]]
        records = [r for e in account.events.values() for r in e.registrations.values()]
        records.sort(key=lambda r: r.pk_reg_id)
        return _registrations(sb, request, served, records)

    def event_registrations(request: web.Request, served: Served) -> dict[str, Any]:
        records = list(sb.event_of(request).registrations.values())
        return _registrations(sb, request, served, records)

    def registration(request: web.Request, served: Served) -> dict[str, Any]:
        event = sb.event_of(request)
        code = request.match_info["code"]
        reg = event.registrations.get(code)
        if reg is None:
            raise QueryError(404, f"Registration '{code}' not found in event '{event.code}'")
        served.records = 1
        return sb.spoil(reg.as_json(include_list(request.query)), served)

    def agendas(request: web.Request, served: Served) -> dict[str, Any]:
        event = sb.event_of(request)
        records: list[SessionRegistration] = list(event.agendas.values())
        page = select(records, request.query, AGENDAS, "session registrations")
        items = [sb.spoil_session(a.as_json(event.code), served) for a in page.items]
        served.records = len(items)
        return envelope(page, AGENDAS.plural, items)

    def attendee_types(request: web.Request, served: Served) -> dict[str, Any]:
        event = sb.event_of(request)
        items = [
            {"attendeeTypeCode": t["code"], "name": t["code"], "eventCode": event.code}
            for t in event.setup.get("attendeeTypes", [])
        ]
        if not items:
            raise QueryError(404, "No attendee types found")
        served.records = len(items)
        return {
            "size": len(items),
            "completeCollectionSize": len(items),
            "maxResults": len(items),
            "attendeeTypes": items,
        }

    def sessions(request: web.Request, served: Served) -> dict[str, Any]:
        event = sb.event_of(request)
        page = select(list(event.sessions.values()), request.query, SESSIONS, "sessions")
        items = [s.as_json(event.code) for s in page.items]
        served.records = len(items)
        return envelope(page, SESSIONS.plural, items)

    routes: list[tuple[str, Handler]] = [
        (f"{V1}/Event/{{acct}}", events),
        (f"{V1}/Event/{{acct}}/{{evt}}", event),
        (f"{V1}/Registration/{{acct}}", account_registrations),
        (f"{V1}/Registration/{{acct}}/{{evt}}", event_registrations),
        (f"{V1}/Registration/{{acct}}/{{evt}}/{{code}}", registration),
        (f"{V1}/RegistrationAgenda/{{acct}}/{{evt}}", agendas),
        (f"{V1}/AttendeeType/{{acct}}/{{evt}}", attendee_types),
        (f"{V2}/accounts/{{acct}}/events/{{evt}}/sessions", sessions),
    ]
    for path, handler in routes:
        app.router.add_get(path, sb.api(handler), allow_head=False)


def build_app(sb: CertainSandbox) -> web.Application:
    app = web.Application()
    register_api(app, sb)
    register_admin(app, sb)
    return app
