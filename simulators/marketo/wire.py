"""Marketo's wire conventions: envelopes, request ids, error messages, parameters, gzip.

Marketo reports almost every failure inside HTTP 200 with `success:false` and string codes; the
lead database and the asset API use slightly different envelopes. Keeping these shapes in one
place is what lets an unmodified Marketo client talk to the sandbox.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiMapping

JSON_CT = "application/json;charset=UTF-8"
GZIP_MIN_BYTES = 1024
NO_ASSETS = "No assets found for the given search criteria."

MESSAGES: dict[str, str] = {
    "502": "Bad Gateway",
    "601": "Access token invalid",
    "602": "Access token expired",
    "603": "Access denied",
    "604": "Request time-out",
    "605": "HTTP Method not supported",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "611": "System error",
    "612": "Invalid Content Type",
    "613": "Invalid Multipart Request",
    "614": "Invalid Subscription",
    "616": "Invalid subscription type",
    "702": "No data found for given search scenario",
    "703": "The feature is not enabled for the subscription",
    "704": "Invalid date format",
    "709": "Business Rule Violation",
    "713": "Transient Error",
    "719": "Lock wait timeout exception",
    "1003": "Invalid data",
    "1004": "Lead not found",
    "1005": "Lead already exists",
    "1007": "Multiple leads match the lookup criteria",
    "1013": "Object not found",
    "1014": "Failed to create Object",
    "1016": "Too many imports",
    "1019": "Import in progress",
    "1022": "Object in use",
    "1025": "Program status not found",
    "1029": "Too many jobs in queue",
    "1036": "Duplicate key in input",
    "1037": "Lead already in or past status",
}


class SandboxError(Exception):
    """A response-level failure: HTTP 200, `success:false`, request not executed."""

    def __init__(self, code: str | int, message: str | None = None) -> None:
        self.code = str(code)
        self.message = message if message is not None else MESSAGES.get(self.code, "Error")
        super().__init__(f"{self.code} {self.message}")


def blank(name: str) -> SandboxError:
    return SandboxError("701", f"{name} cannot be blank")


def reason(code: str, message: str | None = None) -> dict[str, str]:
    return {"code": code, "message": message if message is not None else MESSAGES.get(code, "")}


def skipped(code: str, message: str | None = None) -> dict[str, Any]:
    """A record-level failure: no `id`, a `reasons` list."""
    return {"status": "skipped", "reasons": [reason(code, message)]}


class RequestIds:
    """`<hex counter>#<hex epoch-ms>`, the shape seen in recorded Marketo traffic."""

    def __init__(self, start: int = 0x157FE) -> None:
        self._next = start

    def next(self, now: float) -> str:
        n = self._next
        self._next += 1
        return f"{n:x}#{int(now * 1000):x}"


def iso(ts: float) -> str:
    """Lead-database timestamp: `2020-08-30T06:27:13Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def asset_iso(ts: float) -> str:
    """Asset-API timestamp: `2020-08-30T06:27:21Z+0000`."""
    return iso(ts) + "+0000"


def lead_envelope(request_id: str, result: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"requestId": request_id}
    if result is not None:
        body["result"] = result
    body["success"] = True
    for key, value in extra.items():
        if value not in (None, [], ""):
            body[key] = value
    return body


def error_envelope(request_id: str, error: SandboxError, asset: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestId": request_id,
        "success": False,
        "errors": [{"code": error.code, "message": error.message}],
    }
    if asset:
        body["warnings"] = []
    return body


def asset_envelope(request_id: str, result: list[Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "requestId": request_id, "warnings": []}
    if result:
        body["result"] = result
    else:
        body["warnings"] = [NO_ASSETS]
    return body


def json_response(request: web.Request, body: Any, status: int = 200) -> web.Response:
    """JSON with Marketo's content type; gzip when the client accepts it and it is worth it."""
    raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": JSON_CT}
    accepts = request.headers.get("Accept-Encoding", "").lower()
    if len(raw) >= GZIP_MIN_BYTES and "gzip" in accepts:
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return web.Response(body=raw, status=status, headers=headers)


class Params:
    """Query parameters merged with a form-encoded body (for POST + `_method=GET`).

    Array parameters are accepted repeated (`id=1&id=2`) or comma-separated (`id=1,2`).
    """

    def __init__(self, *sources: MultiMapping[str]) -> None:
        merged: MultiDict[str] = MultiDict()
        for source in sources:
            merged.extend(source.items())
        self._data = merged

    def get(self, name: str) -> str | None:
        value = self._data.get(name)
        return None if value is None else str(value)

    def has(self, name: str) -> bool:
        return name in self._data

    def list(self, name: str) -> list[str]:
        out: list[str] = []
        for value in self._data.getall(name, []):
            out.extend(part.strip() for part in str(value).split(",") if part.strip())
        return out

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise SandboxError(
                "1001", f"Invalid value '{value}'. Required of type 'integer'"
            ) from None


def ints(values: Iterable[str], name: str) -> list[int]:
    out: list[int] = []
    for value in values:
        try:
            out.append(int(value))
        except ValueError:
            raise SandboxError(
                "1001", f"Invalid value '{value}'. Required of type 'integer'"
            ) from None
    return out


def page_token(kind: str, offset: int) -> str:
    """An opaque paging token (base32, like Marketo's) naming what it pages and where it stands."""
    return base64.b32encode(f"{kind}:{offset}".encode()).decode().rstrip("=")


def page_offset(kind: str, token: str | None) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 8)
        got_kind, _, raw = base64.b32decode(padded).decode().partition(":")
        offset = int(raw)
    except (ValueError, UnicodeDecodeError):
        raise SandboxError("1003", f"Invalid nextPageToken '{token}'") from None
    if got_kind != kind or offset < 0:
        raise SandboxError("1003", f"Invalid nextPageToken '{token}'")
    return offset


def batch_size(params: Params, maximum: int) -> int:
    size = params.int("batchSize", maximum)
    assert size is not None
    if not 1 <= size <= maximum:
        raise SandboxError("1003", f"batchSize must be between 1 and {maximum}")
    return size
