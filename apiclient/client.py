"""One async client of control's operator API (DESIGN 4.3), for the CLI, the console and tools.

Everything outside control reaches data through this API, so each route is written here once and
every failure is an `ApiError` (apiclient.errors) whose text says what to do; nothing here prints,
exits or imports Textual. The CLI uses `ApiClient()` (address, token and actor from the
environment); the console uses `ApiClient.for_console(...)` (its own actor and shorter time
limit). Where to find the token and who is acting: apiclient.access.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from apiclient import access
from apiclient.errors import (
    ApiError,
    ControlTimeout,
    ControlUnreachable,
    TokenMissing,
    TokenRefused,
    refusal,
)
from apiclient.ingest import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_CHUNK_LINES,
    ProgressHook,
    encode_batch,
    read_chunk,
)
from apiclient.rows import (
    ConnectionRow,
    FlowRow,
    FlowStats,
    IngestResult,
    RetryFilters,
    RetryPage,
    RetryRow,
    SqlResult,
    SubmitResult,
    TargetField,
    TestResult,
)
from config.settings import Settings

API_PREFIX = "/api/v1"
CLI_TIMEOUT_S = 60.0
CONSOLE_TIMEOUT_S = 10.0
"""The console keeps refreshing: a call that hangs longer is reported, not waited for."""
CONNECT_TIMEOUT_S = 3.0
LONG_TIMEOUT_S = 60.0
"""SQL, a replay's dry run, a field refresh: control bounds these itself, within about a minute."""
TEST_TIMEOUT_S = 90.0
"""A connection test does one honest try with its own bounds on control's side (about a minute)."""
SPARK_HOURS = 12


def _segment(value: str) -> str:
    return quote(value, safe="")


class ApiClient:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        actor: str | None = None,
        read_only: bool = False,
        token_hint: str | None = None,
        settings: Settings | None = None,
        timeout: float = CLI_TIMEOUT_S,
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        """`token` None reads it (apiclient.access) at the first call that needs it; `actor`
        None is the CLI's (`$SIGNAL_ACTOR`, else the login name)."""
        self._settings = settings
        self.base_url = access.api_base_url(base_url, settings)
        self._token = token
        self._read_only = read_only
        self._actor = actor or access.cli_actor()
        self._token_hint = token_hint or (
            "$SIGNAL_DATA_DIR/api-token-read-only" if read_only else "$SIGNAL_DATA_DIR/api-token"
        )
        """Where the token came from, for the message when it is refused."""
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_console(
        cls,
        base_url: str | None = None,
        token: str | None = None,
        *,
        read_only: bool = False,
        token_hint: str | None = None,
    ) -> ApiClient:
        """The console's client: actor `console:<login>`, a 10 s limit for ordinary calls."""
        return cls(
            base_url,
            token,
            actor=access.console_actor(),
            read_only=read_only,
            token_hint=token_hint,
            timeout=CONSOLE_TIMEOUT_S,
        )

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r})"

    @property
    def actor(self) -> str:
        """What the audit trail records for this client's changes."""
        return self._actor

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
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _auth(self) -> dict[str, str]:
        token = self._token or access.read_token(self._settings, read_only=self._read_only)
        if token is None:
            raise TokenMissing(
                access.token_file(self._settings, read_only=self._read_only),
                access.token_env(read_only=self._read_only),
            )
        self._token = token
        return {"Authorization": f"Bearer {token}"}

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
        timeout_s: float | None = None,
        if_match: int | None = None,
    ) -> tuple[int, Any]:
        """One call; `(status, body)` for a success or a status in `ok_statuses`. The body is
        parsed JSON when control sent JSON, else its text."""
        headers = {"Accept": accept, "X-Signal-Actor": self._actor}
        if auth:
            try:
                headers.update(self._auth())
            except TokenMissing:
                await self.healthz()  # control not running is the likelier, clearer story
                raise
        if content_type is not None:
            headers["Content-Type"] = content_type
        if if_match is not None:
            headers["If-Match"] = str(if_match)
        limit = max(self._timeout, timeout_s or 0.0)
        timeout = aiohttp.ClientTimeout(total=limit, sock_connect=self._connect_timeout)
        try:
            async with self._http().request(
                method,
                self.base_url + path,
                json=json_body,
                data=data,
                headers=headers,
                timeout=timeout,
            ) as response:
                raw = await response.read()
                status = response.status
                is_json = "json" in (response.content_type or "")
        except (
            aiohttp.ClientConnectorError,
            aiohttp.ServerDisconnectedError,
            aiohttp.ConnectionTimeoutError,
        ) as error:
            raise ControlUnreachable(self.base_url, str(error)) from None
        except TimeoutError:
            raise ControlTimeout(self.base_url, limit) from None
        except aiohttp.ClientError as error:
            raise ControlUnreachable(self.base_url, str(error) or type(error).__name__) from None
        body: Any = raw.decode("utf-8", "replace")
        if is_json:
            with contextlib.suppress(ValueError):
                body = json.loads(raw) if raw else None
        if status == 401:
            raise TokenRefused(self._token_hint)
        if status >= 400 and status not in set(ok_statuses):
            raise refusal(method, path, status, body)
        return status, body

    async def _api(
        self,
        method: str,
        route: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        if_match: int | None = None,
    ) -> Any:
        """A JSON call to `/api/v1{route}`; empty query values are left out."""
        params = {k: str(v) for k, v in (query or {}).items() if v is not None and v != ""}
        path = f"{API_PREFIX}{route}" + (f"?{urlencode(params)}" if params else "")
        _status, reply = await self._request(
            method, path, json_body=body, timeout_s=timeout_s, if_match=if_match
        )
        return reply

    async def _object(self, method: str, route: str, **kw: Any) -> dict[str, Any]:
        """A call whose answer must be a JSON object."""
        reply = await self._api(method, route, **kw)
        if not isinstance(reply, dict):
            raise ApiError(f"unexpected answer to {method} {route}: {str(reply)[:200]}")
        return reply

    async def call(
        self, method: str, route: str, *, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> Any:
        """Any route under `/api/v1` (e.g. `/connections/x`), for a one-off use."""
        return await self._api(method, route, body=body, query=query)

    # -- health ---------------------------------------------------------------------------------

    async def healthz(self) -> dict[str, Any]:
        """Control's health; answered without a token, also while not ready (503)."""
        _status, body = await self._request("GET", "/healthz", auth=False, ok_statuses=(503,))
        return body if isinstance(body, dict) else {"status": body}

    async def wait_ready(self, within: float = 30.0, interval: float = 0.2) -> dict[str, Any]:
        """Poll /healthz until control says it is ready (`ok`); the last error when it never
        does (`ControlUnreachable` when nothing listened)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            try:
                health = await self.healthz()
                if health.get("ok", True) is not False:
                    return health
                if loop.time() >= deadline:
                    raise ApiError(f"control at {self.base_url} is not ready: {health}")
            except ApiError:
                if loop.time() >= deadline:
                    raise
            await asyncio.sleep(interval)

    # -- ingest ---------------------------------------------------------------------------------

    async def post_changes(
        self, items: Sequence[Any] | bytes, *, first_line: int = 1
    ) -> IngestResult:
        """Post a batch (decoded items, or NDJSON bytes); rejections carry 1-based positions
        counted from `first_line`."""
        data, count = encode_batch(items)
        path = f"{API_PREFIX}/changes"
        status, body = await self._request(
            "POST",
            path,
            data=data,
            content_type="application/x-ndjson",
            ok_statuses=(400, 207, 422),
        )
        result = IngestResult.from_json(body, first_line, count)
        if status >= 400 and not result.rejected and result.accepted == 0:
            raise refusal("POST", path, status, body)
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
                    read_chunk, handle, chunk_lines, chunk_bytes, lines_read
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

    # -- flows ----------------------------------------------------------------------------------

    async def flows(self) -> list[FlowRow]:
        reply = await self._api("GET", "/flows")
        items = reply.get("flows", []) if isinstance(reply, dict) else reply
        return [FlowRow.from_json(f) for f in items or [] if isinstance(f, dict)]

    async def flow(self, flow_id: str) -> FlowRow:
        return FlowRow.from_json(await self._object("GET", f"/flows/{_segment(flow_id)}"))

    async def create_flow(self, body: Mapping[str, Any]) -> FlowRow:
        return FlowRow.from_json(await self._object("POST", "/flows", body=dict(body)))

    async def save_flow(
        self, flow_id: str, body: Mapping[str, Any], version: int | None = None
    ) -> FlowRow:
        """Replace a flow; with `version`, control refuses (409) if someone saved it since."""
        route = f"/flows/{_segment(flow_id)}"
        return FlowRow.from_json(
            await self._object("PUT", route, body=dict(body), if_match=version)
        )

    async def set_active(self, flow_id: str, active: bool) -> FlowRow:
        route = f"/flows/{_segment(flow_id)}/active"
        return FlowRow.from_json(await self._object("POST", route, body={"active": active}))

    async def set_mode(self, flow_id: str, mode: str) -> FlowRow:
        route = f"/flows/{_segment(flow_id)}/mode"
        return FlowRow.from_json(await self._object("POST", route, body={"mode": mode}))

    async def flow_figures(self, period: str, to: datetime | None = None) -> dict[str, Any]:
        """Per-flow counts over `period` (`today` or a duration), ending at `to` (default now)."""
        query = {"period": period, "to": to.astimezone(UTC).isoformat() if to else None}
        reply = await self._object("GET", "/flows/figures", query=query)
        flows = reply.get("flows")
        return {str(k): v for k, v in flows.items() if isinstance(v, dict)} if flows else {}

    async def flow_stats(self, now: datetime, hours: int = SPARK_HOURS) -> dict[str, FlowStats]:
        """Delivered and failed per flow since midnight UTC, plus outcomes per hour over the
        last `hours` hours of today (oldest first, zeros before midnight) for a sparkline; a flow
        with no outcomes today is left out (its row shows no trend).

        The window ends at the console's clock, so the buckets line up with what it shows.
        """
        out: dict[str, FlowStats] = {}
        for flow_id, figures in (await self.flow_figures("today", now)).items():
            series = [int(n) for n in figures.get("series") or []][-hours:]
            if not any(series):
                continue
            out[flow_id] = FlowStats(
                int(figures.get("delivered") or 0),
                int(figures.get("failed") or 0),
                tuple([0] * (hours - len(series)) + series),
            )
        return out

    # -- connections ----------------------------------------------------------------------------

    async def connections(self) -> list[ConnectionRow]:
        reply = await self._object("GET", "/connections")
        return [ConnectionRow.from_json(c) for c in reply.get("connections", [])]

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
            reply = await self._object("POST", "/connections", body=payload)
        else:
            route = f"/connections/{_segment(str(body['id']))}"
            reply = await self._object("PUT", route, body=payload, if_match=version)
        return ConnectionRow.from_json(reply)

    async def delete_connection(self, connection_id: str) -> None:
        await self._api("DELETE", f"/connections/{_segment(connection_id)}")

    async def test_connection(self, connection_id: str) -> TestResult:
        return await self._test(f"/connections/{_segment(connection_id)}/test", None)

    async def test_candidate_connection(
        self, body: Mapping[str, Any], secret: str | None = None
    ) -> TestResult:
        """Test connection settings before saving them; control stores nothing. Without
        `secret`, control uses the stored one only if the settings keep its destination
        (`RequestRefused` on `client_secret` otherwise)."""
        payload = dict(body)
        if secret:
            payload["client_secret"] = secret
        return await self._test("/connections/test", payload)

    async def _test(self, route: str, payload: dict[str, Any] | None) -> TestResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await self._object("POST", route, body=payload, timeout_s=TEST_TIMEOUT_S)
        return TestResult.from_json(reply, (loop.time() - started) * 1000)

    async def refresh_fields(self, connection_id: str) -> list[TargetField]:
        route = f"/connections/{_segment(connection_id)}/fields/refresh"
        reply = await self._object("POST", route, timeout_s=LONG_TIMEOUT_S)
        return [
            TargetField(
                name=str(f.get("name", "")),
                display_name=str(f.get("display_name") or f.get("name", "")),
                data_type=str(f.get("data_type") or ""),
                read_only=bool(f.get("read_only", False)),
            )
            for f in reply.get("fields", [])
        ]

    # -- reference data, configuration, mappings ------------------------------------------------

    async def tags(self) -> dict[str, Any]:
        return await self._object("GET", "/tags")

    async def assign_tags(
        self, kind: str, label: str, tags: Sequence[str], version: int | None = None
    ) -> dict[str, Any]:
        """Set one item's account-level tags (`kind` registration_statuses,
        session_registration_statuses or event_statuses; no tags removes the assignment); the
        answer is `tags()`'s shape. With `version`, control refuses (409) if they changed."""
        payload = {"kind": kind, "label": label, "tags": list(tags)}
        return await self._object("PATCH", "/tags/assignments", body=payload, if_match=version)

    async def events(self) -> list[dict[str, Any]]:
        return list((await self._object("GET", "/catalog/events")).get("events", []))

    async def event(self, code: str) -> dict[str, Any]:
        return await self._object("GET", f"/catalog/events/{_segment(code)}")

    async def get_config(self, fmt: str = "yaml") -> str:
        """The whole account as YAML or JSON text (secrets never included)."""
        accept = "application/yaml" if fmt == "yaml" else "application/json"
        _status, reply = await self._request(
            "GET", f"{API_PREFIX}/config?format={fmt}", accept=accept
        )
        if isinstance(reply, str):
            return reply
        return json.dumps(reply, indent=2, ensure_ascii=False)

    async def account(self) -> dict[str, Any]:
        """The whole account, parsed (secrets never included)."""
        data = json.loads(await self.get_config("json"))
        if not isinstance(data, dict):
            raise ApiError(f"unexpected answer to GET /config: {str(data)[:200]}")
        return data

    async def put_config(self, text: str, fmt: str = "yaml") -> dict[str, Any]:
        content_type = "application/yaml" if fmt == "yaml" else "application/json"
        _status, reply = await self._request(
            "PUT", f"{API_PREFIX}/config", data=text.encode("utf-8"), content_type=content_type
        )
        return reply if isinstance(reply, dict) else {"result": reply}

    async def mappings(self) -> list[dict[str, Any]]:
        """Every mapping with its `version` (for If-Match) and `used_by` (flow ids)."""
        return [dict(m) for m in (await self._object("GET", "/mappings")).get("mappings", [])]

    async def mapping(self, mapping_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/mappings/{_segment(mapping_id)}")

    async def save_mapping(
        self, mapping_id: str, body: Mapping[str, Any], version: int | None = None
    ) -> dict[str, Any]:
        """Replace a mapping; with `version`, control refuses (409, path `version`) if someone
        saved it since."""
        route = f"/mappings/{_segment(mapping_id)}"
        return await self._object("PUT", route, body=dict(body), if_match=version)

    async def preview_mapping(
        self, mapping_id: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        route = f"/mappings/{_segment(mapping_id)}/preview"
        return await self._object("POST", route, body=dict(body or {}))

    # -- retry queue ----------------------------------------------------------------------------

    async def retry_list(
        self, filters: Mapping[str, Any], offset: int, limit: int
    ) -> dict[str, Any]:
        """One page of the queue as control sends it (`items`, `total`)."""
        query = {**filters, "offset": offset, "limit": limit}
        return await self._object("GET", "/retry-queue", query=query)

    async def retry_page(self, filters: RetryFilters, offset: int, limit: int) -> RetryPage:
        body = await self.retry_list(filters.params(), offset, limit)
        items = body.get("items", [])
        total = body.get("total", len(items))
        return RetryPage([RetryRow.from_json(i) for i in items], int(total), offset, limit)

    async def retry_item(self, change_id: str, flow_id: str) -> dict[str, Any]:
        """One item with its attempts, archived change and what it would send now."""
        route = f"/retry-queue/{_segment(change_id)}/{_segment(flow_id)}"
        return await self._object("GET", route)

    async def retry_submit_body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Resubmit `{"items": [...]}` or `{"filter": {...}, "expected_count": n}`; control's
        answer as sent."""
        return await self._object("POST", "/retry-queue/submit", body=dict(body))

    async def retry_submit(self, keys: Sequence[tuple[str, str]]) -> SubmitResult:
        payload = {"items": [{"change_id": c, "flow_id": f} for c, f in keys]}
        return SubmitResult.from_json(await self.retry_submit_body(payload), len(keys))

    async def retry_submit_matching(self, filters: RetryFilters, expected: int) -> SubmitResult:
        """Everything matching `filters`, provided exactly `expected` items match when control
        selects them (it refuses with 409 on `expected_count` otherwise, sending nothing)."""
        payload = {"filter": filters.params(), "expected_count": expected}
        return SubmitResult.from_json(await self.retry_submit_body(payload), expected)

    # -- replays --------------------------------------------------------------------------------

    async def replay_start(self, scope: Mapping[str, Any]) -> dict[str, Any]:
        """Start a replay of `scope` ({flow_id, event_code} or {flow_id, from, to}); a real one
        unless the scope says `"dry_run": true`. The answer carries its `id` and progress."""
        body = {"dry_run": False, **scope}
        timeout = LONG_TIMEOUT_S if body["dry_run"] else None
        return await self._object("POST", "/replays", body=body, timeout_s=timeout)

    async def replay_dry_run(self, scope: Mapping[str, Any]) -> dict[str, Any]:
        """What a replay of `scope` would do: counts by decision, reasons and a sample of
        payloads; nothing is sent."""
        return await self.replay_start({**scope, "dry_run": True})

    async def replay(self, replay_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/replays/{_segment(replay_id)}")

    async def replay_cancel(self, replay_id: str) -> dict[str, Any]:
        return await self._object("DELETE", f"/replays/{_segment(replay_id)}")

    # -- metrics and activity -------------------------------------------------------------------

    async def metrics(self, kind: str, mode: str, period: str) -> dict[str, Any]:
        """`kind` summary or troubleshooting."""
        query = {"mode": mode, "period": period}
        return await self._object("GET", f"/metrics/{_segment(kind)}", query=query)

    async def metrics_summary(self, mode: str, period: str) -> dict[str, Any]:
        return await self.metrics("summary", mode, period)

    async def metrics_troubleshooting(self, mode: str, period: str) -> dict[str, Any]:
        return await self.metrics("troubleshooting", mode, period)

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
        query = {
            "mode": mode,
            "period": period,
            "limit": limit,
            "status": ",".join(status),
            "exclude_status": ",".join(exclude_status),
        }
        return list((await self._object("GET", "/activity", query=query)).get("items", []))

    # -- the ledger: backups, exports, a person's data ------------------------------------------

    async def ledger_backup(self, directory: str) -> dict[str, Any]:
        """Start a backup into `directory` (absolute, on control's host, new or empty); the
        answer is the job (`id`, `state`), followed with `ledger_job`."""
        return await self._object("POST", "/ledger/backups", body={"dir": directory})

    async def ledger_export(
        self, table: str, directory: str, since: str | None = None
    ) -> dict[str, Any]:
        """Start a Parquet export of `table` (changes, outcomes, api_calls) into
        `directory/table/day=…/`: the rows recorded since the last export there."""
        body = {"table": table, "dir": directory, "format": "parquet", "since": since}
        return await self._object("POST", "/ledger/exports", body=body)

    async def person_data(self, selector: Mapping[str, str]) -> dict[str, Any]:
        """Everything the ledger holds on one person ({"email": …} or {"registration": …})."""
        return await self._object("POST", "/ledger/person", body=dict(selector))

    async def erase_person(self, selector: Mapping[str, str]) -> dict[str, Any]:
        """Erase one person from the ledger; the answer says what was touched and lists the
        Marketo lead ids delivered (to delete in Marketo too)."""
        body = dict(selector)
        return await self._object("POST", "/ledger/erasures", body=body, timeout_s=LONG_TIMEOUT_S)

    async def ledger_job(self, job_id: str) -> dict[str, Any]:
        """A backup's or export's progress: `state` running|done|failed, `table`, `rows_done`
        of `rows_total`, then `result` or `error`."""
        return await self._object("GET", f"/ledger/jobs/{_segment(job_id)}")

    # -- sql ------------------------------------------------------------------------------------

    async def sql(self, statement: str, max_rows: int | None = None) -> SqlResult:
        """A read-only query on the ledger; without `max_rows`, control's own cap applies."""
        body: dict[str, Any] = {"sql": statement}
        if max_rows is not None:
            body["max_rows"] = max_rows
        reply = await self._object("POST", "/sql", body=body, timeout_s=LONG_TIMEOUT_S)
        columns = [
            str(c.get("name", "")) if isinstance(c, dict) else str(c)
            for c in reply.get("columns", [])
        ]
        by = reply.get("truncated_by")
        elapsed = reply.get("elapsed_ms")
        return SqlResult(
            columns=columns,
            rows=[list(r) for r in reply.get("rows", [])],
            truncated=bool(reply.get("truncated", False)),
            elapsed_ms=elapsed if isinstance(elapsed, int | float) else None,
            truncated_by=by if isinstance(by, str) else None,
        )

    async def scalar(self, statement: str) -> Any:
        result = await self.sql(statement, max_rows=1)
        return result.rows[0][0] if result.rows and result.rows[0] else None
