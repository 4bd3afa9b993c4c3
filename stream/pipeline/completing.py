"""The completing Marketo calls of a deliver batch: the hooks around each, the results after.

A completing call is the one after which a request is delivered (a campaign request, a form
submit, a program status change). The deliver step (`deliver.py`) tells its caller's `CallHooks`
before each goes out and once Marketo answered, so the delivered-keys log knows at once what was
delivered; a request an earlier attempt left unanswered (`CallHooks.sent_before`) is looked up in
Marketo's activity log first and recorded delivered, not sent again, when Marketo ran it
(`verify.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stream.marketo.client import MarketoClient
from stream.marketo.errors import WITHDRAWN, MarketoFailure, not_run
from stream.messages import DeliveryRequest, FailureCategory, OutcomeStatus
from stream.pipeline.verify import VERIFIED, VERIFIED_REASON, campaign_requested

__all__ = ["CallHooks", "Completing", "Notify", "Result", "not_run", "verified_result"]


@dataclass
class Result:
    """What became of one request, before it is stamped into an `OutcomeRecord`."""

    status: OutcomeStatus
    category: FailureCategory | None = None
    reason: str | None = None
    marketo_code: str | None = None
    lead_id: int | None = None
    lead_result: str | None = None
    request_id: str | None = None
    retryable: bool = False
    resume_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Notify = Callable[[Sequence[DeliveryRequest]], Awaitable[None]]


async def _nothing(requests: Sequence[DeliveryRequest]) -> None:
    return None


def _never(request: DeliveryRequest) -> datetime | None:
    return None


@dataclass(frozen=True)
class CallHooks:
    """Coroutines awaited around each completing Marketo call (see the module docstring).

    `on_sending(requests)` runs as a campaign or form call is about to go out, once it holds its
    rate slot (`Transport.call`'s `before_send`; a call parked or refused before it leaves is
    never marked), before the other completing calls; `on_acknowledged(requests)` once Marketo
    answered, with the requests that call delivered, `on_refused(requests)` with those it answered
    without running them (`not_run`); requests whose answer leaves it open (a timeout, a 5xx)
    get neither, nor do those of a call withdrawn before it went out. `on_sending` raising
    `CallWithdrawn` withdraws the call: nothing is sent and its requests fail with a local
    `withdrawn` failure. Any other exception from a hook fails the batch like an internal error.
    """

    on_sending: Notify = _nothing
    on_acknowledged: Notify = _nothing
    on_refused: Notify = _nothing
    sent_before: Callable[[DeliveryRequest], datetime | None] = _never
    """When an earlier attempt's unanswered call for the request started (it may have run: the
    request is verified before it goes again), None when there was none."""


class Completing:
    """Runs the completing calls of one batch: the hooks around each, the results after.

    `campaign_lock` lets one campaign call of the batch be in flight at a time, whichever action
    it serves."""

    def __init__(
        self, requests: Sequence[DeliveryRequest], hooks: CallHooks, results: dict[int, Result]
    ) -> None:
        self.requests = requests
        self.hooks = hooks
        self.results = results
        self.campaign_lock = asyncio.Lock()

    async def sending(self, indices: Sequence[int]) -> None:
        await self.hooks.on_sending([self.requests[i] for i in indices])

    async def answered(self, answers: Sequence[tuple[int, Result, MarketoFailure | None]]) -> None:
        """Results of one call: (request index, result, the call's failure for that request)."""
        delivered: list[DeliveryRequest] = []
        refused: list[DeliveryRequest] = []
        for index, result, failure in answers:
            self.results[index] = result
            if result.status is OutcomeStatus.DELIVERED:
                delivered.append(self.requests[index])
            elif failure is not None and failure.code != WITHDRAWN and not_run(failure):
                # (a withdrawn call was never marked: its pair's mark, if any, is another's)
                refused.append(self.requests[index])
        if delivered:
            await self.hooks.on_acknowledged(delivered)
        if refused:
            await self.hooks.on_refused(refused)

    async def unverified(
        self,
        client: MarketoClient,
        campaign_id: int,
        chunk: Sequence[int],
        ready: Mapping[int, tuple[int, str | None]],
    ) -> list[int]:
        """`chunk` less its ambiguous requests whose campaign Marketo's activities show
        requested since their unanswered call; those are answered delivered (`verify.py`)."""
        since: dict[int, datetime] = {}
        ambiguous: list[int] = []
        for index in chunk:
            at = self.hooks.sent_before(self.requests[index])
            if at is not None:
                lead_id = ready[index][0]
                since[lead_id] = min(at, since.get(lead_id, at))
                ambiguous.append(index)
        if not ambiguous:
            return list(chunk)
        requested = await campaign_requested(client, campaign_id, since) or set()
        verified = [i for i in ambiguous if ready[i][0] in requested]
        if verified:
            await self.answered(
                [(i, verified_result(ready[i][0], "requested"), None) for i in verified]
            )
        return [i for i in chunk if i not in verified]


def verified_result(lead_id: int, what: str) -> Result:
    reason = VERIFIED_REASON.format(what=what)
    return Result(OutcomeStatus.DELIVERED, reason=reason, lead_id=lead_id, lead_result=VERIFIED)
