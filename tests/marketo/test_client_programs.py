"""The client's program calls against the sandbox over real HTTP: status changes in batches of
300, forward only (a backward move is `not_changed`, not a failure), request-level errors
classified as every other call's, throttling retried, and the program and channel lists."""

from __future__ import annotations

from simulators.marketo.sandbox import Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.errors import FailureClass
from tests.support.fixtures import MakeSandbox
from tests.support.marketo import settings_for


def leads(sandbox: Sandbox, n: int) -> list[int]:
    return [sandbox.add_lead(email=f"pc{i}@example.com") for i in range(n)]


async def test_status_moves_forward_and_a_backward_move_is_not_changed(sandbox: Sandbox) -> None:
    ids = leads(sandbox, 3)
    async with MarketoClient(settings_for(sandbox)) as client:
        first = await client.set_program_status(1044, "Registered", ids)
        assert [(r.status, r.lead_id, r.ok) for r in first] == [("created", i, True) for i in ids]
        moved = await client.set_program_status(1044, "Attended", ids[:2])
        assert [r.status for r in moved] == ["updated", "updated"]
        back = await client.set_program_status(1044, "Registered", ids)
    assert [r.status for r in back] == ["not_changed"] * 3
    assert all(r.ok and r.request_id for r in back)
    assert back[0].detail is not None and "'Attended'" in back[0].detail
    members = sandbox.state.members[1044]
    assert [members[i]["statusName"] for i in ids] == ["Attended", "Attended", "Registered"]


async def test_batches_of_300_in_input_order(sandbox: Sandbox) -> None:
    ids = leads(sandbox, 650)
    async with MarketoClient(settings_for(sandbox)) as client:
        results = await client.set_program_status(1044, "Registered", ids)
    assert [r.index for r in results] == list(range(650))
    assert [r.lead_id for r in results] == ids
    assert sorted(c.batchSize or 0 for c in sandbox.calls("programs.memberStatus")) == [
        50,
        300,
        300,
    ]


async def test_unknown_program_and_status_fail_every_lead_as_configuration(
    sandbox: Sandbox,
) -> None:
    ids = leads(sandbox, 2)
    async with MarketoClient(settings_for(sandbox)) as client:
        no_program = await client.set_program_status(4242, "Registered", ids)
        no_status = await client.set_program_status(1044, "Checked In", ids)
    for results, code in ((no_program, "1013"), (no_status, "1025")):
        assert [r.lead_id for r in results] == ids
        assert all(r.failure_class is FailureClass.SYSTEMIC for r in results)
        assert {r.failure.code for r in results if r.failure} == {code}
    assert 1044 not in sandbox.state.members


async def test_unknown_lead_is_a_data_failure_for_that_lead_only(sandbox: Sandbox) -> None:
    ids = leads(sandbox, 1)
    async with MarketoClient(settings_for(sandbox)) as client:
        results = await client.set_program_status(1044, "Registered", [ids[0], 987_654])
    assert results[0].status == "created" and results[0].ok
    assert results[1].failure_class is FailureClass.DATA
    assert results[1].failure is not None and results[1].failure.code == "1004"


async def test_throttled_call_is_retried_then_lands(sandbox: Sandbox) -> None:
    ids = leads(sandbox, 1)
    sandbox.inject_error("606", count=1, endpoint="programs.memberStatus")
    async with MarketoClient(settings_for(sandbox, rate_window_s=0.2)) as client:
        results = await client.set_program_status(1044, "Registered", ids)
    assert results[0].status == "created"
    calls = sandbox.calls("programs.memberStatus")
    assert [c.code for c in calls] == ["606", None]


async def test_server_errors_past_the_retries_are_technical(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    ids = leads(sandbox, 1)
    sandbox.inject_http_status(503, count=20, endpoint="programs.memberStatus")
    async with MarketoClient(settings_for(sandbox)) as client:
        results = await client.set_program_status(1044, "Registered", ids)
    assert results[0].failure_class is FailureClass.TECHNICAL
    assert 1044 not in sandbox.state.members


async def test_quota_spent_is_a_quota_failure_and_no_member_moves(sandbox: Sandbox) -> None:
    ids = leads(sandbox, 1)
    sandbox.exhaust_quota()
    async with MarketoClient(settings_for(sandbox)) as client:
        results = await client.set_program_status(1044, "Registered", ids)
        assert client.quota_parked_until is not None
    assert results[0].failure_class is FailureClass.QUOTA
    assert 1044 not in sandbox.state.members


async def test_program_and_channel_lists_and_a_programs_statuses(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        programs = await client.list_programs()
        channels = await client.list_channels()
        statuses = await client.program_statuses(1044)
        none = await client.program_statuses(4242)
    assert [p.id for p in programs] == [1044, 1045, 1046]
    assert programs[0].channel == "Webinar"
    assert {c.name for c in channels} == {"Webinar", "Live Event", "Content"}
    assert [s.name for s in statuses][:3] == ["Not in Program", "Invited", "Registered"]
    assert next(s for s in statuses if s.name == "Attended").success is True
    assert none == []
