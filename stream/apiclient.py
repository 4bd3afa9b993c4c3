"""A typed async client of control's operator API (DESIGN 4.3), for the CLI and the console.

Everything outside control reaches data through this API, so failures must read as what the
operator should do: control not running, the token refused, a request the API turned down. Those
are `ApiError`s with a human message; nothing here prints or exits.

The token comes from `SIGNAL_API_TOKEN`, else from the file `SIGNAL_API_TOKEN_FILE` names, else
from `$SIGNAL_DATA_DIR/api-token` (written by control on its first start). It is sent only as a
bearer header and never appears in a message. A script that should only look uses the read-only
token: `SIGNAL_API_TOKEN_FILE=$SIGNAL_DATA_DIR/api-token-read-only csignal …`; control then
refuses every change with 403 ("this API token is read-only …"), raised as `RequestRefused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from config.settings import Settings

TOKEN_ENV = "SIGNAL_API_TOKEN"
TOKEN_FILE_ENV = "SIGNAL_API_TOKEN_FILE"
API_PREFIX = "/api/v1"
DEFAULT_CHUNK_LINES = 500
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024


class ApiError(Exception):
    """A failure worth showing to an operator as it is."""


class ControlUnreachable(ApiError):
    def __init__(self, base_url: str, detail: str = "") -> None:
        self.base_url = base_url
        self.detail = detail
        super().__init__(
            f"control is not reachable at {base_url} — is `csignal control` "
            "(or `csignal run`) running?"
        )


class TokenRefused(ApiError):
    def __init__(self) -> None:
        super().__init__("the API token was refused — check $SIGNAL_DATA_DIR/api-token")


class TokenMissing(ApiError):
    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"no API token: {path} does not exist and {TOKEN_ENV} is not set — start "
            "`csignal control` once (it writes the token) or point SIGNAL_DATA_DIR at its data"
        )


class RequestRefused(ApiError):
    """The API answered with an error status; `detail` is its explanation."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        detail: str,
        problems: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.status = status
        self.detail = detail
        self.problems = list(problems)
        """Each `(path, message)` the API listed (e.g. `flows[1].destination.mapping`)."""
        super().__init__(f"{method} {path} failed ({status}): {detail}")


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestRejection:
    """One refused item. `line` is 1-based in the file (or the item's position in the list)."""

    line: int | None
    path: str
    reason: str
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def field(self) -> str:
        return self.path or "(item)"


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: list[IngestRejection] = field(default_factory=list)
    duplicates: int = 0
    sent: int = 0

    def merge(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.rejected.extend(other.rejected)
        self.duplicates += other.duplicates
        self.sent += other.sent


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    truncated_by: str | None = None
    """The cap that cut the answer: `rows` (max_rows) or `bytes` (control's answer size cap)."""


@dataclass(frozen=True)
class FlowInfo:
    id: str
    name: str
    mode: str
    active: bool
    complete: bool | None = None
    reasons: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FlowInfo:
        reasons = data.get("incomplete_reasons", data.get("reasons", data.get("completeness")))
        complete = data.get("complete")
        if complete is None and isinstance(reasons, list):
            complete = not reasons
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            mode=str(data.get("mode", "")),
            active=bool(data.get("active", False)),
            complete=complete if isinstance(complete, bool) else None,
            reasons=tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
            raw=data,
        )


ProgressHook = Callable[[int, IngestResult], None]
"""Called after each chunk with the lines read so far and the running result."""


# --- addresses and token ------------------------------------------------------------------------


def api_base_url(api: str | None = None, settings: Settings | None = None) -> str:
    """`http://host:port` from `--api`, `SIGNAL_API` (host:port) or a full URL."""
    value = api or (settings or Settings()).api
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = "http://" + value
    return value


ACTOR_ENV = "SIGNAL_ACTOR"


def actor() -> str:
    """Who is acting, for the audit trail: `$SIGNAL_ACTOR`, else the login name."""
    name = (os.environ.get(ACTOR_ENV) or "").strip() or login_name()
    return name[:100]


def login_name() -> str:
    """The operator's login name: `$USER` or `$LOGNAME` when set and not empty, else the
    account's name from the password database, else `uid:<n>` (a container's user may have
    none), so the audit trail always names someone."""
    for variable in ("USER", "LOGNAME"):
        name = os.environ.get(variable, "").strip()
        if name:
            return name
    try:
        name = getpass.getuser().strip()
    except (OSError, KeyError):
        name = ""
    return name or f"uid:{os.getuid()}"


def token_path(settings: Settings | None = None) -> Path:
    """The token file used when `SIGNAL_API_TOKEN` is not set."""
    named = os.environ.get(TOKEN_FILE_ENV, "").strip()
    return Path(named).expanduser() if named else (settings or Settings()).api_token_path


def read_token(settings: Settings | None = None) -> str | None:
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    path = token_path(settings)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


# --- the client ---------------------------------------------------------------------------------


class ApiClient:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        settings: Settings | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 3.0,
    ) -> None:
        self._settings = settings
        self.base_url = api_base_url(base_url, settings)
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _auth(self) -> dict[str, str]:
        token = self._token or read_token(self._settings)
        if token is None:
            raise TokenMissing(token_path(self._settings))
        self._token = token
        return {"Authorization": f"Bearer {token}", "X-Signal-Actor": actor()}

    # -- retry queue, replays, metrics ---------------------------------------------------------

    async def call(
        self, method: str, path: str, *, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> Any:
        params = {k: str(v) for k, v in (query or {}).items() if v is not None and v != ""}
        url = f"{API_PREFIX}{path}" + (f"?{urlencode(params)}" if params else "")
        _status, reply = await self._request(method, url, json_body=body)
        return reply

    async def retry_list(self, filters: Mapping[str, Any], offset: int, limit: int) -> Any:
        return await self.call(
            "GET", "/retry-queue", query={**filters, "offset": offset, "limit": limit}
        )

    async def retry_submit(self, body: Mapping[str, Any]) -> Any:
        return await self.call("POST", "/retry-queue/submit", body=dict(body))

    async def replay_start(self, body: Mapping[str, Any]) -> Any:
        return await self.call("POST", "/replays", body=dict(body))

    async def replay_get(self, replay_id: str) -> Any:
        return await self.call("GET", f"/replays/{quote(replay_id, safe='')}")

    async def replay_cancel(self, replay_id: str) -> Any:
        return await self.call("DELETE", f"/replays/{quote(replay_id, safe='')}")

    async def metrics(self, kind: str, mode: str, period: str) -> Any:
        return await self.call("GET", f"/metrics/{kind}", query={"mode": mode, "period": period})

    # -- plumbing -------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        auth: bool = True,
        accept: str = "application/json",
        ok_statuses: Iterable[int] = (),
    ) -> tuple[int, Any]:
        headers = {"Accept": accept}
        if auth:
            try:
                headers.update(self._auth())
            except TokenMissing:
                await self.healthz()  # control not running is the likelier, clearer story
                raise
        if content_type is not None:
            headers["Content-Type"] = content_type
        url = self.base_url + path
        try:
            async with self._http().request(
                method, url, json=json_body, data=data, headers=headers
            ) as response:
                raw = await response.read()
                status = response.status
                is_json = "json" in (response.content_type or "")
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as error:
            raise ControlUnreachable(self.base_url, str(error)) from None
        except TimeoutError as error:
            raise ControlUnreachable(self.base_url, f"timed out ({error})") from None
        except aiohttp.ClientError as error:
            raise ControlUnreachable(self.base_url, str(error)) from None
        body: Any = raw.decode("utf-8", "replace")
        if is_json:
            with contextlib.suppress(ValueError):
                body = json.loads(raw) if raw else None
        if status == 401:
            raise TokenRefused()
        if status >= 400 and status not in set(ok_statuses):
            raise RequestRefused(method, path, status, _detail(body), _problems(body))
        return status, body

    # -- health ---------------------------------------------------------------------------------

    async def healthz(self) -> dict[str, Any]:
        _status, body = await self._request("GET", "/healthz", auth=False, ok_statuses=(503,))
        return body if isinstance(body, dict) else {"status": body}

    async def wait_ready(self, within: float = 30.0, interval: float = 0.2) -> dict[str, Any]:
        """Poll /healthz until control says it is ready (`ok`); the last error when it never
        does (`ControlUnreachable` when nothing listened)."""
        deadline = time.monotonic() + within
        while True:
            try:
                health = await self.healthz()
                if health.get("ok", True) is not False:
                    return health
                if time.monotonic() >= deadline:
                    raise ApiError(f"control at {self.base_url} is not ready: {health}")
            except ApiError:
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(interval)

    # -- ingest ---------------------------------------------------------------------------------

    async def post_changes(
        self, items: Sequence[Any] | bytes, *, first_line: int = 1
    ) -> IngestResult:
        """Post a batch (decoded items, or NDJSON bytes); rejections carry 1-based positions
        counted from `first_line`."""
        if isinstance(items, bytes | bytearray):
            data = bytes(items)
            count = sum(1 for line in data.splitlines() if line.strip())
        else:
            data = b"\n".join(
                json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
                for item in items
            )
            count = len(items)
        status, body = await self._request(
            "POST",
            f"{API_PREFIX}/changes",
            data=data,
            content_type="application/x-ndjson",
            ok_statuses=(400, 207, 422),
        )
        result = _ingest_result(body, first_line, count)
        if status >= 400 and not result.rejected and result.accepted == 0:
            raise RequestRefused("POST", f"{API_PREFIX}/changes", status, _detail(body))
        return result

    async def ingest_file(
        self,
        path: Path,
        *,
        chunk_lines: int = DEFAULT_CHUNK_LINES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        on_progress: ProgressHook | None = None,
    ) -> IngestResult:
        """Stream a JSONL file in chunks; line numbers in rejections are the file's (1-based)."""
        total = IngestResult()
        lines_read = 0
        with path.open("rb") as handle:
            while True:
                chunk, first = await asyncio.to_thread(
                    _read_chunk, handle, chunk_lines, chunk_bytes, lines_read
                )
                if not chunk:
                    break
                lines_read += len(chunk)
                payload = b"\n".join(line.rstrip(b"\r\n") for line in chunk)
                if payload.strip():
                    total.merge(await self.post_changes(payload, first_line=first))
                if on_progress is not None:
                    on_progress(lines_read, total)
        return total

    # -- sql ------------------------------------------------------------------------------------

    async def sql(self, query: str, max_rows: int | None = None) -> SqlResult:
        body: dict[str, Any] = {"sql": query}
        if max_rows is not None:
            body["max_rows"] = max_rows
        _status, reply = await self._request("POST", f"{API_PREFIX}/sql", json_body=body)
        if not isinstance(reply, dict):
            raise ApiError(f"unexpected /sql reply: {str(reply)[:200]}")
        columns = [
            str(c.get("name", "")) if isinstance(c, dict) else str(c)
            for c in reply.get("columns", [])
        ]
        rows = [list(r) for r in reply.get("rows", [])]
        by = reply.get("truncated_by")
        return SqlResult(
            columns,
            rows,
            bool(reply.get("truncated", False)),
            by if isinstance(by, str) else None,
        )

    async def scalar(self, query: str) -> Any:
        result = await self.sql(query, max_rows=1)
        return result.rows[0][0] if result.rows and result.rows[0] else None

    # -- flows ----------------------------------------------------------------------------------

    async def flows(self) -> list[FlowInfo]:
        _status, reply = await self._request("GET", f"{API_PREFIX}/flows")
        items = reply.get("flows", []) if isinstance(reply, dict) else reply
        return [FlowInfo.from_json(f) for f in items or [] if isinstance(f, dict)]

    async def set_flow_active(self, flow_id: str, active: bool) -> dict[str, Any]:
        _status, reply = await self._request(
            "POST", f"{API_PREFIX}/flows/{flow_id}/active", json_body={"active": active}
        )
        return reply if isinstance(reply, dict) else {}

    async def set_flow_mode(self, flow_id: str, mode: str) -> dict[str, Any]:
        _status, reply = await self._request(
            "POST", f"{API_PREFIX}/flows/{flow_id}/mode", json_body={"mode": mode}
        )
        return reply if isinstance(reply, dict) else {}

    # -- configuration --------------------------------------------------------------------------

    async def get_config(self, fmt: str = "yaml") -> str:
        accept = "application/yaml" if fmt == "yaml" else "application/json"
        _status, reply = await self._request(
            "GET", f"{API_PREFIX}/config?format={fmt}", accept=accept
        )
        if isinstance(reply, str):
            return reply
        return json.dumps(reply, indent=2, ensure_ascii=False)

    async def put_config(self, text: str, fmt: str = "yaml") -> dict[str, Any]:
        content_type = "application/yaml" if fmt == "yaml" else "application/json"
        _status, reply = await self._request(
            "PUT", f"{API_PREFIX}/config", data=text.encode("utf-8"), content_type=content_type
        )
        return reply if isinstance(reply, dict) else {"result": reply}


# --- helpers ------------------------------------------------------------------------------------


def _read_chunk(
    handle: Any, max_lines: int, max_bytes: int, already: int
) -> tuple[list[bytes], int]:
    lines: list[bytes] = []
    size = 0
    while len(lines) < max_lines and size < max_bytes:
        line = handle.readline()
        if not line:
            break
        lines.append(line)
        size += len(line)
    return lines, already + 1


def _ingest_result(body: Any, first_line: int, count: int) -> IngestResult:
    """Read control's answer: counts, and `errors` listing each bad item by position."""
    result = IngestResult(sent=count)
    if not isinstance(body, dict):
        return result
    result.accepted = _count(body.get("accepted"))
    result.duplicates = _count(body.get("duplicates"))
    errors: list[Any] = []
    for key in ("errors", "rejected"):
        value = body.get(key)
        if isinstance(value, list):
            errors = value
            break
    for item in errors:
        if not isinstance(item, dict):
            continue
        index = item.get("index")
        line = first_line + index if isinstance(index, int) else None
        problems = tuple(
            (str(p.get("path", "")), str(p.get("message", p.get("reason", ""))))
            for p in item.get("problems", [])
            if isinstance(p, dict)
        )
        reason = item.get("message", item.get("reason", ""))
        result.rejected.append(
            IngestRejection(line, str(item.get("path", "")), str(reason), problems)
        )
    return result


def _count(value: Any) -> int:
    if isinstance(value, list):
        return len(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _problems(body: Any) -> list[tuple[str, str]]:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        (str(e.get("path") or ""), str(e.get("message") or ""))
        for e in errors
        if isinstance(e, dict)
    ]


def _detail(body: Any) -> str:
    """The API's explanation: `{"errors": [{"path", "message"}]}`, or whatever text it sent."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            parts = [
                f"{e.get('path')}: {e.get('message')}" if e.get("path") else str(e.get("message"))
                for e in errors[:10]
                if isinstance(e, dict)
            ]
            if parts:
                return "; ".join(parts)
        for key in ("error", "message", "detail", "reason"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        return json.dumps(body, ensure_ascii=False)[:500]
    text = str(body or "").strip()
    return text[:500] or "no details"
