"""The Marketo sandbox: a real HTTP server that behaves like a Marketo instance.

It is Signal's only window on Marketo in development, tests, demos and benchmarks, so it answers
the way Marketo does (reference/marketo-api.md), not the way any one client expects: identity
tokens with exact expiry, envelopes with string codes inside HTTP 200, the instance limits, and
record-level results in input order. Admin routes under `/_sandbox/` (no auth) expose what
happened and inject faults; the same operations are methods on `Sandbox` for tests.

Order of checks on a REST call, chosen so that codes the docs mark "not counted" are not counted:
URI length (414) → body size (413) → outage window → access token (601/602) → rate (606) →
concurrency (615) → daily quota (607) → [counted, in flight] latency → injected fault → handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict

from simulators.marketo.activities import ROUTES as ACTIVITY_ROUTES
from simulators.marketo.admin import register as register_admin
from simulators.marketo.auth import TokenStore
from simulators.marketo.campaigns import ROUTES as CAMPAIGN_ROUTES
from simulators.marketo.config import ManualClock, SandboxConfig, SandboxSeed
from simulators.marketo.forms import ROUTES as FORM_ROUTES
from simulators.marketo.leads import ROUTES as LEAD_ROUTES
from simulators.marketo.limits import DailyQuota, Fault, Faults, OutageMode, RateWindow
from simulators.marketo.programs import ROUTES as PROGRAM_ROUTES
from simulators.marketo.routes import Call, Route, resolve
from simulators.marketo.state import SandboxCall, SandboxState
from simulators.marketo.wire import (
    Params,
    RequestIds,
    SandboxError,
    error_envelope,
    iso,
    json_response,
)

__all__ = ["ManualClock", "Sandbox", "SandboxConfig", "SandboxSeed", "build_app"]

log = logging.getLogger("signal.sandbox")

ROUTES: list[Route] = [
    *LEAD_ROUTES,
    *ACTIVITY_ROUTES,
    *CAMPAIGN_ROUTES,
    *FORM_ROUTES,
    *PROGRAM_ROUTES,
]
SERVER_BODY_CAP = 64 * 1024 * 1024
"""aiohttp's own cap; Marketo's 1 MB limit is enforced by the sandbox with a proper 413."""
SHUTDOWN_GRACE_S = 1.0
"""How long `stop()` lets in-flight (possibly artificially slow) calls finish."""


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.url = ""
        self.request_ids = RequestIds()
        self.tokens = TokenStore(self.config.token_lifetime_s)
        self.rate = RateWindow(self.config.rate_limit_calls, self.config.rate_limit_window_s)
        self.quota = DailyQuota(self.config.daily_quota, self.config.quota_timezone)
        self.faults = Faults()
        self.in_flight = 0
        self.state = SandboxState.from_seed(self.config.seed, self.now())
        self.app = build_app(self)
        self._runner: web.AppRunner | None = None

    def now(self) -> float:
        return self.config.clock()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = a free port); returns the base URL."""
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_GRACE_S,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound_port = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- operations for tests and the admin routes --------------------------------------------

    def inject_error(
        self,
        code: str | int,
        count: int = 1,
        endpoint: str | None = None,
        message: str | None = None,
    ) -> Fault:
        """The next `count` REST calls (or those to `endpoint`) fail with a Marketo code."""
        fault = Fault(count=count, code=str(code), message=message, endpoint=endpoint)
        self.faults.queue.append(fault)
        return fault

    def inject_http_status(self, status: int, count: int = 1, endpoint: str | None = None) -> Fault:
        """The next `count` calls answer with a bare HTTP status (e.g. 502, 503, 500)."""
        fault = Fault(count=count, status=status, endpoint=endpoint)
        self.faults.queue.append(fault)
        return fault

    def set_latency(self, ms: float) -> None:
        """Extra latency on every call, on top of `config.latency_ms`."""
        self.faults.latency_ms = ms

    def start_outage(self, seconds: float, mode: OutageMode = "503") -> None:
        """For `seconds` of sandbox clock every call gets HTTP 503, or its connection dropped."""
        self.faults.outage_until = self.now() + seconds
        self.faults.outage_mode = mode

    def end_outage(self) -> None:
        self.faults.outage_until = None

    def revoke_tokens(self) -> int:
        return self.tokens.revoke_all()

    def expire_tokens(self) -> int:
        return self.tokens.expire_all(self.now())

    def exhaust_quota(self) -> None:
        self.quota.exhaust(self.now())

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        """Back to the seeded instance: leads, runs, fills, calls, limits, faults; tokens stay."""
        self.state.replace_with(SandboxState.from_seed(self.config.seed, self.now()))
        self.rate.reset()
        self.quota.reset()
        self.faults.clear()

    def add_lead(self, **fields: Any) -> int:
        """Insert a lead directly (no validation, no call counted)."""
        return self.state.insert(dict(fields), self.now())

    def calls(self, endpoint: str | None = None) -> list[SandboxCall]:
        return [c for c in self.state.calls if endpoint is None or c.endpoint == endpoint]

    # -- request pipeline ---------------------------------------------------------------------

    async def handle_identity(self, request: web.Request) -> web.StreamResponse:
        log = _CallLog(self, request, "identity")
        early = await self._gate(request, log)
        if isinstance(early, web.StreamResponse):
            return log.done(early)
        _body, form = early
        await self._sleep_latency()
        fault = self.faults.take("identity", request.path, rest=False)
        if fault is not None and fault.status is not None:
            return log.done(_injected(fault.status))
        params = Params(request.query, form)
        client_id = params.get("client_id")
        status, payload = self._token_reply(params, client_id, log.now)
        resp = json_response(request, payload, status)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Pragma"] = "no-cache"
        log.client_id = client_id if status == 200 else None
        return log.done(resp)

    def _token_reply(
        self, params: Params, client_id: str | None, now: float
    ) -> tuple[int, dict[str, Any]]:
        grant = params.get("grant_type")
        if not grant:
            return 400, {"error": "invalid_request", "error_description": "Missing grant type"}
        if grant != "client_credentials":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": f"Unsupported grant type: {grant}",
            }
        secret = self.config.clients().get(client_id or "")
        if client_id is None or secret is None or params.get("client_secret") != secret:
            return 401, {"error": "invalid_client", "error_description": "Bad client credentials"}
        token, expires_in = self.tokens.issue(client_id, now)
        return 200, {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": expires_in,
            "scope": self.config.scope,
        }

    async def handle_rest(self, request: web.Request) -> web.StreamResponse:
        log = _CallLog(self, request, _endpoint_guess(request))
        early = await self._gate(request, log)
        if isinstance(early, web.StreamResponse):
            return log.done(early)
        body, form = early
        method = request.method
        override = request.query.get("_method") or form.get("_method")
        if method == "POST" and override:
            method = override.upper()
        matched, match, known = resolve(ROUTES, request.path, method)
        log.endpoint = matched.name if matched else "unknown"
        asset = matched.asset if matched else request.path.startswith("/rest/asset/")
        now = log.now
        request_id = log.request_id = self.request_ids.next(now)
        token = _token_of(request, form)
        log.client_id = self.tokens.client_of(token) if token else None
        latency = self.config.latency_ms + self.faults.latency_ms

        def fail(err: SandboxError) -> web.StreamResponse:
            log.success, log.code = False, err.code
            return log.done(json_response(request, error_envelope(request_id, err, asset)))

        state = self.tokens.check(token, now)
        refusal: SandboxError | None = None
        if state != "valid":
            refusal = SandboxError("602" if state == "expired" else "601")
        elif not self.rate.allow(now):
            refusal = SandboxError("606", self.rate.message)
        elif self.in_flight >= self.config.max_concurrent:
            limit = self.config.max_concurrent
            refusal = SandboxError("615", f"Concurrent access limit '{limit}' reached")
        elif not self.quota.allow(now):
            refusal = SandboxError("607")
        if refusal is not None:
            await _sleep(latency)
            return fail(refusal)
        self.rate.record(now)
        self.quota.record(now)
        self.in_flight += 1
        try:
            await _sleep(latency)
            fault = self.faults.take(log.endpoint, request.path, rest=True)
            if fault is not None and fault.status is not None:
                return log.done(_injected(fault.status))
            if fault is not None:
                return fail(SandboxError(fault.code or "611", fault.message))
            if matched is None:
                return fail(SandboxError("605" if known else "610"))
            call = Call(
                request=request,
                state=self.state,
                config=self.config,
                params=Params(request.query, form),
                body=body,
                match=match,
                request_id=request_id,
                now=now,
            )
            try:
                payload = matched.handler(call)
            except SandboxError as err:
                log.batch = call.batch_size
                return fail(err)
            log.batch, log.success = call.batch_size, True
            return log.done(json_response(request, payload))
        finally:
            self.in_flight -= 1

    async def _gate(
        self, request: web.Request, log: _CallLog
    ) -> web.StreamResponse | tuple[bytes, MultiDict[str]]:
        """HTTP-level checks shared by identity and REST: 414, 413, outage. Returns body + form."""
        if len(request.raw_path.encode("utf-8")) > self.config.max_uri_bytes:
            return web.Response(status=414, text="414 Request-URI Too Long")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="413 Request Entity Too Large")
        if len(body) > self.config.max_body_bytes:
            return web.Response(status=413, text="413 Request Entity Too Large")
        if self.faults.in_outage(self.now()):
            if self.faults.outage_mode == "drop" and request.transport is not None:
                log.record(0)
                request.transport.abort()
                raise asyncio.CancelledError
            return web.Response(status=503, text="503 Service Unavailable")
        form: MultiDict[str] = MultiDict()
        ctype = request.headers.get("Content-Type", "").lower()
        if "application/x-www-form-urlencoded" in ctype and body:
            form.extend(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return body, form

    async def _sleep_latency(self) -> None:
        await _sleep(self.config.latency_ms + self.faults.latency_ms)


class _CallLog:
    """Collects what the call log needs while a request goes through the pipeline."""

    def __init__(self, sandbox: Sandbox, request: web.Request, endpoint: str) -> None:
        self.sandbox = sandbox
        self.request = request
        self.endpoint = endpoint
        self.started = time.monotonic()
        self.now = sandbox.now()
        self.success: bool | None = None
        self.code: str | None = None
        self.batch: int | None = None
        self.client_id: str | None = None
        self.request_id: str | None = None

    def record(self, status: int) -> None:
        """`status` 0 = connection dropped without a reply."""
        state = self.sandbox.state
        state.trim_calls(self.sandbox.config.call_log_max - 1)
        state.calls.append(
            SandboxCall(
                endpoint=self.endpoint,
                method=self.request.method,
                path=self.request.path,
                time=iso(self.now),
                at=self.now,
                httpStatus=status,
                success=self.success,
                code=self.code,
                batchSize=self.batch,
                requestId=self.request_id,
                durationMs=round((time.monotonic() - self.started) * 1000, 3),
                clientId=self.client_id,
            )
        )

    def done(self, response: web.StreamResponse) -> web.StreamResponse:
        self.record(response.status)
        return response


def _injected(status: int) -> web.Response:
    return web.Response(status=status, text=f"{status} injected by sandbox")


def _endpoint_guess(request: web.Request) -> str:
    """The endpoint name before the body is read (`_method` from the query only)."""
    method = request.method
    if method == "POST" and request.query.get("_method"):
        method = request.query["_method"].upper()
    matched, _, _ = resolve(ROUTES, request.path, method)
    return matched.name if matched else "unknown"


def _token_of(request: web.Request, form: MultiDict[str]) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return request.query.get("access_token") or form.get("access_token") or None


async def _sleep(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


def build_app(sandbox: Sandbox) -> web.Application:
    app = web.Application(
        client_max_size=SERVER_BODY_CAP,
        handler_args={"max_line_size": 1024 * 1024, "max_field_size": 64 * 1024},
    )
    app.router.add_route("*", "/identity/oauth/token", sandbox.handle_identity)
    app.router.add_route("*", "/rest/{tail:.*}", sandbox.handle_rest)
    register_admin(app, sandbox)
    return app
