"""The call loop of one Marketo connection: every request waits for its turn, goes out once
and comes back classified.

Every call goes through the same path: wait for the daily quota, a token, an in-flight slot and a
place in the rolling window; send with a timeout; classify the answer (stream/marketo/protocol.py).
Auth (601/602) and throttle (606/615/429) answers are handled here and never reach the caller as
failures unless they persist; technical failures are retried a few times with jittered backoff,
except those of a call that must not run twice (one given `before_send`: a campaign request, a
form submit) when Marketo may have run it (a timeout, a dropped connection, a 5xx): sending it
again here could run the campaign twice with nothing on record. Such a call comes back failed at
once, its "sending" mark standing, and its retry looks in Marketo's activity log first
(stream/pipeline/verify.py) or counts the repeat. Everything else comes back classified at once.
Each HTTP exchange is reported to the call hook (the ledger's `api_calls`).
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp

from stream.core.breaker import Breaker
from stream.marketo.breaker_edge import judge, open_failure
from stream.marketo.errors import (
    CallWithdrawn,
    FailureClass,
    MarketoError,
    MarketoFailure,
    not_run,
    withdrawn,
)
from stream.marketo.limits import CallLimits, MonotonicClock, QuotaPark, Sleep, WallClock, utc_now
from stream.marketo.protocol import (
    IDENTITY_PATH,
    MAX_URL_CHARS,
    Answer,
    parse_envelope,
    parse_identity,
    retry_after_seconds,
)
from stream.marketo.results import CallRecord
from stream.marketo.settings import MarketoSettings
from stream.marketo.token import AccessToken, IssuedToken, TokenCache, TokenLapsedError
from stream.server_answers import echo_forms, read_capped, scrub

log = logging.getLogger("stream.marketo")

CallHook = Callable[[CallRecord], Awaitable[None] | None]


MAX_ANSWER_BYTES = 32 * 1024 * 1024
"""The largest answer read: Marketo's biggest (300 leads with their fields, an asset page) is a
few MB; a runaway or hostile one is refused without holding it all in memory."""


class AnswerTooLarge(aiohttp.ClientPayloadError):
    """An answer over `MAX_ANSWER_BYTES`, read no further."""


async def read_answer(resp: aiohttp.ClientResponse) -> bytes:
    """The body, at most `MAX_ANSWER_BYTES` (AnswerTooLarge past it)."""
    raw = await read_capped(resp, MAX_ANSWER_BYTES)
    if len(raw) > MAX_ANSWER_BYTES:
        raise AnswerTooLarge(f"answer over {MAX_ANSWER_BYTES} bytes")
    return raw


def transport_failure(exc: BaseException, target: str, timeout_s: float) -> MarketoFailure:
    """Turn a network error into words an administrator can act on."""
    code, reason = "transport", type(exc).__name__
    if isinstance(exc, AnswerTooLarge):
        code, reason = "too-large", f"the answer is over {MAX_ANSWER_BYTES:,} bytes"
    elif isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        code, reason = "timeout", f"no answer within {timeout_s:g} s"
    elif isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        code, reason = "tls", "TLS handshake failed (certificate or protocol)"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            code, reason = "dns", "host name not found"
        elif isinstance(os_error, ssl.SSLError):
            code, reason = "tls", "TLS handshake failed"
        elif os_error.errno == errno.ECONNREFUSED or isinstance(os_error, ConnectionRefusedError):
            code, reason = "refused", "connection refused"
        elif os_error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            code, reason = "unreachable", "network unreachable"
        else:
            code, reason = "connect", os_error.strerror or type(os_error).__name__
    elif isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        code, reason = "disconnected", "the server closed the connection before answering"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        code, reason = "payload", "the answer was cut off"
    return MarketoFailure(
        kind=FailureClass.TECHNICAL,
        code=code,
        message=f"cannot reach {target}: {reason}",
        source="transport",
    )


class Transport:
    """One connection's HTTP session, limits, quota park and token cache, and the loop that
    sends a call through them."""

    def __init__(
        self,
        settings: MarketoSettings,
        *,
        on_call: CallHook | None = None,
        clock: MonotonicClock = time.monotonic,
        now: WallClock = utc_now,
        sleep: Sleep = asyncio.sleep,
        session: aiohttp.ClientSession | None = None,
        breaker: Breaker | None = None,
    ) -> None:
        self.settings = settings
        self._secret_echoes = echo_forms(settings.client_secret.get_secret_value())
        self._token_echoes: tuple[str, tuple[bytes, ...]] = ("", ())
        self._breaker = breaker
        self._on_call = on_call
        self._clock = clock
        self._now = now
        self._sleep = sleep
        self._session = session
        self._own_session = session is None
        self._limits = CallLimits(
            max_calls=settings.calls_per_window,
            window_s=settings.rate_window_s,
            max_in_flight=settings.max_in_flight,
            clock=clock,
        )
        self._quota = QuotaPark(now=now)
        self._tokens = TokenCache(
            self._fetch_token, margin_s=settings.token_refresh_margin_s, clock=clock, sleep=sleep
        )
        self._random = random.Random()
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_s, connect=settings.connect_timeout_s
        )
        self._identity_timeout = aiohttp.ClientTimeout(
            total=settings.identity_timeout_s, connect=settings.connect_timeout_s
        )

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    @property
    def limits(self) -> CallLimits:
        return self._limits

    @property
    def quota_parked_until(self) -> datetime | None:
        """When calls resume after Marketo reported the daily quota spent; None when not parked."""
        return self._quota.parked_until()

    @property
    def token_fetches(self) -> int:
        return self._tokens.fetches

    def http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.settings.max_in_flight + 2)
            self._session = aiohttp.ClientSession(connector=connector)
            self._own_session = True
        return self._session

    async def _report(self, record: CallRecord) -> None:
        if self._on_call is None:
            return
        try:
            result = self._on_call(record)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("call hook failed for %s %s", record.method, record.endpoint)

    async def _fetch_token(self) -> IssuedToken:
        s = self.settings
        form = {
            "grant_type": "client_credentials",
            "client_id": s.client_id,
            "client_secret": s.client_secret.get_secret_value(),
        }
        if s.scope:
            form["scope"] = s.scope
        started_at, t0 = self._now(), self._clock()
        status: int | None = None
        failure: MarketoFailure | None = None
        issued: IssuedToken | None = None
        try:
            # No redirect is followed: aiohttp sends a POST's body on to a 307/308's Location,
            # and the body holds the client secret, bound to this identity URL alone.
            async with self.http().post(
                s.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._identity_timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                body = scrub(await read_answer(resp), self._secret_echoes)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failure = transport_failure(exc, s.base_url, s.identity_timeout_s)
        else:
            issued, failure = parse_identity(status, body, s.token_url)
        await self._report(
            CallRecord(
                connection_id=s.connection_id,
                endpoint=IDENTITY_PATH,
                method="POST",
                started_at=started_at,
                duration_ms=(self._clock() - t0) * 1000,
                http_status=status,
                marketo_error=(
                    failure.code if failure is not None and failure.source == "identity" else None
                ),
                batch_size=0,
                request_id=None,
                failure_class=None if failure is None else failure.kind,
            )
        )
        if failure is not None:
            raise MarketoError(replace(failure, endpoint=IDENTITY_PATH))
        assert issued is not None
        return issued

    def _echoes_with(self, token: AccessToken) -> tuple[bytes, ...]:
        """The client secret's and this token's echo forms (the token's kept while it lasts)."""
        value = token.value.get_secret_value()
        if self._token_echoes[0] != value:
            self._token_echoes = (value, echo_forms(value) + self._secret_echoes)
        return self._token_echoes[1]

    async def _send(
        self,
        method: str,
        path: str,
        *,
        token: AccessToken,
        params: Mapping[str, str] | None,
        body: bytes | None,
        form: Mapping[str, str] | None,
        batch_size: int,
        attempt: int,
    ) -> Answer:
        s = self.settings
        headers = {"Accept": "application/json", "Authorization": token.header()}
        data: bytes | str | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = body
        elif form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(form)
        started_at, t0 = self._now(), self._clock()
        status: int | None = None
        raw = b""
        retry_after: str | None = None
        failure: MarketoFailure | None = None
        envelope: dict[str, Any] | None = None
        request_id: str | None = None
        try:
            async with self.http().request(
                method,
                s.base_url + path,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                raw = scrub(await read_answer(resp), self._echoes_with(token))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failure = transport_failure(exc, s.base_url, s.request_timeout_s)
        else:
            envelope, failure, request_id = parse_envelope(status, raw, path)
        if failure is not None:
            failure = replace(failure, endpoint=path, request_id=request_id)
        await self._report(
            CallRecord(
                connection_id=s.connection_id,
                endpoint=path,
                method=method,
                started_at=started_at,
                duration_ms=(self._clock() - t0) * 1000,
                http_status=status,
                marketo_error=(
                    failure.code if failure is not None and failure.source == "marketo" else None
                ),
                batch_size=batch_size,
                request_id=request_id,
                failure_class=None if failure is None else failure.kind,
                attempt=attempt,
            )
        )
        return Answer(envelope, failure, status, request_id, retry_after_seconds(retry_after))

    def _backoff(self, failures: int) -> float:
        s = self.settings
        ceiling = min(s.backoff_cap_s, s.backoff_base_s * 2 ** (failures - 1))
        return self._random.uniform(0, ceiling)

    def _parked_failure(self, until: datetime, path: str) -> MarketoFailure:
        return MarketoFailure(
            kind=FailureClass.QUOTA,
            code="607",
            message=f"daily quota reached; calls resume at {until.isoformat()}",
            source="local",
            endpoint=path,
            retry_at=until,
        )

    async def _token_or_failure(self) -> tuple[AccessToken | None, Answer]:
        try:
            return await self._tokens.get(), Answer(None, None, None)
        except MarketoError as exc:
            return None, Answer(None, exc.failure, exc.failure.http_status)
        except TokenLapsedError as exc:
            lapsed = MarketoFailure(
                kind=FailureClass.TECHNICAL, code="token-lapsed", message=str(exc)
            )
            return None, Answer(None, lapsed, None)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        form: Mapping[str, str] | None = None,
        batch_size: int = 0,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> Answer:
        """Send one logical call: wait for a slot, retry what is worth retrying, classify.

        `before_send` is awaited once, when the first attempt holds its slot and token and is
        about to go out (not while it waits for the rate window): a caller that records "this
        call may have run" records it as late as it can be true. Such a call is one that must not
        run twice: a technical failure that leaves open whether it ran is not retried here. A
        `before_send` that raises `CallWithdrawn` keeps the call from going out at all: it comes
        back as a local `withdrawn` failure.

        With a circuit breaker (`stream.core.breaker`), a call it refuses comes back at once as
        a `circuit-open` failure (nothing sent, `before_send` not awaited), and how an allowed
        call ended is told to it (`breaker_edge.judge`)."""
        breaker = self._breaker
        if breaker is None:
            return await self._call(method, path, params, body, form, batch_size, before_send)
        if not breaker.allow():
            failure = open_failure(breaker, self.settings.connection_id, path, self._now())
            return Answer(None, failure, None)
        try:
            answer = await self._call(method, path, params, body, form, batch_size, before_send)
        except BaseException:
            breaker.released()
            raise
        judge(breaker, answer.failure)
        return answer

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        form: Mapping[str, str] | None,
        batch_size: int,
        before_send: Callable[[], Awaitable[None]] | None,
    ) -> Answer:
        s = self.settings
        auth_retried = False
        technical = 0
        throttled_s = 0.0
        attempt = 0
        started = self._clock()
        once = before_send is not None
        while True:
            parked = self._quota.parked_until()
            if parked is not None:
                return Answer(None, self._parked_failure(parked, path), None)
            async with self._limits.slot() as ticket:
                # Checked again once the call may go out: a 607 or a token's end may have
                # come while it waited for a slot.
                parked = self._quota.parked_until()
                if parked is not None:
                    ticket.sent = False
                    return Answer(None, self._parked_failure(parked, path), None)
                token, answer = await self._token_or_failure()
                if token is None:
                    ticket.sent = False
                else:
                    if before_send is not None:
                        try:
                            await before_send()
                        except CallWithdrawn as withdrawal:
                            ticket.sent = False
                            return Answer(None, withdrawn(withdrawal, path), None)
                        except BaseException:
                            ticket.sent = False
                            raise
                        before_send = None
                    attempt += 1
                    ticket.going()  # the window counts the call from here (limits.py)
                    answer = await self._send(
                        method,
                        path,
                        token=token,
                        params=params,
                        body=body,
                        form=form,
                        batch_size=batch_size,
                        attempt=attempt,
                    )
            failure = answer.failure
            if failure is None:
                return answer
            kind = failure.kind
            if kind is FailureClass.AUTH and token is not None and failure.source == "marketo":
                self._tokens.invalidate(token)
                if not auth_retried:
                    auth_retried = True
                    continue
                return answer
            if kind is FailureClass.THROTTLE:
                if failure.code == "615":
                    wait = s.concurrency_backoff_s * self._random.uniform(0.5, 1.5)
                elif answer.retry_after_s is not None:
                    wait = answer.retry_after_s
                else:
                    wait = s.rate_window_s
                if throttled_s + wait > s.max_throttle_wait_s:
                    retry_at = self._now() + timedelta(seconds=wait)
                    return replace(answer, failure=replace(failure, retry_at=retry_at))
                throttled_s += wait
                log.info("Marketo throttled %s (%s); waiting %.1f s", path, failure.code, wait)
                if failure.code == "615":
                    await self._sleep(wait)
                else:
                    await self._limits.window.block_for(wait)
                continue
            if kind is FailureClass.QUOTA:
                until = self._quota.park()
                log.warning(
                    "Marketo daily quota reached on %s; calls stop until %s",
                    s.connection_id,
                    until.isoformat(),
                )
                return replace(answer, failure=replace(failure, retry_at=until))
            if kind is FailureClass.TECHNICAL:
                if once and attempt > 0 and not not_run(failure):
                    log.warning(
                        "%s may have run on Marketo's side (%s); not sent again in place",
                        path,
                        failure.describe(),
                    )
                    return answer
                technical += 1
                wait = self._backoff(technical)
                spent = self._clock() - started
                if technical >= s.max_attempts or spent + wait + s.request_timeout_s > s.max_call_s:
                    return answer
                await self._sleep(wait)
                continue
            return answer

    async def read(
        self, path: str, params: Mapping[str, str], *, batch_size: int = 0
    ) -> dict[str, Any]:
        """A read: GET, or POST with `_method=GET` when the query would be too long."""
        query = urlencode(params)
        if len(self.settings.base_url) + len(path) + len(query) + 1 > MAX_URL_CHARS:
            answer = await self.call(
                "POST", path, form={"_method": "GET", **params}, batch_size=batch_size
            )
        else:
            answer = await self.call("GET", path, params=params, batch_size=batch_size)
            if answer.http_status == 414:
                answer = await self.call(
                    "POST", path, form={"_method": "GET", **params}, batch_size=batch_size
                )
        if answer.failure is not None:
            raise MarketoError(answer.failure)
        assert answer.envelope is not None
        return answer.envelope

    async def authenticate(self) -> AccessToken:
        """Obtain (or reuse) a token; raises MarketoError when the credentials or URL are wrong."""
        try:
            return await self._tokens.get()
        except TokenLapsedError as exc:
            raise MarketoError(
                MarketoFailure(kind=FailureClass.TECHNICAL, code="token-lapsed", message=str(exc))
            ) from None
