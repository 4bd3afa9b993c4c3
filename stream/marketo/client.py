"""Async client for one Marketo instance (one per connection).

Every call goes through the same path: wait for the daily quota, a token, an in-flight slot and a
place in the rolling window; send with a timeout; classify the answer. Auth (601/602) and throttle
(606/615/429) answers are handled here and never reach the caller as failures unless they persist;
technical failures are retried a few times with jittered backoff; everything else comes back
classified at once. Batch operations return one typed result per input, in input order.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
from pydantic import SecretStr

from stream.marketo.errors import (
    FailureClass,
    MarketoError,
    MarketoFailure,
    classify_http_status,
    record_failure,
    response_failure,
)
from stream.marketo.limits import CallLimits, MonotonicClock, QuotaPark, Sleep, WallClock, utc_now
from stream.marketo.results import CallRecord, Campaign, Form, FormField, LeadField, RecordResult
from stream.marketo.settings import MarketoSettings
from stream.marketo.token import AccessToken, IssuedToken, TokenCache, TokenLapsedError

log = logging.getLogger("stream.marketo")

CallHook = Callable[[CallRecord], Awaitable[None] | None]
UpsertAction = Literal["createOrUpdate", "createOnly", "updateOnly", "createDuplicate"]

IDENTITY_PATH = "/identity/oauth/token"
LEADS_PATH = "/rest/v1/leads.json"
DESCRIBE_PATH = "/rest/v1/leads/describe.json"
CAMPAIGNS_PATH = "/rest/v1/campaigns.json"
SUBMIT_FORM_PATH = "/rest/v1/leads/submitForm.json"
FORMS_PATH = "/rest/asset/v1/forms.json"
# Marketo refuses URIs over 8 KB (414); longer reads go as POST with `_method=GET`.
MAX_URL_CHARS = 7_000
MAX_PAGES = 10_000
MAX_ASSET_PAGE = 200
OK_RECORD_STATUSES = frozenset({"created", "updated", "deleted", "added", "removed"})


@dataclass(frozen=True, slots=True)
class _Answer:
    envelope: dict[str, Any] | None
    failure: MarketoFailure | None
    http_status: int | None
    request_id: str | None = None
    retry_after_s: float | None = None


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _transport_failure(exc: BaseException, target: str, timeout_s: float) -> MarketoFailure:
    """Turn a network error into words an administrator can act on."""
    code, reason = "transport", type(exc).__name__
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
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


def _http_failure(status: int, endpoint: str) -> MarketoFailure:
    reason = {
        404: "not found",
        405: "method not allowed",
        413: "request body too large",
        414: "request URI too long",
        429: "too many requests",
    }.get(status, "unexpected HTTP status")
    return MarketoFailure(
        kind=classify_http_status(status),
        code=f"http-{status}",
        message=f"HTTP {status}: {reason}",
        source="http",
        http_status=status,
        endpoint=endpoint,
    )


class _KeyLocks:
    """Serialises writes to one lead: near-simultaneous upserts of one key can duplicate it."""

    def __init__(self) -> None:
        self._held: dict[str, asyncio.Event] = {}

    @asynccontextmanager
    async def hold(self, keys: set[str]) -> Any:
        while True:
            busy = [self._held[k] for k in keys if k in self._held]
            if not busy:
                break
            await busy[0].wait()
        done = asyncio.Event()
        for k in keys:
            self._held[k] = done
        try:
            yield
        finally:
            for k in keys:
                if self._held.get(k) is done:
                    del self._held[k]
            done.set()


class MarketoClient:
    def __init__(
        self,
        settings: MarketoSettings,
        *,
        on_call: CallHook | None = None,
        clock: MonotonicClock = time.monotonic,
        now: WallClock = utc_now,
        sleep: Sleep = asyncio.sleep,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.settings = settings
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
        self._keys = _KeyLocks()
        self._fields: list[LeadField] | None = None
        self._fields_lock = asyncio.Lock()
        self._random = random.Random()
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_s, connect=settings.connect_timeout_s
        )
        self._identity_timeout = aiohttp.ClientTimeout(
            total=settings.identity_timeout_s, connect=settings.connect_timeout_s
        )

    def __repr__(self) -> str:
        return (
            f"MarketoClient(connection_id={self.settings.connection_id!r}, "
            f"base_url={self.settings.base_url!r})"
        )

    async def __aenter__(self) -> MarketoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.settings.max_in_flight + 2)
            self._session = aiohttp.ClientSession(connector=connector)
            self._own_session = True
        return self._session

    # ---- reporting -------------------------------------------------------------------------

    async def _report(self, record: CallRecord) -> None:
        if self._on_call is None:
            return
        try:
            result = self._on_call(record)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("call hook failed for %s %s", record.method, record.endpoint)

    # ---- identity --------------------------------------------------------------------------

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
            async with self._http().post(
                s.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._identity_timeout,
            ) as resp:
                status = resp.status
                body = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failure = _transport_failure(exc, s.base_url, s.identity_timeout_s)
        else:
            issued, failure = self._parse_identity(status, body)
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

    def _parse_identity(
        self, status: int, body: bytes
    ) -> tuple[IssuedToken | None, MarketoFailure | None]:
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        if status == 200 and isinstance(data, dict) and isinstance(data.get("access_token"), str):
            try:
                expires_in = int(data.get("expires_in", 0))
            except (TypeError, ValueError):
                expires_in = 0
            scope = data.get("scope")
            return (
                IssuedToken(
                    value=SecretStr(data["access_token"]),
                    expires_in=expires_in,
                    scope=scope if isinstance(scope, str) else None,
                ),
                None,
            )
        if status in (400, 401) and isinstance(data, dict) and "error" in data:
            code = str(data.get("error"))
            detail = data.get("error_description")
            message = "bad client id or secret"
            if code != "invalid_client":
                message = f"the identity endpoint refused the credentials ({code})"
            if isinstance(detail, str) and detail:
                message = f"{message}: {detail}"
            return None, MarketoFailure(
                kind=FailureClass.AUTH,
                code=code,
                message=message,
                source="identity",
                http_status=status,
            )
        if status >= 500 or status == 429:
            return None, _http_failure(status, IDENTITY_PATH)
        return None, MarketoFailure(
            kind=FailureClass.SYSTEMIC,
            code="not-marketo",
            message=(
                f"{self.settings.token_url} answers (HTTP {status}) but is not a Marketo "
                "identity endpoint"
            ),
            source="identity",
            http_status=status,
        )

    # ---- one HTTP call ---------------------------------------------------------------------

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
    ) -> _Answer:
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
            async with self._http().request(
                method,
                s.base_url + path,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failure = _transport_failure(exc, s.base_url, s.request_timeout_s)
        else:
            envelope, failure, request_id = self._parse_envelope(status, raw, path)
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
        retry_after_s: float | None = None
        if retry_after is not None:
            try:
                retry_after_s = max(0.0, float(retry_after))
            except ValueError:
                retry_after_s = None
        return _Answer(envelope, failure, status, request_id, retry_after_s)

    def _parse_envelope(
        self, status: int, raw: bytes, path: str
    ) -> tuple[dict[str, Any] | None, MarketoFailure | None, str | None]:
        if status != 200:
            return None, _http_failure(status, path), None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return (
                None,
                MarketoFailure(
                    kind=FailureClass.TECHNICAL,
                    code="not-json",
                    message="the answer is not a JSON object",
                    source="http",
                    http_status=status,
                ),
                None,
            )
        rid = data.get("requestId")
        request_id = rid if isinstance(rid, str) else None
        success = data.get("success")
        if success is True:
            return data, None, request_id
        if success is False:
            errors = data.get("errors")
            first = errors[0] if isinstance(errors, list) and errors else {}
            if not isinstance(first, Mapping):
                first = {}
            code = str(first.get("code", "")).strip()
            message = str(first.get("message", "")) or "request failed"
            if not code:
                return (
                    None,
                    MarketoFailure(
                        kind=FailureClass.TECHNICAL,
                        code=None,
                        message=f"success:false without an error code: {message}",
                        http_status=status,
                        known=False,
                    ),
                    request_id,
                )
            failure = response_failure(code, message, request_id=request_id, endpoint=path)
            if not failure.known:
                log.warning("unknown Marketo code %s on %s: %s", code, path, message)
            return None, failure, request_id
        return (
            None,
            MarketoFailure(
                kind=FailureClass.TECHNICAL,
                code="malformed",
                message="the answer has no success flag",
                source="http",
                http_status=status,
            ),
            request_id,
        )

    # ---- one logical call, with waiting and retries ----------------------------------------

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

    async def _token_or_failure(self) -> tuple[AccessToken | None, _Answer]:
        try:
            return await self._tokens.get(), _Answer(None, None, None)
        except MarketoError as exc:
            return None, _Answer(None, exc.failure, exc.failure.http_status)
        except TokenLapsedError as exc:
            lapsed = MarketoFailure(
                kind=FailureClass.TECHNICAL, code="token-lapsed", message=str(exc)
            )
            return None, _Answer(None, lapsed, None)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        form: Mapping[str, str] | None = None,
        batch_size: int = 0,
    ) -> _Answer:
        s = self.settings
        auth_retried = False
        technical = 0
        throttled_s = 0.0
        attempt = 0
        started = self._clock()
        while True:
            parked = self._quota.parked_until()
            if parked is not None:
                return _Answer(None, self._parked_failure(parked, path), None)
            async with self._limits.slot() as ticket:
                # Checked again once the call may go out: a 607 or a token's end may have
                # come while it waited for a slot.
                parked = self._quota.parked_until()
                if parked is not None:
                    ticket.sent = False
                    return _Answer(None, self._parked_failure(parked, path), None)
                token, answer = await self._token_or_failure()
                if token is None:
                    ticket.sent = False
                else:
                    attempt += 1
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
                technical += 1
                wait = self._backoff(technical)
                spent = self._clock() - started
                if technical >= s.max_attempts or spent + wait + s.request_timeout_s > s.max_call_s:
                    return answer
                await self._sleep(wait)
                continue
            return answer

    async def _read(
        self, path: str, params: Mapping[str, str], *, batch_size: int = 0
    ) -> dict[str, Any]:
        """A read: GET, or POST with `_method=GET` when the query would be too long."""
        query = urlencode(params)
        if len(self.settings.base_url) + len(path) + len(query) + 1 > MAX_URL_CHARS:
            answer = await self._call(
                "POST", path, form={"_method": "GET", **params}, batch_size=batch_size
            )
        else:
            answer = await self._call("GET", path, params=params, batch_size=batch_size)
            if answer.http_status == 414:
                answer = await self._call(
                    "POST", path, form={"_method": "GET", **params}, batch_size=batch_size
                )
        if answer.failure is not None:
            raise MarketoError(answer.failure)
        assert answer.envelope is not None
        return answer.envelope

    # ---- batching --------------------------------------------------------------------------

    def _chunks(
        self, sizes: Sequence[tuple[int, int]], max_count: int, overhead: int
    ) -> Iterator[list[int]]:
        """Group (index, encoded size) pairs into batches under the count and body-size caps."""
        limit = self.settings.max_body_bytes
        chunk: list[int] = []
        total = overhead
        for index, size in sizes:
            extra = size + (1 if chunk else 0)
            if chunk and (len(chunk) >= max_count or total + extra > limit):
                yield chunk
                chunk, total, extra = [], overhead, size
            chunk.append(index)
            total += extra
        if chunk:
            yield chunk

    def _match_records(
        self, indices: Sequence[int], answer: _Answer, path: str, *, id_key: str = "id"
    ) -> list[RecordResult]:
        envelope = answer.envelope or {}
        result = envelope.get("result")
        rid = answer.request_id
        if not isinstance(result, list) or len(result) != len(indices):
            got = len(result) if isinstance(result, list) else "no"
            failure = MarketoFailure(
                kind=FailureClass.TECHNICAL,
                code="result-mismatch",
                message=f"Marketo answered {got} results for {len(indices)} records",
                source="http",
                http_status=answer.http_status,
                request_id=rid,
                endpoint=path,
                known=False,
            )
            return [RecordResult(i, None, failure=failure, request_id=rid) for i in indices]
        out: list[RecordResult] = []
        for index, item in zip(indices, result, strict=True):
            item = item if isinstance(item, Mapping) else {}
            status = item.get("status")
            status = str(status) if status is not None else None
            raw_id = item.get(id_key)
            lead_id = raw_id if isinstance(raw_id, int) else None
            reasons = item.get("reasons")
            if status in OK_RECORD_STATUSES and not reasons:
                out.append(RecordResult(index, status, lead_id, None, rid))
                continue
            first = reasons[0] if isinstance(reasons, list) and reasons else {}
            first = first if isinstance(first, Mapping) else {}
            if first.get("code") is not None:
                failure = record_failure(
                    str(first["code"]),
                    str(first.get("message", "")),
                    request_id=rid,
                    endpoint=path,
                )
            else:
                failure = MarketoFailure(
                    kind=FailureClass.TECHNICAL,
                    code=None,
                    message=f"unexpected record status {status!r} without a reason",
                    source="record",
                    http_status=answer.http_status,
                    request_id=rid,
                    endpoint=path,
                    known=False,
                )
            out.append(RecordResult(index, status, lead_id, failure, rid))
        return out

    @staticmethod
    def _local(index: int, kind: FailureClass, code: str, message: str) -> RecordResult:
        failure = MarketoFailure(kind=kind, code=code, message=message, source="local")
        return RecordResult(index, None, failure=failure)

    # ---- leads -----------------------------------------------------------------------------

    async def upsert_leads(
        self,
        leads: Sequence[Mapping[str, Any]],
        *,
        action: UpsertAction = "createOrUpdate",
        lookup_field: str = "email",
        partition_name: str | None = None,
    ) -> list[RecordResult]:
        """Sync leads in batches of up to 300 (and 1 MB); one result per lead, in input order."""
        results: dict[int, RecordResult] = {}
        sized: list[tuple[int, int]] = []
        head: dict[str, Any] = {"action": action, "lookupField": lookup_field}
        if partition_name:
            head["partitionName"] = partition_name
        overhead = len(_compact({**head, "input": []}))
        for index, lead in enumerate(leads):
            value = lead.get(lookup_field)
            if value is None or value == "":
                results[index] = self._local(
                    index,
                    FailureClass.DATA,
                    "missing-lookup",
                    f"the lookup field {lookup_field!r} is empty",
                )
                continue
            size = len(_compact(lead))
            if overhead + size > self.settings.max_body_bytes:
                results[index] = self._local(
                    index,
                    FailureClass.DATA,
                    "too-large",
                    f"the record is {size} bytes; a Marketo request carries at most "
                    f"{self.settings.max_body_bytes}",
                )
                continue
            sized.append((index, size))
        chunks = list(self._chunks(sized, self.settings.lead_batch_size, overhead))
        batches = await asyncio.gather(
            *(self._upsert_chunk(leads, c, head, lookup_field) for c in chunks)
        )
        for batch in batches:
            for r in batch:
                results[r.index] = r
        return [results[i] for i in range(len(leads))]

    async def _upsert_chunk(
        self,
        leads: Sequence[Mapping[str, Any]],
        indices: list[int],
        head: Mapping[str, Any],
        lookup_field: str,
    ) -> list[RecordResult]:
        keys = {str(leads[i][lookup_field]).strip().lower() for i in indices}
        body = _compact({**head, "input": [leads[i] for i in indices]})
        async with self._keys.hold(keys):
            answer = await self._call("POST", LEADS_PATH, body=body, batch_size=len(indices))
        if answer.failure is None:
            return self._match_records(indices, answer, LEADS_PATH)
        if answer.http_status == 413 and len(indices) > 1:
            half = len(indices) // 2
            parts = await asyncio.gather(
                self._upsert_chunk(leads, indices[:half], head, lookup_field),
                self._upsert_chunk(leads, indices[half:], head, lookup_field),
            )
            return parts[0] + parts[1]
        rid = answer.request_id
        return [RecordResult(i, None, failure=answer.failure, request_id=rid) for i in indices]

    async def get_leads(
        self,
        filter_type: str,
        values: Sequence[str | int],
        *,
        fields: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Leads matching any of `values` on `filter_type`, 300 values per call, every page read."""
        size = self.settings.lead_batch_size
        groups = [list(values[i : i + size]) for i in range(0, len(values), size)]
        pages = await asyncio.gather(
            *(self._get_leads_group(filter_type, g, fields) for g in groups)
        )
        return [lead for page in pages for lead in page]

    async def _get_leads_group(
        self, filter_type: str, values: list[str | int], fields: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        params = {
            "filterType": filter_type,
            "filterValues": ",".join(str(v) for v in values),
            "batchSize": str(self.settings.lead_batch_size),
        }
        if fields:
            params["fields"] = ",".join(fields)
        return await self._paged(LEADS_PATH, params, batch_size=len(values))

    async def _paged(
        self, path: str, params: dict[str, str], *, batch_size: int = 0
    ) -> list[dict[str, Any]]:
        """Read every page of a token-paged list."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            envelope = await self._read(path, params, batch_size=batch_size)
            result = envelope.get("result") or []
            rows.extend(r for r in result if isinstance(r, dict))
            token = envelope.get("nextPageToken")
            if not result or not isinstance(token, str) or not token or token in seen:
                break
            seen.add(token)
            params = {**params, "nextPageToken": token}
        return rows

    async def describe(self, *, refresh: bool = False) -> list[LeadField]:
        """The instance's lead fields usable over REST: the connection's target fields (cached)."""
        async with self._fields_lock:
            if self._fields is None or refresh:
                envelope = await self._read(DESCRIBE_PATH, {})
                items = envelope.get("result") or []
                fields = [LeadField.from_describe(i) for i in items if isinstance(i, Mapping)]
                self._fields = [f for f in fields if f is not None]
            return list(self._fields)

    async def refresh_fields(self) -> list[LeadField]:
        return await self.describe(refresh=True)

    # ---- campaigns -------------------------------------------------------------------------

    async def list_campaigns(
        self,
        *,
        triggerable_only: bool = True,
        names: Sequence[str] | None = None,
        program_names: Sequence[str] | None = None,
        workspace_names: Sequence[str] | None = None,
    ) -> list[Campaign]:
        params: dict[str, str] = {"batchSize": str(self.settings.lead_batch_size)}
        if triggerable_only:
            params["isTriggerable"] = "true"
        if names:
            params["name"] = ",".join(names)
        if program_names:
            params["programName"] = ",".join(program_names)
        if workspace_names:
            params["workspaceName"] = ",".join(workspace_names)
        rows = await self._paged(CAMPAIGNS_PATH, params)
        return [Campaign.from_api(r) for r in rows if "id" in r]

    async def request_campaign(
        self,
        campaign_id: int,
        lead_ids: Sequence[int],
        *,
        tokens: Mapping[str, str] | None = None,
    ) -> list[RecordResult]:
        """Ask Marketo to run a trigger campaign for leads, 100 per call.

        Success means Marketo accepted the request (status `requested`), not that the campaign ran:
        Marketo reports no per-lead outcome here.
        """
        path = f"/rest/v1/campaigns/{int(campaign_id)}/trigger.json"
        token_items = [
            {"name": _token_name(name), "value": str(value)}
            for name, value in (tokens or {}).items()
        ]
        if len(token_items) > self.settings.campaign_batch_size:
            message = (
                f"{len(token_items)} tokens; Marketo accepts at most "
                f"{self.settings.campaign_batch_size} per campaign request"
            )
            return [
                self._local(i, FailureClass.SYSTEMIC, "too-many-tokens", message)
                for i in range(len(lead_ids))
            ]
        size = self.settings.campaign_batch_size
        groups = [
            list(range(i, min(i + size, len(lead_ids)))) for i in range(0, len(lead_ids), size)
        ]

        async def one(indices: list[int]) -> list[RecordResult]:
            payload: dict[str, Any] = {"leads": [{"id": int(lead_ids[i])} for i in indices]}
            if token_items:
                payload["tokens"] = token_items
            answer = await self._call(
                "POST", path, body=_compact({"input": payload}), batch_size=len(indices)
            )
            rid = answer.request_id
            if answer.failure is not None:
                return [
                    RecordResult(i, None, failure=answer.failure, request_id=rid) for i in indices
                ]
            return [RecordResult(i, "requested", int(lead_ids[i]), None, rid) for i in indices]

        batches = await asyncio.gather(*(one(g) for g in groups))
        return [r for batch in batches for r in batch]

    # ---- forms -----------------------------------------------------------------------------

    async def list_forms(
        self,
        *,
        status: str | None = None,
        folder_id: int | None = None,
        page_size: int = MAX_ASSET_PAGE,
    ) -> list[Form]:
        page_size = max(1, min(page_size, MAX_ASSET_PAGE))
        forms: list[Form] = []
        offset = 0
        for _ in range(MAX_PAGES):
            params = {"maxReturn": str(page_size), "offset": str(offset)}
            if status:
                params["status"] = status
            if folder_id is not None:
                params["folder"] = json.dumps({"id": folder_id, "type": "Folder"})
            envelope = await self._read(FORMS_PATH, params)
            result = envelope.get("result") or []
            forms.extend(Form.from_api(r) for r in result if isinstance(r, Mapping) and "id" in r)
            if len(result) < page_size:
                break
            offset += page_size
        return forms

    async def form_fields(self, form_id: int) -> list[FormField]:
        envelope = await self._read(f"/rest/asset/v1/form/{int(form_id)}/fields.json", {})
        return [
            FormField.from_api(r) for r in envelope.get("result") or [] if isinstance(r, Mapping)
        ]

    async def submit_form(
        self,
        form_id: int,
        fields: Mapping[str, Any],
        *,
        program_id: int | None = None,
        visitor_data: Mapping[str, Any] | None = None,
        cookie: str | None = None,
    ) -> RecordResult:
        """Submit one lead through a form (REST field names; `email` required)."""
        email = fields.get("email")
        if not email:
            return self._local(0, FailureClass.DATA, "missing-email", "the form post has no email")
        item: dict[str, Any] = {"leadFormFields": dict(fields)}
        if visitor_data:
            item["visitorData"] = dict(visitor_data)
        if cookie:
            item["cookie"] = cookie
        payload: dict[str, Any] = {"formId": int(form_id), "input": [item]}
        if program_id is not None:
            payload["programId"] = int(program_id)
        async with self._keys.hold({str(email).strip().lower()}):
            answer = await self._call(
                "POST", SUBMIT_FORM_PATH, body=_compact(payload), batch_size=1
            )
        if answer.failure is not None:
            return RecordResult(0, None, failure=answer.failure, request_id=answer.request_id)
        return self._match_records([0], answer, SUBMIT_FORM_PATH)[0]

    # ---- checks used by the connection test ------------------------------------------------

    async def authenticate(self) -> AccessToken:
        """Obtain (or reuse) a token; raises MarketoError when the credentials or URL are wrong."""
        try:
            return await self._tokens.get()
        except TokenLapsedError as exc:
            raise MarketoError(
                MarketoFailure(kind=FailureClass.TECHNICAL, code="token-lapsed", message=str(exc))
            ) from None


def _token_name(name: str) -> str:
    """Campaign tokens are named `{{my.name}}`; accept the bare name too."""
    name = name.strip()
    if name.startswith("{{"):
        return name
    if not name.startswith("my."):
        name = f"my.{name}"
    return "{{" + name + "}}"
