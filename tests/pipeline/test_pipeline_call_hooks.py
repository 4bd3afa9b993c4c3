"""`deliver_batch`'s hooks around each completing Marketo call, against a real sandbox: "sending"
before the call, acknowledged (or refused) right after it, one campaign call at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from pydantic import SecretStr

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.errors import FailureClass, MarketoFailure
from stream.marketo.settings import MarketoSettings
from stream.messages import DeliveryRequest, OutcomeStatus
from stream.pipeline.deliver import CallHooks, deliver_batch, not_run
from tests.pipeline.pipeline_support import SECRET, lead, request

Event = tuple[str, list[str], int]
"""(hook, change ids, campaign calls the sandbox had answered when the hook ran)."""


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[MarketoClient]:
    settings = MarketoSettings(
        connection_id="mkto-prod",
        base_url=sandbox.url,
        client_id="sandbox-client",
        client_secret=SecretStr(SECRET),
        backoff_base_s=0.01,
        backoff_cap_s=0.02,
        max_attempts=1,
    )
    async with MarketoClient(settings) as made:
        yield made


def recording(sandbox: Sandbox, events: list[Event]) -> CallHooks:
    def hook(name: str) -> Callable[[Sequence[DeliveryRequest]], Awaitable[None]]:
        async def record(requests: Sequence[DeliveryRequest]) -> None:
            runs = len(sandbox.state.campaign_runs)
            events.append((name, [r.change_id for r in requests], runs))

        return record

    return CallHooks(hook("sending"), hook("acknowledged"), hook("refused"))


async def test_each_campaign_call_is_acknowledged_before_the_next_starts(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    events: list[Event] = []
    batch = [request("create_update_lead", lead(n)) for n in range(250)]
    batch += [request("trigger_campaign", lead(n), campaign_id=1002) for n in range(300, 340)]
    outcomes = await deliver_batch(
        batch, client, force_update=True, hooks=recording(sandbox, events)
    )
    assert {o.status for o in outcomes} == {OutcomeStatus.DELIVERED}
    # Four campaign calls (100 + 100 + 50 leads of campaign 1001, 40 of 1002), one at a time:
    # each is announced while the previous ones are answered, and acknowledged right after.
    assert [name for name, _, _ in events] == ["sending", "acknowledged"] * 4
    for call in range(4):
        (_, sent, runs_before), (_, acked, runs_after) = events[2 * call : 2 * call + 2]
        assert runs_before == call and runs_after == call + 1
        assert sent == acked
        (run,) = [r for r in sandbox.state.campaign_runs[call : call + 1]]
        assert len(run["leadIds"]) == len(sent)
    assert sorted(len(ids) for _, ids, _ in events[::2]) == [40, 50, 100, 100]
    every = [change for name, ids, _ in events if name == "acknowledged" for change in ids]
    assert sorted(every) == sorted(r.change_id for r in batch)


async def test_forms_are_marked_and_acknowledged_one_by_one(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    events: list[Event] = []
    batch = [request("form_post", lead(n), campaign_id=None, form_id=1234) for n in range(3)]
    outcomes = await deliver_batch(batch, client, hooks=recording(sandbox, events))
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * 3
    for r in batch:
        mine = [name for name, ids, _ in events if ids == [r.change_id]]
        assert mine == ["sending", "acknowledged"]


async def test_refused_calls_clear_their_mark_and_unclear_ones_keep_it(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    # Marketo answers "campaign cannot be requested" (1003): the call did not run.
    events: list[Event] = []
    refused = request("trigger_campaign", lead(1), campaign_id=2001)
    (outcome,) = await deliver_batch(
        [refused], client, force_update=True, hooks=recording(sandbox, events)
    )
    assert outcome.status is OutcomeStatus.FAILED
    assert [name for name, _, _ in events] == ["sending", "refused"]

    # An HTTP 503 on the campaign call leaves it open whether Marketo ran it: no answer hook.
    events.clear()
    sandbox.inject_http_status(503, count=5, endpoint="campaigns.trigger")
    (outcome,) = await deliver_batch(
        [request("create_update_lead", lead(2))], client, hooks=recording(sandbox, events)
    )
    assert outcome.status is OutcomeStatus.FAILED and outcome.retryable
    assert "503" in (outcome.reason or "")
    assert [name for name, _, _ in events] == ["sending"]


def test_not_run_tells_answered_failures_from_unclear_ones() -> None:
    def failure(source: str, status: int | None = None) -> MarketoFailure:
        return MarketoFailure(
            FailureClass.TECHNICAL,
            "x",
            "m",
            source=source,  # type: ignore[arg-type]
            http_status=status,
        )

    assert not_run(failure("marketo")) and not_run(failure("record"))
    assert not_run(failure("local")) and not_run(failure("identity"))
    assert not_run(failure("http", 404))
    assert not not_run(failure("http", 503)) and not not_run(failure("http", 408))
    assert not not_run(failure("transport"))
