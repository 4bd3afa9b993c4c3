"""`deliver_batch` for update_program_status against a real Marketo sandbox: upsert then status,
one call per (program, status) and 300 leads, forward only (a backward move is delivered as
`not_changed` with Marketo's reason), a lead changed twice in one batch in order, failures
classified as for every other action, and the hooks around each completing call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from pydantic import SecretStr

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.settings import MarketoSettings
from stream.messages import DeliveryRequest, FailureCategory, OutcomeStatus
from stream.pipeline.deliver import CallHooks, deliver_batch
from tests.pipeline.pipeline_support import SECRET, lead, request

ACTION = "update_program_status"


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[MarketoClient]:
    settings = MarketoSettings(
        connection_id="mkto-prod",
        base_url=sandbox.url,
        client_id="sandbox-client",
        client_secret=SecretStr(SECRET),
        backoff_base_s=0.01,
        backoff_cap_s=0.02,
    )
    async with MarketoClient(settings) as made:
        yield made


def program_request(n: int, status: str, program_id: int = 1044) -> DeliveryRequest:
    made = request(ACTION, lead(n), campaign_id=None)
    return made.model_copy(update={"program_id": program_id, "program_status": status})


def member_status(sandbox: Sandbox, email: str, program_id: int = 1044) -> str | None:
    (lead_id,) = sandbox.state.find("email", email)
    member = sandbox.state.membership(program_id, lead_id)
    return None if member is None else str(member["statusName"])


async def test_registered_attended_then_a_late_registered(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    registered = await deliver_batch([program_request(n, "Registered") for n in range(3)], client)
    assert [o.status for o in registered] == [OutcomeStatus.DELIVERED] * 3
    assert [o.lead_result for o in registered] == ["created"] * 3
    assert registered[0].reason == "program 1044: status 'Registered'"
    attended = await deliver_batch([program_request(n, "Attended") for n in range(3)], client)
    assert [o.lead_result for o in attended] == ["updated"] * 3
    late = await deliver_batch([program_request(n, "Registered") for n in range(3)], client)
    assert [o.status for o in late] == [OutcomeStatus.DELIVERED] * 3
    assert [o.lead_result for o in late] == ["not_changed"] * 3
    assert late[0].reason is not None
    assert late[0].reason.startswith("program 1044: not changed to 'Registered': ")
    assert "current status 'Attended'" in late[0].reason
    assert not any(o.retryable for o in late)
    assert [member_status(sandbox, f"user{n}@example.com") for n in range(3)] == ["Attended"] * 3


async def test_one_call_per_program_and_status_for_up_to_300_leads(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    batch = [program_request(n, "Attended") for n in range(650)]
    batch += [program_request(n, "Registered", program_id=1045) for n in range(1000, 1010)]
    outcomes = await deliver_batch(batch, client)
    assert {o.status for o in outcomes} == {OutcomeStatus.DELIVERED}
    calls = sandbox.calls("programs.memberStatus")
    assert sorted((c.path, c.batchSize) for c in calls) == [
        ("/rest/v1/programs/1044/members/status.json", 50),
        ("/rest/v1/programs/1044/members/status.json", 300),
        ("/rest/v1/programs/1044/members/status.json", 300),
        ("/rest/v1/programs/1045/members/status.json", 10),
    ]
    assert len(sandbox.state.members[1044]) == 650 and len(sandbox.state.members[1045]) == 10


async def test_a_lead_changed_twice_in_one_batch_lands_in_order(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    batch = [program_request(1, "Registered"), program_request(2, "Registered")]
    batch += [program_request(1, "Attended")]
    outcomes = await deliver_batch(batch, client)
    assert [o.lead_result for o in outcomes] == ["created", "created", "updated"]
    assert member_status(sandbox, "user1@example.com") == "Attended"
    changes = [(c["from"], c["to"]) for c in sandbox.state.status_changes if c["leadId"] == 1]
    assert changes == [(None, "Registered"), ("Registered", "Attended")]


async def test_unknown_status_is_a_configuration_failure_and_the_lead_still_exists(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    (outcome,) = await deliver_batch([program_request(1, "Checked In")], client)
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.category is FailureCategory.TECHNICAL
    assert outcome.marketo_code == "1025"
    assert outcome.reason is not None and outcome.reason.startswith("configuration: program 1044")
    assert outcome.marketo_lead_id in sandbox.state.leads
    assert 1044 not in sandbox.state.members


async def test_unknown_program_and_bad_email(sandbox: Sandbox, client: MarketoClient) -> None:
    batch = [program_request(1, "Registered", program_id=4242)]
    batch += [request(ACTION, lead(2, email="not-an-email"), campaign_id=None)]
    batch[1] = batch[1].model_copy(update={"program_id": 1044, "program_status": "Registered"})
    missing, bad = await deliver_batch(batch, client)
    assert missing.marketo_code == "1013" and missing.category is FailureCategory.TECHNICAL
    assert bad.category is FailureCategory.DATA and bad.marketo_code == "1003"
    assert not sandbox.calls("programs.memberStatus")[1:]


async def test_a_request_without_a_program_status_is_a_data_failure(
    client: MarketoClient,
) -> None:
    (outcome,) = await deliver_batch([request(ACTION, lead(1), campaign_id=None)], client)
    assert outcome.status is OutcomeStatus.FAILED and outcome.category is FailureCategory.DATA
    assert outcome.reason == "no program or program status for this change"


async def test_quota_parks_and_server_errors_are_retryable(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    sandbox.inject_http_status(503, count=10, endpoint="programs.memberStatus")
    (failed,) = await deliver_batch([program_request(1, "Registered")], client)
    assert failed.status is OutcomeStatus.FAILED and failed.retryable
    sandbox.clear_faults()
    sandbox.exhaust_quota()
    (parked,) = await deliver_batch([program_request(2, "Registered")], client)
    assert parked.status is OutcomeStatus.PARKED and parked.resume_at is not None


async def test_each_program_call_is_between_the_hooks(
    sandbox: Sandbox, client: MarketoClient
) -> None:
    events: list[tuple[str, int, int]] = []

    def hook(name: str) -> Callable[[Sequence[DeliveryRequest]], Awaitable[None]]:
        async def record(requests: Sequence[DeliveryRequest]) -> None:
            events.append((name, len(requests), len(sandbox.calls("programs.memberStatus"))))

        return record

    batch = [program_request(n, "Registered") for n in range(350)]
    hooks = CallHooks(hook("sending"), hook("acknowledged"), hook("refused"))
    await deliver_batch(batch, client, hooks=hooks)
    assert events == [
        ("sending", 300, 0),
        ("acknowledged", 300, 1),
        ("sending", 50, 1),
        ("acknowledged", 50, 2),
    ]
