"""Async client for one Marketo instance (one per connection): the operations Signal performs.

Each operation builds its requests (batches under Marketo's count and size caps, one lock per lead
key) and reads the answers into one typed result per input, in input order. How a request waits,
is sent, retried and classified is the transport's (stream/marketo/transport.py); what an answer
means is the protocol's (stream/marketo/protocol.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal

import aiohttp

from stream.core.breaker import Breaker
from stream.marketo.activities import ActivityLog
from stream.marketo.errors import FailureClass
from stream.marketo.limits import CallLimits, MonotonicClock, Sleep, WallClock, utc_now
from stream.marketo.protocol import (
    CAMPAIGNS_PATH,
    CHANNELS_PATH,
    DESCRIBE_PATH,
    FORMS_PATH,
    LEADS_PATH,
    MAX_ASSET_PAGE,
    MAX_PAGES,
    PROGRAMS_PATH,
    SUBMIT_FORM_PATH,
    chunks,
    compact,
    local_result,
    match_program_records,
    match_records,
    program_status_body,
    program_status_path,
    token_name,
)
from stream.marketo.results import (
    Campaign,
    Channel,
    Form,
    FormField,
    LeadField,
    Program,
    ProgressionStatus,
    RecordResult,
)
from stream.marketo.settings import MarketoSettings
from stream.marketo.token import AccessToken
from stream.marketo.transport import CallHook, Transport

__all__ = ["CallHook", "MarketoClient", "UpsertAction"]

UpsertAction = Literal["createOrUpdate", "createOnly", "updateOnly", "createDuplicate"]


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


LOOKUP_MAX_PAGES = 10
"""Pages one lead lookup reads (3,000 leads for at most 300 values): a server that always
offers a next page must not hold a delivery for thousands of pages."""


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
        breaker: Breaker | None = None,
    ) -> None:
        """`breaker`: the connection's circuit breaker, which outlives a client rebuilt for a
        changed configuration (the pipeline's `ClientPool` holds it); None: calls are never
        refused, as for the operator API's checks and pickers."""
        self.settings = settings
        self._transport = Transport(
            settings,
            on_call=on_call,
            clock=clock,
            now=now,
            sleep=sleep,
            session=session,
            breaker=breaker,
        )
        self._keys = _KeyLocks()
        self._fields: list[LeadField] | None = None
        self._fields_lock = asyncio.Lock()
        self.activity_log = ActivityLog(
            lambda path, params, size: self._transport.read(path, params, batch_size=size)
        )
        """Marketo's activity log, read only to verify a call whose answer was lost."""

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
        await self._transport.close()

    @property
    def limits(self) -> CallLimits:
        return self._transport.limits

    @property
    def quota_parked_until(self) -> datetime | None:
        """When calls resume after Marketo reported the daily quota spent; None when not parked."""
        return self._transport.quota_parked_until

    @property
    def token_fetches(self) -> int:
        return self._transport.token_fetches

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
        overhead = len(compact({**head, "input": []}))
        for index, lead in enumerate(leads):
            value = lead.get(lookup_field)
            if value is None or value == "":
                results[index] = local_result(
                    index,
                    FailureClass.DATA,
                    "missing-lookup",
                    f"the lookup field {lookup_field!r} is empty",
                )
                continue
            size = len(compact(lead))
            if overhead + size > self.settings.max_body_bytes:
                results[index] = local_result(
                    index,
                    FailureClass.DATA,
                    "too-large",
                    f"the record is {size} bytes; a Marketo request carries at most "
                    f"{self.settings.max_body_bytes}",
                )
                continue
            sized.append((index, size))
        batches_of = list(
            chunks(sized, self.settings.lead_batch_size, overhead, self.settings.max_body_bytes)
        )
        batches = await asyncio.gather(
            *(self._upsert_chunk(leads, c, head, lookup_field) for c in batches_of)
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
        body = compact({**head, "input": [leads[i] for i in indices]})
        async with self._keys.hold(keys):
            answer = await self._transport.call(
                "POST", LEADS_PATH, body=body, batch_size=len(indices)
            )
        if answer.failure is None:
            return match_records(indices, answer, LEADS_PATH)
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
        return await self._paged(
            LEADS_PATH, params, batch_size=len(values), max_pages=LOOKUP_MAX_PAGES
        )

    async def _paged(
        self, path: str, params: dict[str, str], *, batch_size: int = 0, max_pages: int = MAX_PAGES
    ) -> list[dict[str, Any]]:
        """Read every page of a token-paged list (at most `max_pages`)."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(max_pages):
            envelope = await self._transport.read(path, params, batch_size=batch_size)
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
                envelope = await self._transport.read(DESCRIBE_PATH, {})
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
        max_pages: int = MAX_PAGES,
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
        rows = await self._paged(CAMPAIGNS_PATH, params, max_pages=max_pages)
        return [Campaign.from_api(r) for r in rows if "id" in r]

    async def request_campaign(
        self,
        campaign_id: int,
        lead_ids: Sequence[int],
        *,
        tokens: Mapping[str, str] | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> list[RecordResult]:
        """Ask Marketo to run a trigger campaign for leads, 100 per call.

        Success means Marketo accepted the request (status `requested`), not that the campaign ran:
        Marketo reports no per-lead outcome here. `before_send` is awaited as each call is about
        to go out (`Transport.call`).
        """
        path = f"/rest/v1/campaigns/{int(campaign_id)}/trigger.json"
        token_items = [
            {"name": token_name(name), "value": str(value)}
            for name, value in (tokens or {}).items()
        ]
        if len(token_items) > self.settings.campaign_batch_size:
            message = (
                f"{len(token_items)} tokens; Marketo accepts at most "
                f"{self.settings.campaign_batch_size} per campaign request"
            )
            return [
                local_result(i, FailureClass.SYSTEMIC, "too-many-tokens", message)
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
            answer = await self._transport.call(
                "POST",
                path,
                body=compact({"input": payload}),
                batch_size=len(indices),
                before_send=before_send,
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
        max_pages: int = MAX_PAGES,
    ) -> list[Form]:
        page_size = max(1, min(page_size, MAX_ASSET_PAGE))
        forms: list[Form] = []
        offset = 0
        for _ in range(max_pages):
            params = {"maxReturn": str(page_size), "offset": str(offset)}
            if status:
                params["status"] = status
            if folder_id is not None:
                params["folder"] = json.dumps({"id": folder_id, "type": "Folder"})
            envelope = await self._transport.read(FORMS_PATH, params)
            result = envelope.get("result") or []
            forms.extend(Form.from_api(r) for r in result if isinstance(r, Mapping) and "id" in r)
            if len(result) < page_size:
                break
            offset += page_size
        return forms

    async def form_fields(self, form_id: int) -> list[FormField]:
        envelope = await self._transport.read(f"/rest/asset/v1/form/{int(form_id)}/fields.json", {})
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
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> RecordResult:
        """Submit one lead through a form (REST field names; `email` required); `before_send` is
        awaited as the call is about to go out (`Transport.call`)."""
        email = fields.get("email")
        if not email:
            return local_result(0, FailureClass.DATA, "missing-email", "the form post has no email")
        item: dict[str, Any] = {"leadFormFields": dict(fields)}
        if visitor_data:
            item["visitorData"] = dict(visitor_data)
        if cookie:
            item["cookie"] = cookie
        payload: dict[str, Any] = {"formId": int(form_id), "input": [item]}
        if program_id is not None:
            payload["programId"] = int(program_id)
        async with self._keys.hold({str(email).strip().lower()}):
            answer = await self._transport.call(
                "POST",
                SUBMIT_FORM_PATH,
                body=compact(payload),
                batch_size=1,
                before_send=before_send,
            )
        if answer.failure is not None:
            return RecordResult(0, None, failure=answer.failure, request_id=answer.request_id)
        return match_records([0], answer, SUBMIT_FORM_PATH)[0]

    # ---- programs ----------------------------------------------------------------------------

    async def _asset_pages(
        self, path: str, params: Mapping[str, str], max_pages: int = MAX_PAGES
    ) -> list[Mapping[str, Any]]:
        """Every item of an offset-paged asset list (a short page ends it; `max_pages` at
        most)."""
        rows: list[Mapping[str, Any]] = []
        offset = 0
        for _ in range(max_pages):
            page = {**params, "maxReturn": str(MAX_ASSET_PAGE), "offset": str(offset)}
            envelope = await self._transport.read(path, page)
            result = envelope.get("result") or []
            rows.extend(r for r in result if isinstance(r, Mapping))
            if len(result) < MAX_ASSET_PAGE:
                break
            offset += MAX_ASSET_PAGE
        return rows

    async def list_programs(self, *, max_pages: int = MAX_PAGES) -> list[Program]:
        rows = await self._asset_pages(PROGRAMS_PATH, {}, max_pages)
        return [Program.from_api(r) for r in rows if isinstance(r.get("id"), int)]

    async def list_channels(self, *, max_pages: int = MAX_PAGES) -> list[Channel]:
        rows = await self._asset_pages(CHANNELS_PATH, {}, max_pages)
        return [Channel.from_api(r) for r in rows]

    async def program_statuses(
        self, program_id: int, *, max_pages: int = MAX_PAGES
    ) -> list[ProgressionStatus]:
        """The statuses of a program's channel, in step order; empty when the program or its
        channel is unknown."""
        envelope = await self._transport.read(f"/rest/asset/v1/program/{int(program_id)}.json", {})
        items = [r for r in envelope.get("result") or [] if isinstance(r, Mapping)]
        channel = items[0].get("channel") if items else None
        if not isinstance(channel, str):
            return []
        for found in await self.list_channels(max_pages=max_pages):
            if found.name == channel:
                return sorted(found.statuses, key=lambda s: s.step)
        return []

    async def set_program_status(
        self, program_id: int, status: str, lead_ids: Sequence[int]
    ) -> list[RecordResult]:
        """Set leads' status in a program (300 per call), adding those not yet members.

        One result per lead, in input order: `created` (new member), `updated`, `not_changed`
        (the lead already is in that status or past it: Marketo moves members forward only;
        Marketo's words in `detail`), or a failure classified as every other call's."""
        path = program_status_path(program_id)
        size = self.settings.lead_batch_size
        groups = [
            list(range(i, min(i + size, len(lead_ids)))) for i in range(0, len(lead_ids), size)
        ]

        async def one(indices: list[int]) -> list[RecordResult]:
            ids = [int(lead_ids[i]) for i in indices]
            answer = await self._transport.call(
                "POST", path, body=program_status_body(status, ids), batch_size=len(indices)
            )
            if answer.failure is not None:
                rid = answer.request_id
                return [
                    RecordResult(i, None, lead, failure=answer.failure, request_id=rid)
                    for i, lead in zip(indices, ids, strict=True)
                ]
            return match_program_records(indices, ids, answer, path)

        batches = await asyncio.gather(*(one(g) for g in groups))
        return [r for batch in batches for r in batch]

    # ---- checks used by the connection test ------------------------------------------------

    async def authenticate(self) -> AccessToken:
        """Obtain (or reuse) a token; raises MarketoError when the credentials or URL are wrong."""
        return await self._transport.authenticate()
