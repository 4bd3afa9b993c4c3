"""Deliver a batch of mapped actions for one connection: Marketo calls in, one outcome per request.

The batch comes from the deliver agent (all requests of one connection taken within a short
window). Requests are grouped so Marketo's batch endpoints carry as many leads as they allow:

- create_update_lead: upsert by the lookup field (300 per call), then request each campaign for
  the leads that synced (100 per call, requests with different tokens apart);
- trigger_campaign: make sure each lead exists — createOrUpdate when the connection forces
  updates, otherwise look the leads up and create only the missing ones — then request the
  campaign with the mapped tokens;
- form_post: submitForm, one lead per call;
- update_program_status: upsert as create_update_lead does, then set the program status, one
  call per program and status for up to 300 leads (a lead changed twice in one batch goes in a
  later call, so its changes land in order). Marketo moves members forward only: a lead already
  in the status or past it is delivered with `lead_result` `not_changed` and Marketo's reason,
  not failed.

Nothing here raises for a Marketo or record-level problem: each request gets an outcome saying
delivered, failed (data or technical) or parked (quota, throttling that outlasted the client's
patience, or the connection's circuit breaker open: `stream.marketo.breaker_edge`). Auth and
throttling are handled inside the client.

Completing calls (a campaign request, a form submit: the call after which a request is delivered)
are reported to the caller's `CallHooks` as they happen: as the call goes out, after any wait
for Marketo's rate window (`on_sending`), and once Marketo answered (`on_acknowledged` for the
requests it delivered, `on_refused` for those it answered without running). The deliver agent
records them in the delivered-keys log at once, so a worker killed mid-batch repeats at most the
calls that were in flight, not the whole batch.
Campaign calls of one batch go one at a time for the same reason (Marketo's rate limit of 100
calls per 20 s makes that cost little throughput); form submits, one lead each, go concurrently
within the client's in-flight limit. A request an earlier attempt left unanswered
(`CallHooks.sent_before`) is first looked up in Marketo's activity log, and not sent again when
Marketo ran it (`verify.py`). This module knows nothing of Kafka: the hooks are plain coroutines.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from config.models import Action
from stream.marketo.breaker_edge import CIRCUIT_OPEN
from stream.marketo.client import MarketoClient, UpsertAction
from stream.marketo.errors import (
    CallWithdrawn,
    FailureClass,
    MarketoError,
    MarketoFailure,
    withdrawn,
)
from stream.marketo.results import RecordResult
from stream.messages import (
    DeliveryRequest,
    FailureCategory,
    OutcomeRecord,
    OutcomeStatus,
    utcnow,
)
from stream.pipeline.completing import CallHooks, Completing, Result, not_run, verified_result
from stream.pipeline.route import latency_ms
from stream.pipeline.verify import form_filled

__all__ = [
    "CallHooks",
    "Result",
    "deliver_batch",
    "failure_result",
    "not_run",
    "outcome_for",
    "queued_outcome",
    "unreachable_outcomes",
]

TRIGGERED = "campaign_triggered"
"""`lead_result` of a trigger on an existing lead that was not updated (Force Update off)."""


def failure_result(failure: MarketoFailure, stage: str) -> Result:
    """The outcome of a classified Marketo failure at `stage` (upsert, campaign, form …)."""
    kind = failure.kind
    code = failure.code
    detail = f"{stage}: {failure.describe()}"
    rid = failure.request_id
    if code == CIRCUIT_OPEN:
        return Result(
            OutcomeStatus.PARKED,
            reason=f"{detail}; parked until the breaker lets a call through, nothing was sent",
            marketo_code=code,
            resume_at=failure.retry_at,
        )
    if kind is FailureClass.QUOTA:
        return Result(
            OutcomeStatus.PARKED,
            reason=f"{detail}; parked until the daily quota resets",
            marketo_code=code,
            request_id=rid,
            resume_at=failure.retry_at,
        )
    if kind is FailureClass.THROTTLE:
        return Result(
            OutcomeStatus.PARKED,
            reason=f"{detail}; throttled longer than the client waits, parked",
            marketo_code=code,
            request_id=rid,
            resume_at=failure.retry_at,
        )
    if kind is FailureClass.DATA:
        return Result(
            OutcomeStatus.FAILED,
            FailureCategory.DATA,
            reason=detail,
            marketo_code=code,
            request_id=rid,
        )
    if kind in (FailureClass.SYSTEMIC, FailureClass.AUTH):
        return Result(
            OutcomeStatus.FAILED,
            FailureCategory.TECHNICAL,
            reason=f"configuration: {detail} (fix the connection or the flow, then resubmit)",
            marketo_code=code,
            request_id=rid,
        )
    return Result(
        OutcomeStatus.FAILED,
        FailureCategory.TECHNICAL,
        reason=detail,
        marketo_code=code,
        request_id=rid,
        retryable=True,
    )


def _data(reason: str) -> Result:
    return Result(OutcomeStatus.FAILED, FailureCategory.DATA, reason=reason)


def _config(reason: str) -> Result:
    return Result(
        OutcomeStatus.FAILED, FailureCategory.TECHNICAL, reason=f"configuration: {reason}"
    )


def outcome_for(request: DeliveryRequest, result: Result, now: datetime) -> OutcomeRecord:
    return OutcomeRecord(
        change_id=request.change_id,
        flow_id=request.flow_id,
        flow_name=request.flow_name,
        mode=request.mode,
        registration_code=request.registration_code,
        event_code=request.event_code,
        action=request.action,
        connection_id=request.connection_id,
        status=result.status,
        category=result.category,
        reason=result.reason,
        marketo_code=result.marketo_code,
        marketo_lead_id=result.lead_id,
        lead_result=result.lead_result,
        attempt=request.attempt,
        occurred_at=request.occurred_at,
        processed_at=now,
        latency_ms=latency_ms(request.occurred_at, request.received_at, now),
        campaign_id=request.campaign_id,
        form_id=request.form_id,
        redrive_kind=request.redrive_kind,
        replay_id=request.replay_id,
        retryable=result.retryable,
        resume_at=result.resume_at,
        request_id=result.request_id,
    )


def queued_outcome(request: DeliveryRequest) -> OutcomeRecord:
    """The ledger's record of `request` in flight: status `queued`, stamped with the routing time
    so the deliver step's outcome is always newer. No latency: nothing was delivered yet."""
    queued = outcome_for(request, Result(OutcomeStatus.QUEUED), request.routed_at)
    return queued.model_copy(update={"latency_ms": None})


def unreachable_outcomes(
    requests: Sequence[DeliveryRequest], reason: str, now: datetime | None = None
) -> list[OutcomeRecord]:
    """Outcomes for requests whose connection cannot be used (missing, no secret …)."""
    stamp = now or utcnow()
    return [outcome_for(r, _config(reason), stamp) for r in requests]


async def deliver_batch(
    requests: Sequence[DeliveryRequest],
    client: MarketoClient,
    *,
    force_update: bool = False,
    now: Callable[[], datetime] = utcnow,
    hooks: CallHooks | None = None,
) -> list[OutcomeRecord]:
    """Deliver `requests` (one connection) and return one outcome per request, in input order;
    `hooks` hear of each completing call as it happens."""
    by_action: dict[str, list[int]] = defaultdict(list)
    for index, request in enumerate(requests):
        by_action[request.action].append(index)
    results: dict[int, Result] = {}
    calls = Completing(requests, hooks or CallHooks(), results)
    jobs = []
    for action, indices in by_action.items():
        if action == Action.CREATE_UPDATE_LEAD:
            jobs.append(_create_update(requests, indices, client, calls))
        elif action == Action.TRIGGER_CAMPAIGN:
            jobs.append(_trigger(requests, indices, client, calls, force_update))
        elif action == Action.FORM_POST:
            jobs.append(_forms(requests, indices, client, calls))
        elif action == Action.UPDATE_PROGRAM_STATUS:
            jobs.append(_program_status(requests, indices, client, calls))
        else:
            for index in indices:
                results[index] = _config(f"unknown action {action!r}")
    await asyncio.gather(*jobs)
    stamp = now()
    return [
        outcome_for(request, results.get(index) or _lost(), stamp)
        for index, request in enumerate(requests)
    ]


def _lost() -> Result:
    return Result(
        OutcomeStatus.FAILED,
        FailureCategory.TECHNICAL,
        reason="no result for this request (internal error); retry",
        retryable=True,
    )


# ---- leads -------------------------------------------------------------------------------------


def _lookup_key(field_name: str, value: Any) -> str:
    text = str(value).strip()
    return text.lower() if field_name == "email" else text


def _rounds(requests: Sequence[DeliveryRequest], indices: Sequence[int]) -> list[list[int]]:
    """Split so no upsert call carries the same lead twice (Marketo refuses duplicate keys).

    The second change for a lead goes in a later call, so the lead ends with the newest values.
    """
    rounds: list[list[int]] = []
    seen: list[set[str]] = []
    for index in indices:
        request = requests[index]
        key = _lookup_key(request.lookup_field, request.payload.get(request.lookup_field, ""))
        for number, keys in enumerate(seen):
            if key not in keys:
                keys.add(key)
                rounds[number].append(index)
                break
        else:
            seen.append({key})
            rounds.append([index])
    return rounds


async def _upsert(
    requests: Sequence[DeliveryRequest],
    indices: Sequence[int],
    client: MarketoClient,
    action: UpsertAction,
) -> dict[int, RecordResult]:
    by_lookup: dict[str, list[int]] = defaultdict(list)
    for index in indices:
        by_lookup[requests[index].lookup_field].append(index)
    out: dict[int, RecordResult] = {}
    for lookup_field, group in by_lookup.items():
        for round_ in _rounds(requests, group):
            leads = [requests[i].payload for i in round_]
            results = await client.upsert_leads(leads, action=action, lookup_field=lookup_field)
            for index, result in zip(round_, results, strict=True):
                out[index] = result
    return out


async def _create_update(
    requests: Sequence[DeliveryRequest],
    indices: Sequence[int],
    client: MarketoClient,
    calls: Completing,
) -> None:
    synced = await _upsert(requests, indices, client, "createOrUpdate")
    ready: dict[int, tuple[int, str | None]] = {}
    _sort_synced(synced, "upsert", calls.results, ready)
    await _campaigns(requests, ready, client, calls)


def _sort_synced(
    synced: Mapping[int, RecordResult],
    stage: str,
    results: dict[int, Result],
    ready: dict[int, tuple[int, str | None]],
) -> None:
    """Upserted leads with an id are ready for their campaign; the rest have their outcome."""
    for index, record in synced.items():
        if record.failure is not None:
            results[index] = failure_result(record.failure, stage)
        elif record.lead_id is None:
            results[index] = Result(
                OutcomeStatus.FAILED,
                FailureCategory.TECHNICAL,
                reason=f"{stage}: Marketo answered without a lead id",
                request_id=record.request_id,
                retryable=True,
            )
        else:
            ready[index] = (record.lead_id, record.status)


async def _trigger(
    requests: Sequence[DeliveryRequest],
    indices: Sequence[int],
    client: MarketoClient,
    calls: Completing,
    force_update: bool,
) -> None:
    results = calls.results
    ready: dict[int, tuple[int, str | None]] = {}
    if force_update:
        synced = await _upsert(requests, indices, client, "createOrUpdate")
    else:
        existing = await _existing(requests, indices, client, results)
        missing = [i for i in indices if i not in results and i not in existing]
        for index, lead_id in existing.items():
            ready[index] = (lead_id, TRIGGERED)
        synced = await _upsert(requests, missing, client, "createOnly") if missing else {}
    _sort_synced(synced, "create lead", results, ready)
    await _campaigns(requests, ready, client, calls)


async def _existing(
    requests: Sequence[DeliveryRequest],
    indices: Sequence[int],
    client: MarketoClient,
    results: dict[int, Result],
) -> dict[int, int]:
    """Lead ids of requests whose lead already exists (newest lead when several match)."""
    by_lookup: dict[str, list[int]] = defaultdict(list)
    for index in indices:
        request = requests[index]
        refused = _unlookable(
            request.lookup_field, str(request.payload.get(request.lookup_field, "")).strip()
        )
        if refused is not None:
            results[index] = _data(refused)
            continue
        by_lookup[request.lookup_field].append(index)
    found: dict[int, int] = {}
    for lookup_field, group in by_lookup.items():
        values = list(dict.fromkeys(str(requests[i].payload[lookup_field]).strip() for i in group))
        try:
            leads = await client.get_leads(lookup_field, values, fields=["id", lookup_field])
        except MarketoError as error:
            for index in group:
                results[index] = failure_result(error.failure, "lead lookup")
            continue
        ids: dict[str, int] = {}
        for lead in leads:
            lead_id = lead.get("id")
            value = lead.get(lookup_field)
            if isinstance(lead_id, int) and value is not None:
                key = _lookup_key(lookup_field, value)
                ids[key] = max(lead_id, ids.get(key, lead_id))
        for index in group:
            key = _lookup_key(lookup_field, requests[index].payload[lookup_field])
            if key in ids:
                found[index] = ids[key]
    return found


MAX_LOOKUP_CHARS = 255
"""The longest value a lead lookup sends (Marketo's string fields, email among them, hold 255)."""


def _unlookable(field: str, value: str) -> str | None:
    """Why one request's lookup value cannot go in a lookup with others, or None. The values
    travel comma-joined in one query: a comma would make more values of one (past Marketo's 300
    per call), a megabyte would make the request too long, and either failed the whole group
    of other registrants' lookups, not retried."""
    if not value:
        return f"lookup field {field!r} is empty"
    if "," in value:
        return f"lookup field {field!r} holds a comma, which Marketo's lead lookup cannot take"
    if len(value) > MAX_LOOKUP_CHARS:
        return (
            f"lookup field {field!r} is {len(value):,} characters; Marketo takes at most "
            f"{MAX_LOOKUP_CHARS}"
        )
    return None


async def _campaigns(
    requests: Sequence[DeliveryRequest],
    ready: Mapping[int, tuple[int, str | None]],
    client: MarketoClient,
    calls: Completing,
) -> None:
    """Request each campaign for the leads that are ready: one call per campaign, tokens and
    100 leads, one call at a time, each between the hooks."""
    groups: dict[tuple[int, tuple[tuple[str, str], ...]], list[int]] = defaultdict(list)
    for index in ready:
        request = requests[index]
        if request.campaign_id is None:
            calls.results[index] = _data("no campaign id for this change (event question or flow)")
            continue
        tokens = tuple(sorted(request.tokens.items()))
        groups[(request.campaign_id, tokens)].append(index)
    size = max(1, client.settings.campaign_batch_size)
    for (campaign_id, tokens), group in groups.items():
        for start in range(0, len(group), size):
            async with calls.campaign_lock:
                chunk = await calls.unverified(
                    client, campaign_id, group[start : start + size], ready
                )
                if not chunk:
                    continue
                lead_ids = [ready[i][0] for i in chunk]
                answers = await client.request_campaign(
                    campaign_id,
                    lead_ids,
                    tokens=dict(tokens),
                    before_send=functools.partial(calls.sending, chunk),
                )
                done: list[tuple[int, Result, MarketoFailure | None]] = []
                for index, answer in zip(chunk, answers, strict=True):
                    lead_id, lead_result = ready[index]
                    if answer.failure is not None:
                        result = failure_result(answer.failure, f"campaign {campaign_id}")
                        result.lead_id = lead_id
                    else:
                        result = Result(
                            OutcomeStatus.DELIVERED,
                            lead_id=lead_id,
                            lead_result=lead_result,
                            request_id=answer.request_id,
                        )
                    done.append((index, result, answer.failure))
                await calls.answered(done)


# ---- forms -------------------------------------------------------------------------------------


async def _forms(
    requests: Sequence[DeliveryRequest],
    indices: Sequence[int],
    client: MarketoClient,
    calls: Completing,
) -> None:
    async def one(index: int) -> None:
        request = requests[index]
        if request.form_id is None:
            calls.results[index] = _data("no form for this form post")
            return
        at = calls.hooks.sent_before(request)
        email = str(request.payload.get("email") or "")
        if at is not None and email:
            lead_id = await form_filled(client, request.form_id, email, at)
            if lead_id is not None:
                await calls.answered([(index, verified_result(lead_id, "submitted"), None)])
                return
        answer = await client.submit_form(
            request.form_id,
            request.payload,
            program_id=request.program_id,
            before_send=functools.partial(calls.sending, [index]),
        )
        if answer.failure is not None:
            result = failure_result(answer.failure, f"form {request.form_id}")
        else:
            result = Result(
                OutcomeStatus.DELIVERED,
                lead_id=answer.lead_id,
                lead_result=answer.status or "form_posted",
                request_id=answer.request_id,
            )
        await calls.answered([(index, result, answer.failure)])

    await asyncio.gather(*(one(i) for i in indices))


# ---- program status ----------------------------------------------------------------------------

NOT_CHANGED = "not_changed"
"""`lead_result` of a program status Marketo left as it was (the lead is in it or past it)."""


def _lead_rounds(ready: Mapping[int, tuple[int, str | None]]) -> list[list[int]]:
    """Split so no round carries one lead twice; a lead's later change goes in a later round."""
    rounds: list[list[int]] = []
    seen: list[set[int]] = []
    for index in sorted(ready):
        lead_id = ready[index][0]
        for number, leads in enumerate(seen):
            if lead_id not in leads:
                leads.add(lead_id)
                rounds[number].append(index)
                break
        else:
            seen.append({lead_id})
            rounds.append([index])
    return rounds


async def _program_status(
    requests: Sequence[DeliveryRequest],
    indices: Sequence[int],
    client: MarketoClient,
    calls: Completing,
) -> None:
    """Upsert the leads, then set their program status: one call per (program, status) and
    300 leads, one completing call at a time, each between the hooks."""
    synced = await _upsert(requests, indices, client, "createOrUpdate")
    ready: dict[int, tuple[int, str | None]] = {}
    _sort_synced(synced, "upsert", calls.results, ready)
    size = max(1, client.settings.lead_batch_size)
    for round_ in _lead_rounds(ready):
        groups: dict[tuple[int, str], list[int]] = defaultdict(list)
        for index in round_:
            request = requests[index]
            if request.program_id is None or not request.program_status:
                calls.results[index] = _data("no program or program status for this change")
                continue
            groups[(request.program_id, request.program_status)].append(index)
        for group in groups.values():
            for start in range(0, len(group), size):
                await _program_call(requests, group[start : start + size], ready, client, calls)


async def _program_call(
    requests: Sequence[DeliveryRequest],
    chunk: list[int],
    ready: Mapping[int, tuple[int, str | None]],
    client: MarketoClient,
    calls: Completing,
) -> None:
    program_id = requests[chunk[0]].program_id
    status = requests[chunk[0]].program_status
    assert program_id is not None and status is not None
    stage = f"program {program_id}"
    async with calls.campaign_lock:
        try:
            await calls.sending(chunk)
        except CallWithdrawn as withdrawal:
            failure = withdrawn(withdrawal)
            result = failure_result(failure, f"{stage} status {status!r}")
            refusals = [(i, replace(result, lead_id=ready[i][0]), failure) for i in chunk]
            await calls.answered(refusals)
            return
        lead_ids = [ready[i][0] for i in chunk]
        answers = await client.set_program_status(program_id, status, lead_ids)
        done: list[tuple[int, Result, MarketoFailure | None]] = []
        for index, answer in zip(chunk, answers, strict=True):
            lead_id, lead_result = ready[index]
            if answer.failure is not None:
                result = failure_result(answer.failure, f"{stage} status {status!r}")
                result.lead_id = lead_id
            elif answer.status == NOT_CHANGED:
                result = Result(
                    OutcomeStatus.DELIVERED,
                    reason=f"{stage}: not changed to {status!r}: {answer.detail}",
                    lead_id=lead_id,
                    lead_result=NOT_CHANGED,
                    request_id=answer.request_id,
                )
            else:
                result = Result(
                    OutcomeStatus.DELIVERED,
                    reason=f"{stage}: status {status!r}",
                    lead_id=lead_id,
                    lead_result=lead_result,
                    request_id=answer.request_id,
                )
            done.append((index, result, answer.failure))
        await calls.answered(done)
