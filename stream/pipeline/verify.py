"""Verification of ambiguous deliveries: ask Marketo whether a call whose answer was lost ran.

A (change, flow) is ambiguous when an earlier attempt marked it "sending" and recorded no answer:
the worker was killed while Marketo had the call, or the call timed out. Upserts and program
status changes are idempotent and simply go again. A campaign request and a form submit are not
(Marketo has no idempotency key; a second request runs the campaign again), so before sending one
again the deliver step reads Marketo's activity log (`stream/marketo/activities.py`) for the
leads concerned since the unanswered call started: a lead with a Request Campaign activity for
that campaign (a Fill Out Form activity for that form) is recorded delivered, not sent again.

When the log cannot answer (an error, a timeout, the daily quota, more pages than allowed) the
request goes again as before, at least once, and is counted as a possible repeat. Nothing here
runs for a request that is not ambiguous: the normal path makes no extra call.

Limits: an activity of the same lead for the same campaign (form) logged after the unanswered
call started is taken for that call's, so a second change requesting it meanwhile for the same
lead hides a lost first one (the lead got the campaign, once). Activity dates are Marketo's
clock, compared with the worker's less `CLOCK_SKEW`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from stream.marketo.activities import FILL_OUT_FORM, REQUEST_CAMPAIGN, ActivityError
from stream.marketo.client import MarketoClient
from stream.marketo.errors import MarketoError
from stream.messages import VERIFIED_IN_MARKETO

__all__ = [
    "CLOCK_SKEW",
    "VERIFIED",
    "VERIFIED_REASON",
    "VERIFY_TIMEOUT_S",
    "campaign_requested",
    "form_filled",
]

log = logging.getLogger("signal.pipeline.verify")

VERIFIED = VERIFIED_IN_MARKETO
"""`lead_result` of a delivery recorded from Marketo's activity log instead of sent again."""
VERIFIED_REASON = (
    "already {what} before the crash or timeout that lost Marketo's answer "
    "(verified in Marketo activities); not sent again"
)
CLOCK_SKEW = timedelta(seconds=10)
"""Taken off the time the unanswered call started: Marketo's clock may be behind the worker's,
and activity dates are whole seconds."""
VERIFY_TIMEOUT_S = 60.0
"""A verification that takes longer gives up and the request is sent as before."""


T = TypeVar("T")


async def _bounded(what: str, work: Awaitable[T]) -> T | None:
    try:
        async with asyncio.timeout(VERIFY_TIMEOUT_S):
            return await work
    except (MarketoError, ActivityError, TimeoutError) as error:
        log.warning("could not verify %s in Marketo's activities, sending again: %s", what, error)
        return None


async def campaign_requested(
    client: MarketoClient, campaign_id: int, since: Mapping[int, datetime]
) -> set[int] | None:
    """The leads of `since` (lead id -> when its unanswered call started) Marketo logged a
    Request Campaign activity for, for `campaign_id`, at or after that time; None when the log
    could not be read (send again)."""
    if not since:
        return set()
    start = min(since.values()) - CLOCK_SKEW
    what = f"campaign {campaign_id} for {len(since)} leads"
    found = await _bounded(
        what, client.activity_log.activities(REQUEST_CAMPAIGN, list(since), start)
    )
    if found is None:
        return None
    return {
        a.lead_id
        for a in found
        if a.primary_id == campaign_id
        and a.lead_id in since
        and a.at >= since[a.lead_id] - CLOCK_SKEW
    }


async def form_filled(
    client: MarketoClient, form_id: int, email: str, since: datetime
) -> int | None:
    """The lead Marketo logged a Fill Out Form activity for, for `form_id`, at or after `since`,
    among the leads with `email`; None when there is none or the log could not be read."""
    what = f"form {form_id}"

    async def look() -> int | None:
        leads = await client.get_leads("email", [email], fields=["id"])
        ids = [lead["id"] for lead in leads if isinstance(lead.get("id"), int)]
        if not ids:
            return None  # the submit creates the lead: no lead, no submit
        start = since - CLOCK_SKEW
        found = await client.activity_log.activities(FILL_OUT_FORM, ids, start)
        return next((a.lead_id for a in found if a.primary_id == form_id and a.at >= start), None)

    return await _bounded(what, look())
