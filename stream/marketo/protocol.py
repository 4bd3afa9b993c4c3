"""Marketo's REST protocol as plain functions: what a request looks like, what an answer means.

Nothing here sends a byte: the identity endpoint's answer, the REST envelope, per-record results
and the batch grouping are parsed and decided from bytes and numbers, so each rule is tested with
plain data (tests/marketo/test_protocol.py) and the client (stream/marketo/client.py) and the call
loop (stream/marketo/transport.py) only move bytes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from stream.marketo.errors import (
    FailureClass,
    MarketoFailure,
    classify_http_status,
    record_failure,
    response_failure,
)
from stream.marketo.results import RecordResult
from stream.marketo.token import IssuedToken

log = logging.getLogger("stream.marketo")

IDENTITY_PATH = "/identity/oauth/token"
LEADS_PATH = "/rest/v1/leads.json"
DESCRIBE_PATH = "/rest/v1/leads/describe.json"
CAMPAIGNS_PATH = "/rest/v1/campaigns.json"
SUBMIT_FORM_PATH = "/rest/v1/leads/submitForm.json"
FORMS_PATH = "/rest/asset/v1/forms.json"
PROGRAMS_PATH = "/rest/asset/v1/programs.json"
CHANNELS_PATH = "/rest/asset/v1/channels.json"
BACKWARD_CODE = "1037"
"""A record skipped because the lead already is in, or past, the status asked for."""
# Marketo refuses URIs over 8 KB (414); longer reads go as POST with `_method=GET`.
MAX_URL_CHARS = 7_000
MAX_PAGES = 10_000
MAX_ASSET_PAGE = 200
OK_RECORD_STATUSES = frozenset({"created", "updated", "deleted", "added", "removed"})


@dataclass(frozen=True, slots=True)
class Answer:
    """What one logical call came back with: the envelope or the failure, and their details."""

    envelope: dict[str, Any] | None
    failure: MarketoFailure | None
    http_status: int | None
    request_id: str | None = None
    retry_after_s: float | None = None


def compact(value: Any) -> bytes:
    """A request body as Marketo counts its size: compact JSON, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


MAX_RETRY_AFTER_S = 86_400.0
"""The longest `Retry-After` taken as given (a day; the daily quota resets sooner)."""
MAX_TOKEN_LIFE_S = 86_400
"""The longest token lifetime taken as given (Marketo's are an hour)."""


def _json(body: bytes) -> Any:
    """The answer's JSON value; None for anything that is not JSON this client reads, a
    nesting too deep for the parser included (a RecursionError is no crash of the call)."""
    try:
        return json.loads(body) if body else None
    except (ValueError, RecursionError):
        return None


def retry_after_seconds(header: str | None) -> float | None:
    """A `Retry-After` header in seconds; None when absent or not a number (dates are rare)."""
    if header is None:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None
    if not math.isfinite(seconds):  # "1e400", "nan": no wait anyone meant
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def http_failure(status: int, endpoint: str) -> MarketoFailure:
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


def parse_identity(
    status: int, body: bytes, token_url: str
) -> tuple[IssuedToken | None, MarketoFailure | None]:
    """The identity endpoint's answer: a token, or why there is none."""
    data = _json(body)
    if status == 200 and isinstance(data, dict) and isinstance(data.get("access_token"), str):
        try:
            expires_in = min(max(int(data.get("expires_in", 0)), 0), MAX_TOKEN_LIFE_S)
        except (TypeError, ValueError, OverflowError):
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
        return None, http_failure(status, IDENTITY_PATH)
    return None, MarketoFailure(
        kind=FailureClass.SYSTEMIC,
        code="not-marketo",
        message=(f"{token_url} answers (HTTP {status}) but is not a Marketo identity endpoint"),
        source="identity",
        http_status=status,
    )


def parse_envelope(
    status: int, raw: bytes, path: str
) -> tuple[dict[str, Any] | None, MarketoFailure | None, str | None]:
    """A REST answer's envelope, the failure it reports (if any) and its request id."""
    if status != 200:
        return None, http_failure(status, path), None
    data = _json(raw)
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


def match_records(
    indices: Sequence[int], answer: Answer, path: str, *, id_key: str = "id"
) -> list[RecordResult]:
    """One result per record of a batch call, matched by position; an answer whose result list
    does not line up with the request fails every record rather than guess."""
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


def program_status_path(program_id: int) -> str:
    """Sync Program Member Status: sets the status, adding leads that are not members yet."""
    return f"/rest/v1/programs/{int(program_id)}/members/status.json"


def program_status_body(status: str, lead_ids: Sequence[int]) -> bytes:
    return compact({"statusName": status, "input": [{"leadId": int(i)} for i in lead_ids]})


def match_program_records(
    indices: Sequence[int], lead_ids: Sequence[int], answer: Answer, path: str
) -> list[RecordResult]:
    """Per-lead results of a program status call, by position. Marketo moves members forward
    only: a lead already in the status or past it (1037) is `not_changed`, not a failure, with
    Marketo's words in `detail`; every result carries the lead id it was sent for."""
    out: list[RecordResult] = []
    for record, lead_id in zip(
        match_records(indices, answer, path, id_key="leadId"), lead_ids, strict=True
    ):
        failure = record.failure
        if failure is not None and failure.source == "record" and failure.code == BACKWARD_CODE:
            out.append(
                RecordResult(
                    record.index,
                    "not_changed",
                    lead_id,
                    None,
                    record.request_id,
                    detail=failure.message or "lead already in or past that status",
                )
            )
        else:
            out.append(
                RecordResult(
                    record.index, record.status, lead_id, failure, record.request_id, record.detail
                )
            )
    return out


def local_result(index: int, kind: FailureClass, code: str, message: str) -> RecordResult:
    """A record refused before any call (empty lookup field, too large …)."""
    failure = MarketoFailure(kind=kind, code=code, message=message, source="local")
    return RecordResult(index, None, failure=failure)


def chunks(
    sizes: Sequence[tuple[int, int]], max_count: int, overhead: int, max_bytes: int
) -> Iterator[list[int]]:
    """Group (index, encoded size) pairs into batches under the count and body-size caps."""
    chunk: list[int] = []
    total = overhead
    for index, size in sizes:
        extra = size + (1 if chunk else 0)
        if chunk and (len(chunk) >= max_count or total + extra > max_bytes):
            yield chunk
            chunk, total, extra = [], overhead, size
        chunk.append(index)
        total += extra
    if chunk:
        yield chunk


def token_name(name: str) -> str:
    """Campaign tokens are named `{{my.name}}`; accept the bare name too."""
    name = name.strip()
    if name.startswith("{{"):
        return name
    if not name.startswith("my."):
        name = f"my.{name}"
    return "{{" + name + "}}"
