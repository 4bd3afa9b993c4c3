"""Each failure class, driven by the sandbox's fault injection over real HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulators.marketo.sandbox import ManualClock, Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.errors import FailureClass, MarketoError
from stream.marketo.results import CallRecord
from stream.marketo.settings import MarketoSettings
from tests.support.fixtures import MakeSandbox
from tests.support.marketo import lead
from tests.support.marketo import settings_for as default_settings

X, T, Q, S, D = (
    FailureClass.TECHNICAL,
    FailureClass.THROTTLE,
    FailureClass.QUOTA,
    FailureClass.SYSTEMIC,
    FailureClass.DATA,
)


def settings_for(sb: Sandbox, **overrides: Any) -> MarketoSettings:
    """The shared settings with a short rate window (the throttle tests wait it out)."""
    return default_settings(sb, **{"rate_window_s": 0.2, **overrides})


def sync_codes(sb: Sandbox) -> list[str | None]:
    return [c.code for c in sb.calls("leads.sync")]


# ---- throttle: waited out inside the client, never a failure --------------------------------


@pytest.mark.parametrize("code", ["606", "615"])
async def test_throttle_is_waited_out_and_the_call_succeeds(sandbox: Sandbox, code: str) -> None:
    records: list[CallRecord] = []
    sandbox.inject_error(code, count=2, endpoint="leads.sync")
    async with MarketoClient(settings_for(sandbox), on_call=records.append) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.ok
    assert result.status == "created"
    assert sync_codes(sandbox) == [code, code, None]
    throttled = [r for r in records if r.marketo_error == code]
    assert [r.failure_class for r in throttled] == [T, T]


async def test_606_holds_back_calls_for_the_window(sandbox: Sandbox) -> None:
    sandbox.inject_error("606", count=1, endpoint="leads.sync")
    async with MarketoClient(settings_for(sandbox, rate_window_s=0.5)) as client:
        start = time.monotonic()
        [result] = await client.upsert_leads([lead(1)])
        waited = time.monotonic() - start
    assert result.ok
    assert waited >= 0.5


async def test_http_429_honours_retry_after_and_succeeds(sandbox: Sandbox) -> None:
    sandbox.inject_http_status(429, count=1, endpoint="leads.sync")
    async with MarketoClient(settings_for(sandbox)) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.ok
    assert [c.httpStatus for c in sandbox.calls("leads.sync")] == [429, 200]


async def test_throttle_beyond_patience_is_reported_as_throttle(sandbox: Sandbox) -> None:
    sandbox.inject_error("606", count=50, endpoint="leads.sync")
    settings = settings_for(sandbox, rate_window_s=0.1, max_throttle_wait_s=0.35)
    async with MarketoClient(settings) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.failure is not None
    assert result.failure.kind is T
    assert result.failure.code == "606"
    assert result.failure.retry_at is not None
    assert len(sandbox.calls("leads.sync")) == 4  # the first call and three waits of 0.1 s


# ---- quota: parked until midnight US Central, no calls meanwhile ----------------------------


async def test_607_parks_calls_until_midnight_chicago(make_sandbox: MakeSandbox) -> None:
    start = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)  # noon in Chicago
    sb_clock = ManualClock(start.timestamp())
    sb = await make_sandbox(clock=sb_clock)
    now = [start]
    records: list[CallRecord] = []
    client = MarketoClient(settings_for(sb), on_call=records.append, now=lambda: now[0])
    async with client:
        await client.upsert_leads([lead(1)])
        sb.exhaust_quota()
        [result] = await client.upsert_leads([lead(2)])
        reset = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
        assert result.failure is not None
        assert result.failure.kind is Q
        assert result.failure.code == "607"
        assert result.failure.retry_at == reset
        assert client.quota_parked_until == reset

        # Parked: nothing reaches Marketo, reads fail the same way, no retries spent.
        sent = len(sb.calls())
        [parked] = await client.upsert_leads([lead(3)])
        with pytest.raises(MarketoError) as raised:
            await client.get_leads("email", ["person1@example.com"])
        assert len(sb.calls()) == sent
        assert len(records) == sent
        assert parked.failure is not None and parked.failure.kind is Q
        assert parked.failure.retry_at == reset
        assert raised.value.kind is Q

        # After midnight in Chicago both sides have moved on.
        now[0] = reset + timedelta(seconds=1)
        sb_clock.set(now[0].timestamp())
        assert client.quota_parked_until is None
        [after] = await client.upsert_leads([lead(4)])
    assert after.ok


# ---- technical: retried a few times, then reported ------------------------------------------


@pytest.mark.parametrize("code", ["611", "604", "608", "713", "502"])
async def test_transient_code_is_retried_and_succeeds(sandbox: Sandbox, code: str) -> None:
    records: list[CallRecord] = []
    sandbox.inject_error(code, count=2, endpoint="leads.sync")
    async with MarketoClient(settings_for(sandbox), on_call=records.append) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.ok
    assert sync_codes(sandbox) == [code, code, None]
    assert [r.attempt for r in records if r.endpoint == "/rest/v1/leads.json"] == [1, 2, 3]


async def test_transient_code_that_persists_fails_technical_after_max_attempts(
    sandbox: Sandbox,
) -> None:
    sandbox.inject_error("611", count=10, message="System error", endpoint="leads.sync")
    async with MarketoClient(settings_for(sandbox, max_attempts=3)) as client:
        results = await client.upsert_leads([lead(1), lead(2)])
    assert len(sandbox.calls("leads.sync")) == 3
    for r in results:
        assert r.failure is not None
        assert (r.failure.kind, r.failure.code, r.failure.message) == (X, "611", "System error")
        assert r.failure.request_id is not None
        assert r.status is None


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_http_5xx_is_technical(sandbox: Sandbox, status: int) -> None:
    sandbox.inject_http_status(status, count=10, endpoint="leads.sync")
    async with MarketoClient(settings_for(sandbox, max_attempts=2)) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.failure is not None
    assert result.failure.kind is X
    assert result.failure.http_status == status
    assert len(sandbox.calls("leads.sync")) == 2


async def test_non_json_answer_is_technical(sandbox: Sandbox) -> None:
    sandbox.inject_http_status(200, count=10, endpoint="leads.sync")
    async with MarketoClient(settings_for(sandbox, max_attempts=1)) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.failure is not None
    assert (result.failure.kind, result.failure.code) == (X, "not-json")


async def test_timeout_is_technical(sandbox: Sandbox) -> None:
    sandbox.set_latency(600)
    settings = settings_for(sandbox, request_timeout_s=0.2, max_attempts=2)
    async with MarketoClient(settings) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.failure is not None
    assert (result.failure.kind, result.failure.code) == (X, "timeout")
    assert "within 0.2 s" in result.failure.message


async def test_dropped_connection_is_technical(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox, max_attempts=2)) as client:
        await client.authenticate()
        sandbox.start_outage(60, mode="drop")
        [result] = await client.upsert_leads([lead(1)])
    assert result.failure is not None
    assert result.failure.kind is X
    assert result.failure.source == "transport"


async def test_unknown_code_is_technical_and_flagged(sandbox: Sandbox) -> None:
    sandbox.inject_error("799", count=10, message="Something new", endpoint="leads.sync")
    async with MarketoClient(settings_for(sandbox, max_attempts=1)) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.failure is not None
    assert (result.failure.kind, result.failure.code, result.failure.known) == (X, "799", False)


# ---- systemic: configuration, never retried --------------------------------------------------


@pytest.mark.parametrize("code", ["603", "610", "609", "612"])
async def test_configuration_codes_are_systemic_and_not_retried(
    sandbox: Sandbox, code: str
) -> None:
    sandbox.inject_error(code, count=5, message="refused", endpoint="leads.sync")
    async with MarketoClient(settings_for(sandbox)) as client:
        results = await client.upsert_leads([lead(1), lead(2)])
    assert len(sandbox.calls("leads.sync")) == 1
    for r in results:
        assert r.failure is not None
        assert (r.failure.kind, r.failure.code, r.failure.message) == (S, code, "refused")


async def test_systemic_read_raises_with_marketo_code(sandbox: Sandbox) -> None:
    sandbox.inject_error("603", message="Access denied", endpoint="leads.describe")
    async with MarketoClient(settings_for(sandbox)) as client:
        with pytest.raises(MarketoError) as raised:
            await client.describe()
    assert raised.value.kind is S
    assert raised.value.failure.code == "603"
    assert raised.value.failure.message == "Access denied"


async def test_unknown_campaign_is_systemic(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        [lead_result] = await client.upsert_leads([lead(1)])
        assert lead_result.lead_id is not None
        [result] = await client.request_campaign(987654, [lead_result.lead_id])
    assert result.failure is not None
    assert (result.failure.kind, result.failure.code) == (S, "1013")
    assert len(sandbox.calls("campaigns.trigger")) == 1


async def test_batch_campaign_is_systemic(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        [lead_result] = await client.upsert_leads([lead(1)])
        assert lead_result.lead_id is not None
        [result] = await client.request_campaign(2001, [lead_result.lead_id])
    assert result.failure is not None
    assert (result.failure.kind, result.failure.code) == (S, "1003")


async def test_too_many_tokens_is_systemic_and_sends_nothing(sandbox: Sandbox) -> None:
    tokens = {f"t{i}": "v" for i in range(101)}
    async with MarketoClient(settings_for(sandbox)) as client:
        results = await client.request_campaign(1001, [1, 2], tokens=tokens)
    assert [r.failure.code if r.failure else None for r in results] == ["too-many-tokens"] * 2
    assert all(r.failure_class is S for r in results)
    assert sandbox.calls("campaigns.trigger") == []


# ---- data: per-record reasons, matched by position -------------------------------------------


async def test_record_level_reasons_are_data_failures_matched_by_position(
    sandbox: Sandbox,
) -> None:
    sandbox.add_lead(email="existing@example.com", firstName="E")
    sandbox.add_lead(email="twin@example.com", firstName="A")
    sandbox.add_lead(email="twin@example.com", firstName="B")
    async with MarketoClient(settings_for(sandbox)) as client:
        created = await client.upsert_leads(
            [lead(1), {"email": "existing@example.com"}], action="createOnly"
        )
        updated = await client.upsert_leads(
            [{"email": "missing@example.com"}, {"email": "existing@example.com", "lastName": "X"}],
            action="updateOnly",
        )
        mixed = await client.upsert_leads(
            [
                lead(2),
                {"email": "twin@example.com", "firstName": "C"},
                lead(3, noSuchField="x"),
                lead(4, numberOfEmployees="many"),
                {"email": "", "firstName": "Empty"},
                lead(5),
            ]
        )

    def summary(results: list[Any]) -> list[tuple[str | None, str | None, Any]]:
        return [(r.status, r.failure.code if r.failure else None, r.failure_class) for r in results]

    assert summary(created) == [("created", None, None), ("skipped", "1005", D)]
    assert summary(updated) == [("skipped", "1004", D), ("updated", None, None)]
    assert summary(mixed) == [
        ("created", None, None),
        ("skipped", "1007", D),
        ("skipped", "1006", D),
        ("skipped", "1003", D),
        (None, "missing-lookup", D),
        ("created", None, None),
    ]
    assert [r.index for r in mixed] == list(range(6))
    assert mixed[0].lead_id is not None and mixed[5].lead_id is not None
    assert all(r.lead_id is None for r in mixed[1:5])
    skipped = mixed[3].failure
    assert skipped is not None
    assert skipped.source == "record"
    assert "numberOfEmployees" in skipped.message
    assert skipped.request_id == mixed[0].request_id
    # The empty-email record never left the client: five records in the one call.
    assert [c.batchSize for c in sandbox.calls("leads.sync")][-1] == 5


async def test_413_splits_the_batch_until_it_fits(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox(max_body_bytes=4096)
    leads = [lead(i, title="x" * 100) for i in range(60)]
    async with MarketoClient(settings_for(sb)) as client:
        results = await client.upsert_leads(leads)
    assert all(r.ok and r.status == "created" for r in results)
    assert len(sb.state.leads) == 60
    # The sandbox logs a 413 before routing, so select by path rather than endpoint name.
    statuses = [c.httpStatus for c in sb.calls() if c.path == "/rest/v1/leads.json"]
    assert 413 in statuses
    assert statuses.count(200) >= 2


async def test_record_too_large_for_any_request_is_data_and_not_sent(sandbox: Sandbox) -> None:
    settings = settings_for(sandbox, max_body_bytes=2048)
    async with MarketoClient(settings) as client:
        results = await client.upsert_leads([lead(1, title="x" * 3000), lead(2)])
    assert results[0].failure is not None
    assert (results[0].failure.kind, results[0].failure.code) == (D, "too-large")
    assert results[1].ok
    assert [c.batchSize for c in sandbox.calls("leads.sync")] == [1]


async def test_chunks_respect_the_body_size_cap(sandbox: Sandbox) -> None:
    settings = settings_for(sandbox, max_body_bytes=8192)
    leads = [lead(i, title="y" * 200) for i in range(100)]
    async with MarketoClient(settings) as client:
        results = await client.upsert_leads(leads)
    assert all(r.ok for r in results)
    sync = sandbox.calls("leads.sync")
    assert all(c.httpStatus == 200 for c in sync)
    assert sum(c.batchSize or 0 for c in sync) == 100
    assert len(sync) > 1


async def test_quota_spent_mid_burst_stops_the_waiting_calls(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox(daily_quota=5)
    # A window far longer than the test: the count below must not depend on how fast the
    # machine made the six calls (with the 0.2 s window a loaded machine forgot one).
    settings = settings_for(sb, max_in_flight=1, rate_window_s=60)
    async with MarketoClient(settings) as client:
        results = await client.upsert_leads([lead(i) for i in range(3000)])
        assert client.quota_parked_until is not None
        assert client.limits.window.used() == 6
    assert [c.code for c in sb.calls("leads.sync")] == [None] * 5 + ["607"]
    assert sum(1 for r in results if r.ok) == 1500
    parked = [r.failure for r in results if r.failure is not None]
    assert len(parked) == 1500
    assert {(f.kind, f.code) for f in parked} == {(Q, "607")}
    assert len({f.retry_at for f in parked}) == 1


async def test_no_retry_that_could_outlast_the_call_budget(sandbox: Sandbox) -> None:
    settings = settings_for(sandbox, request_timeout_s=0.2, max_attempts=3, max_call_s=0.5)
    records: list[CallRecord] = []
    async with MarketoClient(settings, on_call=records.append) as client:
        await client.authenticate()
        sandbox.set_latency(300)
        [result] = await client.upsert_leads([lead(1)])
    assert result.failure is not None
    assert result.failure.code == "timeout"
    # Two 0.2 s attempts fit in 0.5 s; a third could not finish inside the budget.
    assert [r.attempt for r in records if r.endpoint == "/rest/v1/leads.json"] == [1, 2]
