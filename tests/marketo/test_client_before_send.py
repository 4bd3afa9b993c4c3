"""`before_send`: awaited once, as a call is about to go out — after it waited for the rate
window, not when the call never leaves (stream/marketo/transport.py). The deliver step writes its
"sending" marks there, so a worker killed while a call waits for a slot leaves no call that looks
as if Marketo might have run it."""

from __future__ import annotations

import time

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.errors import WITHDRAWN, CallWithdrawn
from tests.support.marketo import settings_for


def campaign_calls(sandbox: Sandbox) -> int:
    return len(sandbox.calls("campaigns.trigger"))


async def test_runs_once_right_before_the_call_even_across_a_retry(sandbox: Sandbox) -> None:
    lead_id = sandbox.add_lead(email="before@example.com")
    seen: list[int] = []

    async def mark() -> None:
        seen.append(campaign_calls(sandbox))

    sandbox.inject_error("611", endpoint="campaigns.trigger")  # the first attempt fails
    async with MarketoClient(settings_for(sandbox, max_attempts=2)) as client:
        [result] = await client.request_campaign(1001, [lead_id], before_send=mark)
    assert result.failure is None
    assert seen == [0]  # once, before any attempt reached the sandbox
    assert campaign_calls(sandbox) == 2


async def test_waits_for_the_rate_window_before_it_runs(sandbox: Sandbox) -> None:
    lead_id = sandbox.add_lead(email="window@example.com")
    marked_at: list[float] = []

    async def mark() -> None:
        marked_at.append(time.monotonic())

    settings = settings_for(sandbox, rate_limit_calls=1, rate_window_s=0.5)
    async with MarketoClient(settings) as client:
        await client.request_campaign(1001, [lead_id])
        first_done = time.monotonic()
        await client.request_campaign(1001, [lead_id], before_send=mark)
    # The second call had to wait for the first one's window: its mark came after that wait.
    assert marked_at and marked_at[0] - first_done >= 0.45


async def test_not_run_when_the_call_never_leaves(sandbox: Sandbox) -> None:
    lead_id = sandbox.add_lead(email="never@example.com")
    seen: list[str] = []

    async def mark() -> None:
        seen.append("marked")

    async with MarketoClient(settings_for(sandbox)) as client:
        sandbox.exhaust_quota()
        [first] = await client.request_campaign(1001, [lead_id])  # 607: the client parks
        assert first.failure is not None and first.failure.code == "607"
        [parked] = await client.request_campaign(1001, [lead_id], before_send=mark)
        answer = await client.submit_form(1234, {"email": "never@example.com"}, before_send=mark)
    assert parked.failure is not None and parked.failure.source == "local"
    assert answer.failure is not None and answer.failure.source == "local"
    assert seen == []


async def test_a_call_that_may_have_run_is_not_sent_again_in_place(sandbox: Sandbox) -> None:
    """A 5xx or a dropped connection leaves open whether Marketo ran the campaign: a call given
    `before_send` (one that must not run twice) comes back failed after one attempt, for its
    retry to look in the activity log first; a call without it is retried in place."""
    lead_id = sandbox.add_lead(email="twice@example.com")
    marks: list[str] = []

    async def mark() -> None:
        marks.append("sending")

    async with MarketoClient(settings_for(sandbox, max_attempts=3)) as client:
        sandbox.inject_http_status(503, count=1, endpoint="campaigns.trigger")
        [marked] = await client.request_campaign(1001, [lead_id], before_send=mark)
        assert marked.failure is not None and marked.failure.http_status == 503
        assert marked.failure.retry_at is None  # technical: the retry queue decides when
        assert campaign_calls(sandbox) == 1 and marks == ["sending"]

        sandbox.inject_http_status(503, count=1, endpoint="leads.submitForm")
        form = await client.submit_form(1234, {"email": "twice@example.com"}, before_send=mark)
        assert form.failure is not None and form.failure.http_status == 503
        assert len(sandbox.calls("leads.submitForm")) == 1

        # Answered by Marketo (611, an error envelope): it did not run, so it goes again.
        sandbox.inject_error("611", endpoint="campaigns.trigger")
        [answered] = await client.request_campaign(1001, [lead_id], before_send=mark)
        assert answered.failure is None and campaign_calls(sandbox) == 3

        # Without `before_send` nothing is at stake in sending twice: retried in place.
        sandbox.inject_http_status(503, count=1, endpoint="campaigns.trigger")
        [plain] = await client.request_campaign(1001, [lead_id])
        assert plain.failure is None and campaign_calls(sandbox) == 5


async def test_a_withdrawn_call_is_not_sent(sandbox: Sandbox) -> None:
    """`before_send` raising `CallWithdrawn`: nothing reaches Marketo, the call comes back as a
    local `withdrawn` failure (not run, so never retried in place) and the next call goes."""
    lead_id = sandbox.add_lead(email="withdrawn@example.com")

    async def withdraw() -> None:
        raise CallWithdrawn("another worker owns these requests now")

    async with MarketoClient(settings_for(sandbox, max_attempts=3)) as client:
        [result] = await client.request_campaign(1001, [lead_id], before_send=withdraw)
        form = await client.submit_form(1234, {"email": "w@example.com"}, before_send=withdraw)
        [after] = await client.request_campaign(1001, [lead_id])
    for failure in (result.failure, form.failure):
        assert failure is not None
        assert (failure.code, failure.source) == (WITHDRAWN, "local")
        assert "another worker owns these requests now" in failure.message
    assert len(sandbox.calls("leads.submitForm")) == 0
    assert after.failure is None and campaign_calls(sandbox) == 1
