"""The console's async client of control's operator API (DESIGN 4.3).

Kept free of Textual so tests and scripts reuse it. Every failure is an `ApiError` whose text is
what the operator should read: control not running, the token refused, a route this control does
not serve yet (`NotAvailable`), or a request it turned down (`Refused`, with each problem by path).
The token is only ever sent as a bearer header; it never appears in a message or a repr. It is
`SIGNAL_API_TOKEN`, else the file `SIGNAL_API_TOKEN_FILE` names, else `$SIGNAL_DATA_DIR/api-token`;
a read-only console (`read_token(read_only=True)`) uses `$SIGNAL_DATA_DIR/api-token-read-only`,
with which control refuses every change (403), whatever the console sends.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from config.settings import Settings

TOKEN_ENV = "SIGNAL_API_TOKEN"
TOKEN_FILE_ENV = "SIGNAL_API_TOKEN_FILE"
READ_ONLY_TOKEN_ENV = "SIGNAL_API_READ_ONLY_TOKEN"
API_ENV = "SIGNAL_API"
PREFIX = "/api/v1"
DEFAULT_TIMEOUT_S = 10.0
TEST_TIMEOUT_S = 90.0
"""Save & Test does one honest try with its own bounds on control's side (about a minute)."""
SPARK_HOURS = 12


class ApiError(Exception):
    """A failure worth showing to an operator as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unreachable(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class NotAvailable(ApiError):
    """The route does not exist on this control (an older or partial build)."""


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class Refused(ApiError):
    def __init__(self, status: int, problems: Sequence[Problem], body: Any = None) -> None:
        self.status = status
        self.problems = list(problems)
        self.body = body
        text = "; ".join(str(p) for p in self.problems) or f"HTTP {status}"
        super().__init__(text)


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowRow:
    id: str
    name: str
    mode: str
    active: bool
    complete: bool
    reasons: tuple[str, ...]
    source: str | None
    connection: str | None
    action: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowRow:
        destination = data.get("destination") or {}
        reasons = tuple(str(r) for r in data.get("incomplete_reasons") or ())
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            mode=str(data.get("mode", "test")),
            active=bool(data.get("active", False)),
            complete=bool(data.get("complete", not reasons)),
            reasons=reasons,
            source=data.get("source"),
            connection=destination.get("connection"),
            action=destination.get("action"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class FlowStats:
    delivered: int = 0
    failed: int = 0
    hourly: tuple[int, ...] = ()


@dataclass(frozen=True)
class ConnectionRow:
    id: str
    name: str
    service_url: str
    client_id: str | None
    secret_set: bool
    secret_source: str | None
    primary: bool
    force_update: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    secret_cleared: str | None = None
    """Why control cleared the secret (the identity URL or client id changed), until a new one
    is entered."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectionRow:
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            service_url=str(data.get("service_url", "")),
            client_id=data.get("client_id"),
            secret_set=bool(data.get("secret_set", False)),
            secret_source=data.get("secret_source"),
            primary=bool(data.get("primary", False)),
            force_update=bool(data.get("force_update", False)),
            raw=dict(data),
            secret_cleared=data.get("secret_cleared") or None,
        )


@dataclass(frozen=True)
class TestResult:
    ok: bool
    message: str
    elapsed_ms: float
    checks: tuple[tuple[str, bool, str], ...] = ()
    fields: int = 0


@dataclass(frozen=True)
class TargetField:
    name: str
    display_name: str
    data_type: str
    read_only: bool


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float | None = None
    truncated_by: str | None = None
    """`rows` (the row cap) or `bytes` (control's answer size cap)."""


@dataclass(frozen=True)
class RetryFilters:
    integration: str | None = None
    status: str | None = None
    category: str | None = None
    search: str | None = None

    def params(self) -> dict[str, str]:
        out = {
            "integration": self.integration,
            "status": self.status,
            "category": self.category,
            "q": self.search,
        }
        return {k: v for k, v in out.items() if v}

    def describe(self) -> str:
        parts = [f"{k}:{v}" for k, v in self.params().items()]
        return " ".join(parts)


@dataclass(frozen=True)
class RetryRow:
    change_id: str
    flow_id: str
    flow_name: str
    integration: str
    status: str
    category: str
    reason: str
    attempts: int
    updated_at: str
    next_attempt_at: str | None
    last_error: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.change_id}|{self.flow_id}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetryRow:
        return cls(
            change_id=str(data.get("change_id", "")),
            flow_id=str(data.get("flow_id", "")),
            flow_name=str(data.get("flow_name") or data.get("flow_id", "")),
            integration=str(data.get("integration") or ""),
            status=str(data.get("status", "")),
            category=str(data.get("category", "")),
            reason=str(data.get("reason") or ""),
            attempts=int(data.get("attempts") or 0),
            updated_at=str(data.get("updated_at") or ""),
            next_attempt_at=data.get("next_attempt_at"),
            last_error=data.get("last_error"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class SubmitResult:
    """What control did with a resubmit: how many went out and why others did not."""

    submitted: int
    selected: int
    skipped: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Any, asked: int) -> SubmitResult:
        data = body if isinstance(body, dict) else {}
        skipped = {
            key.removeprefix("skipped_").replace("_", " "): int(value)
            for key, value in data.items()
            if key
            in ("skipped_already_resolved", "skipped_in_flight", "not_found", "missing_change")
            and isinstance(value, int)
            and value
        }
        return cls(int(data.get("submitted", 0)), int(data.get("selected", asked)), skipped)

    def describe(self) -> str:
        text = f"Resubmitted {self.submitted} of {self.selected}"
        if self.skipped:
            text += " (" + ", ".join(f"{v} {k}" for k, v in self.skipped.items()) + ")"
        return text


@dataclass(frozen=True)
class RetryPage:
    rows: list[RetryRow]
    total: int
    offset: int
    limit: int


# --- addresses and token ------------------------------------------------------------------------


def api_base_url(api: str | None = None) -> str:
    """`--api`, else `$SIGNAL_API`, else the default; a bare host:port gets `http://`."""
    value = (api or os.environ.get(API_ENV) or Settings().api).strip().rstrip("/")
    if "://" not in value:
        value = f"http://{value}"
    return value


def read_token(*, read_only: bool = False) -> str | None:
    """The operator token (`SIGNAL_API_TOKEN`, `SIGNAL_API_TOKEN_FILE`, the data dir's
    `api-token`), or with `read_only` the viewers' token (`SIGNAL_API_READ_ONLY_TOKEN`, the data
    dir's `api-token-read-only`): a read-only console never falls back to the operator's."""
    if read_only:
        env = os.environ.get(READ_ONLY_TOKEN_ENV, "").strip()
        return env or _read_file(Settings().api_read_only_token_path)
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    named = os.environ.get(TOKEN_FILE_ENV, "").strip()
    return _read_file(Path(named).expanduser() if named else Settings().api_token_path)


def token_file(*, read_only: bool = False) -> Path:
    """Where `read_token` looks last, for messages."""
    if read_only:
        return Settings().api_read_only_token_path
    named = os.environ.get(TOKEN_FILE_ENV, "").strip()
    return Path(named).expanduser() if named else Settings().api_token_path


def _read_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def login_name() -> str:
    """The operator's login name for the audit trail: `$USER` or `$LOGNAME` when not empty,
    else the password database's name, else `uid:<n>` (a container's user may have none)."""
    for variable in ("USER", "LOGNAME"):
        name = os.environ.get(variable, "").strip()
        if name:
            return name
    try:
        name = getpass.getuser().strip()
    except (OSError, KeyError):
        name = ""
    return name or f"uid:{os.getuid()}"


# --- the client ---------------------------------------------------------------------------------


class ConsoleClient:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        actor: str | None = None,
        *,
        token_hint: str = "$SIGNAL_DATA_DIR/api-token",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._actor = (actor or "").strip() or login_name()
        self._token_hint = token_hint
        """Where the token came from, for the messages when it is missing or refused."""
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ConsoleClient({self.base_url!r})"

    @property
    def actor(self) -> str:
        """What the audit trail records for this console's changes."""
        return f"console:{self._actor}"

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        auth: bool = True,
        if_match: int | None = None,
    ) -> Any:
        headers = {"Accept": "application/json", "X-Signal-Actor": self.actor}
        if if_match is not None:
            headers["If-Match"] = str(if_match)
        if auth:
            if not self._token:
                raise Unauthorized(
                    f"no API token in {self._token_hint}: set SIGNAL_API_TOKEN or point "
                    "SIGNAL_DATA_DIR at control's data directory (control writes its tokens "
                    "on first start)"
                )
            headers["Authorization"] = f"Bearer {self._token}"
        url = f"{self.base_url}{path}"
        try:
            async with self._http().request(
                method,
                url,
                json=json,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
        except TimeoutError:
            raise Unreachable(
                f"control at {self.base_url} did not answer within {timeout_s:.0f} s"
            ) from None
        except aiohttp.ClientConnectorError:
            raise Unreachable(
                f"cannot connect to control at {self.base_url} — is `csignal control` running?"
            ) from None
        except aiohttp.ClientError as error:
            raise Unreachable(f"control at {self.base_url}: {type(error).__name__}") from None
        if status < 400:
            return body
        if status == 401:
            raise Unauthorized(f"the API token was refused — check {self._token_hint}")
        problems = _problems(body)
        if status in (404, 405) and _route_missing(body):
            raise NotAvailable(f"{path.split('?')[0]} is not available from this control yet")
        raise Refused(status, problems or [Problem("", f"HTTP {status}")], body)

    # --- health ---------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        try:
            body = await self.request("GET", "/healthz", auth=False)
        except Refused as error:
            if error.status == 503 and isinstance(error.body, dict):
                return dict(error.body)
            raise
        return dict(body or {})

    # --- flows ----------------------------------------------------------------------------

    async def flows(self) -> list[FlowRow]:
        body = await self.request("GET", f"{PREFIX}/flows")
        return [FlowRow.from_json(f) for f in body.get("flows", [])]

    async def flow(self, flow_id: str) -> FlowRow:
        return FlowRow.from_json(await self.request("GET", f"{PREFIX}/flows/{flow_id}"))

    async def create_flow(self, body: Mapping[str, Any]) -> FlowRow:
        return FlowRow.from_json(await self.request("POST", f"{PREFIX}/flows", json=dict(body)))

    async def save_flow(
        self, flow_id: str, body: Mapping[str, Any], version: int | None = None
    ) -> FlowRow:
        """Replace a flow; with `version`, control refuses (409) if someone saved it since."""
        reply = await self.request(
            "PUT", f"{PREFIX}/flows/{flow_id}", json=dict(body), if_match=version
        )
        return FlowRow.from_json(reply)

    async def set_active(self, flow_id: str, active: bool) -> FlowRow:
        reply = await self.request(
            "POST", f"{PREFIX}/flows/{flow_id}/active", json={"active": active}
        )
        return FlowRow.from_json(reply)

    async def set_mode(self, flow_id: str, mode: str) -> FlowRow:
        reply = await self.request("POST", f"{PREFIX}/flows/{flow_id}/mode", json={"mode": mode})
        return FlowRow.from_json(reply)

    async def flow_stats(self, now: datetime, hours: int = SPARK_HOURS) -> dict[str, FlowStats]:
        """Delivered and failed per flow since midnight UTC, plus outcomes per hour over the
        last `hours` hours of today (oldest first, zeros before midnight) for a sparkline; a flow
        with no outcomes today is left out (its row shows no trend).

        The window ends at the console's clock, so the buckets line up with what it shows.
        """
        params = {"period": "today", "to": now.astimezone(UTC).isoformat()}
        body = await self.request("GET", f"{PREFIX}/flows/figures", params=params)
        out: dict[str, FlowStats] = {}
        for flow_id, figures in dict(body.get("flows") or {}).items():
            series = [int(n) for n in figures.get("series") or []][-hours:]
            if not any(series):
                continue
            out[str(flow_id)] = FlowStats(
                int(figures.get("delivered") or 0),
                int(figures.get("failed") or 0),
                tuple([0] * (hours - len(series)) + series),
            )
        return out

    # --- connections ----------------------------------------------------------------------

    async def connections(self) -> list[ConnectionRow]:
        body = await self.request("GET", f"{PREFIX}/connections")
        return [ConnectionRow.from_json(c) for c in body.get("connections", [])]

    async def save_connection(
        self,
        body: Mapping[str, Any],
        *,
        create: bool,
        secret: str | None = None,
        version: int | None = None,
    ) -> ConnectionRow:
        payload = dict(body)
        if secret:
            payload["client_secret"] = secret
        if create:
            reply = await self.request("POST", f"{PREFIX}/connections", json=payload)
        else:
            reply = await self.request(
                "PUT",
                f"{PREFIX}/connections/{body['id']}",
                json=payload,
                if_match=version,
            )
        return ConnectionRow.from_json(reply)

    async def delete_connection(self, connection_id: str) -> None:
        await self.request("DELETE", f"{PREFIX}/connections/{connection_id}")

    async def test_connection(self, connection_id: str) -> TestResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        body = await self.request(
            "POST", f"{PREFIX}/connections/{connection_id}/test", timeout_s=TEST_TIMEOUT_S
        )
        elapsed = (loop.time() - started) * 1000
        checks = tuple(
            (str(c.get("name", "")), bool(c.get("ok")), str(c.get("message", "")))
            for c in body.get("checks", [])
        )
        fields = body.get("fields", 0)
        return TestResult(
            ok=bool(body.get("ok")),
            message=str(body.get("message", "")),
            elapsed_ms=elapsed,
            checks=checks,
            fields=fields if isinstance(fields, int) else len(fields or []),
        )

    async def refresh_fields(self, connection_id: str) -> list[TargetField]:
        body = await self.request(
            "POST", f"{PREFIX}/connections/{connection_id}/fields/refresh", timeout_s=60.0
        )
        return [
            TargetField(
                name=str(f.get("name", "")),
                display_name=str(f.get("display_name") or f.get("name", "")),
                data_type=str(f.get("data_type") or ""),
                read_only=bool(f.get("read_only", False)),
            )
            for f in body.get("fields", [])
        ]

    # --- reference data -------------------------------------------------------------------

    async def tags(self) -> dict[str, Any]:
        return dict(await self.request("GET", f"{PREFIX}/tags"))

    async def events(self) -> list[dict[str, Any]]:
        body = await self.request("GET", f"{PREFIX}/catalog/events")
        return list(body.get("events", []))

    async def event(self, code: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"{PREFIX}/catalog/events/{code}"))

    async def account(self) -> dict[str, Any]:
        """The whole account (secrets never included)."""
        body = await self.request("GET", f"{PREFIX}/config", params={"format": "json"})
        return dict(body)

    async def mappings(self) -> list[dict[str, Any]]:
        """Every mapping with its `version` (for If-Match) and `used_by` (flow ids)."""
        body = await self.request("GET", f"{PREFIX}/mappings")
        return [dict(m) for m in body.get("mappings", [])]

    async def mapping(self, mapping_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"{PREFIX}/mappings/{mapping_id}"))

    async def save_mapping(
        self, mapping_id: str, body: Mapping[str, Any], version: int | None = None
    ) -> dict[str, Any]:
        """Replace a mapping; with `version`, control refuses (409, path `version`) if someone
        saved it since."""
        reply = await self.request(
            "PUT", f"{PREFIX}/mappings/{mapping_id}", json=dict(body), if_match=version
        )
        return dict(reply)

    async def preview_mapping(
        self, mapping_id: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        reply = await self.request(
            "POST", f"{PREFIX}/mappings/{mapping_id}/preview", json=dict(body or {})
        )
        return dict(reply)

    # --- retry queue ----------------------------------------------------------------------

    async def retry_page(self, filters: RetryFilters, offset: int, limit: int) -> RetryPage:
        params = {**filters.params(), "offset": str(offset), "limit": str(limit)}
        if "flow" in params:
            params["flow_id"] = params.pop("flow")
        body = await self.request("GET", f"{PREFIX}/retry-queue", params=params)
        items = body.get("items", [])
        total = body.get("total", len(items))
        return RetryPage([RetryRow.from_json(i) for i in items], int(total), offset, limit)

    async def retry_item(self, change_id: str, flow_id: str) -> dict[str, Any]:
        """One item with its attempts, archived change and what it would send now."""
        return dict(await self.request("GET", f"{PREFIX}/retry-queue/{change_id}/{flow_id}"))

    async def retry_submit(self, keys: Sequence[tuple[str, str]]) -> SubmitResult:
        payload = {"items": [{"change_id": c, "flow_id": f} for c, f in keys]}
        body = await self.request("POST", f"{PREFIX}/retry-queue/submit", json=payload)
        return SubmitResult.from_json(body, len(keys))

    async def retry_submit_matching(self, filters: RetryFilters, expected: int) -> SubmitResult:
        """Everything matching `filters`, provided exactly `expected` items match when control
        selects them (it refuses with 409 on `expected_count` otherwise, sending nothing)."""
        payload = {"filter": filters.params(), "expected_count": expected}
        body = await self.request("POST", f"{PREFIX}/retry-queue/submit", json=payload)
        return SubmitResult.from_json(body, expected)

    # --- replays -------------------------------------------------------------------------

    async def replay_dry_run(self, scope: Mapping[str, Any]) -> dict[str, Any]:
        """What a replay of `scope` ({flow_id, event_code} or {flow_id, from, to}) would do:
        counts by decision, reasons and a sample of payloads; nothing is sent."""
        body = {**scope, "dry_run": True}
        return dict(await self.request("POST", f"{PREFIX}/replays", json=body, timeout_s=60.0))

    async def replay_start(self, scope: Mapping[str, Any]) -> dict[str, Any]:
        """Start a real replay; the answer carries its `id` and first progress."""
        body = {**scope, "dry_run": False}
        return dict(await self.request("POST", f"{PREFIX}/replays", json=body))

    async def replay(self, replay_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"{PREFIX}/replays/{replay_id}"))

    async def replay_cancel(self, replay_id: str) -> dict[str, Any]:
        return dict(await self.request("DELETE", f"{PREFIX}/replays/{replay_id}"))

    # --- metrics --------------------------------------------------------------------------

    async def metrics_summary(self, mode: str, period: str) -> dict[str, Any]:
        params = {"mode": mode, "period": period}
        return dict(await self.request("GET", f"{PREFIX}/metrics/summary", params=params))

    async def metrics_troubleshooting(self, mode: str, period: str) -> dict[str, Any]:
        params = {"mode": mode, "period": period}
        body = await self.request("GET", f"{PREFIX}/metrics/troubleshooting", params=params)
        return dict(body)

    async def activity(
        self,
        mode: str,
        period: str,
        limit: int = 100,
        *,
        status: Sequence[str] = (),
        exclude_status: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """The newest outcomes; `status` keeps only those statuses, `exclude_status` drops them."""
        params = {"mode": mode, "period": period, "limit": str(limit)}
        if status:
            params["status"] = ",".join(status)
        if exclude_status:
            params["exclude_status"] = ",".join(exclude_status)
        body = await self.request("GET", f"{PREFIX}/activity", params=params)
        return list(body.get("items", []))

    # --- sql ------------------------------------------------------------------------------

    async def sql(self, statement: str, max_rows: int = 1000) -> SqlResult:
        body = await self.request(
            "POST", f"{PREFIX}/sql", json={"sql": statement, "max_rows": max_rows}, timeout_s=60.0
        )
        columns = [c["name"] if isinstance(c, dict) else str(c) for c in body.get("columns", [])]
        return SqlResult(
            columns=columns,
            rows=[list(r) for r in body.get("rows", [])],
            truncated=bool(body.get("truncated", False)),
            elapsed_ms=body.get("elapsed_ms"),
            truncated_by=body.get("truncated_by")
            if isinstance(body.get("truncated_by"), str)
            else None,
        )

    # --- candidate connection tests and tag assignments -------------------------------------

    async def test_candidate_connection(
        self, body: Mapping[str, Any], secret: str | None = None
    ) -> TestResult:
        """Test connection settings before saving them; control stores nothing. Without
        `secret`, control uses the stored one only if the settings keep its destination
        (`Refused` on `client_secret` otherwise)."""
        payload = dict(body)
        if secret:
            payload["client_secret"] = secret
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await self.request(
            "POST", f"{PREFIX}/connections/test", json=payload, timeout_s=TEST_TIMEOUT_S
        )
        elapsed = (loop.time() - started) * 1000
        checks = tuple(
            (str(c.get("name", "")), bool(c.get("ok")), str(c.get("message", "")))
            for c in reply.get("checks", [])
        )
        fields = reply.get("fields", 0)
        return TestResult(
            ok=bool(reply.get("ok")),
            message=str(reply.get("message", "")),
            elapsed_ms=elapsed,
            checks=checks,
            fields=fields if isinstance(fields, int) else len(fields or []),
        )

    async def assign_tags(
        self, kind: str, label: str, tags: Sequence[str], version: int | None = None
    ) -> dict[str, Any]:
        """Set one item's account-level tags (`kind` registration_statuses,
        session_registration_statuses or event_statuses; no tags removes the assignment); the
        answer is `tags()`'s shape. With `version`, control refuses (409) if they changed."""
        payload = {"kind": kind, "label": label, "tags": list(tags)}
        return dict(
            await self.request(
                "PATCH", f"{PREFIX}/tags/assignments", json=payload, if_match=version
            )
        )


def _problems(body: Any) -> list[Problem]:
    if not isinstance(body, dict):
        return []
    errors = body.get("errors")
    if isinstance(errors, list):
        return [
            Problem(str(e.get("path", "")), str(e.get("message", "")))
            for e in errors
            if isinstance(e, dict)
        ]
    message = body.get("message") or body.get("error")
    if message:
        return [Problem(str(body.get("parameter", "")), str(message))]
    return []


def _route_missing(body: Any) -> bool:
    """aiohttp's own 404/405 (no such route), as opposed to "no flow 'x'"."""
    problems = _problems(body)
    if not problems:
        return True
    return all(p.message in ("Not Found", "Method Not Allowed") for p in problems)
