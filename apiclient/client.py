"""One async client of control's operator API (DESIGN 4.3), for the CLI, the console and tools.

Everything outside control reaches data through this API, so each route is written here once and
every failure is an `ApiError` (apiclient.errors) whose text says what to do; nothing here prints,
exits or imports Textual. The CLI uses `ApiClient()` (address, token and actor from the
environment); the console uses `ApiClient.for_console(...)` (its own actor and shorter time
limit). Where to find the token and who is acting: apiclient.access; how a call is made and
its failures told: apiclient.transport.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from apiclient import access
from apiclient.errors import (
    ApiError,
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
    BreakerRow,
    ConnectionRow,
    FlowRow,
    FlowStats,
    IngestResult,
    RetryFilters,
    RetryPage,
    RetryRow,
    SourceRow,
    SqlResult,
    SubmitResult,
    TargetField,
    TestResult,
)
from apiclient.transport import API_PREFIX, CONSOLE_TIMEOUT_S, Transport

LONG_TIMEOUT_S = 60.0
"""SQL, a replay's dry run, a field refresh: control bounds these itself, within about a minute."""
TEST_TIMEOUT_S = 90.0
"""A connection test does one honest try with its own bounds on control's side (about a minute)."""
SPARK_HOURS = 12
ERASE_TIMEOUT_S = 1800.0
"""An erasure rewrites the tables that held the person (seconds per million rows) while control
holds its writer; on a large ledger that takes minutes, and the answer is the only report."""


def _segment(value: str) -> str:
    return quote(value, safe="")


class ApiClient(Transport):
    """Every route of the operator API, once; the calls themselves go through `Transport`."""

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

    async def connection_breakers(self) -> dict[str, BreakerRow] | None:
        """Each connection's circuit breaker as the pipeline workers report it (`/healthz`,
        no token needed), by connection id. None while control does not read the workers'
        heartbeats: unknown, which is not the same as closed. A connection that no live worker
        has called yet is not listed."""
        listed = (await self.healthz()).get("connections")
        if not isinstance(listed, dict):
            return None
        return {
            str(cid): BreakerRow.from_json(entry)
            for cid, entry in listed.items()
            if isinstance(entry, dict)
        }

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

    async def marketo_assets(
        self, connection_id: str, kind: str, program_id: int | None = None
    ) -> dict[str, Any]:
        """What the connection's Marketo offers for a destination: `kind` is `campaigns`,
        `forms`, `programs` or `statuses` (of `program_id`). `{"items": [...], "truncated"}`;
        a `RequestRefused` (502) says why Marketo could not list them."""
        route = f"/connections/{_segment(connection_id)}/marketo/"
        if kind == "statuses":
            route += f"programs/{int(program_id or 0)}/statuses"
        else:
            route += _segment(kind)
        return await self._object("GET", route, timeout_s=LONG_TIMEOUT_S)

    # -- Certain sources ------------------------------------------------------------------------

    async def sources(self) -> list[SourceRow]:
        """Every Certain source with its settings and its poller's state."""
        reply = await self._object("GET", "/sources")
        return [SourceRow.from_json(s) for s in reply.get("sources", [])]

    async def save_source(
        self,
        body: Mapping[str, Any],
        *,
        create: bool,
        password: str | None = None,
        version: int | None = None,
    ) -> SourceRow:
        """Create or replace a Certain source; without `password` control keeps the stored one
        unless the host or username changed (the answer's `password_cleared` says so)."""
        payload = dict(body)
        if password:
            payload["password"] = password
        if create:
            reply = await self._object("POST", "/sources", body=payload)
        else:
            route = f"/sources/{_segment(str(body['id']))}"
            reply = await self._object("PUT", route, body=payload, if_match=version)
        return SourceRow.from_json(reply)

    async def delete_source(self, source_id: str, version: int | None = None) -> None:
        """Delete a Certain source with its stored password and poll state; its poller stops
        within a second."""
        await self._api("DELETE", f"/sources/{_segment(source_id)}", if_match=version)

    async def test_candidate_source(
        self, body: Mapping[str, Any], password: str | None = None
    ) -> TestResult:
        """Sign in with Certain source settings before saving them; control stores nothing.
        Without `password` control uses the stored one only while host, username and account
        code are unchanged (`RequestRefused` on `password` otherwise)."""
        payload = dict(body)
        if password:
            payload["password"] = password
        return await self._test("/sources/test", payload)

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

    async def create_mapping(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a mapping (`id` in the body); 409 on `id` when one has that id already."""
        return await self._object("POST", "/mappings", body=dict(body))

    async def delete_mapping(self, mapping_id: str, version: int | None = None) -> None:
        """Delete a mapping no flow uses; control refuses one in use (409, path `used_by`,
        the flows named in the message)."""
        await self._api("DELETE", f"/mappings/{_segment(mapping_id)}", if_match=version)

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
        return await self._object("POST", "/ledger/erasures", body=body, timeout_s=ERASE_TIMEOUT_S)

    async def ledger_retention(self) -> dict[str, Any]:
        """Retention settings (`policy`), the last pass, disk use (`file_bytes`) and the oldest
        row each table keeps (`oldest`)."""
        return await self._object("GET", "/ledger/retention")

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
