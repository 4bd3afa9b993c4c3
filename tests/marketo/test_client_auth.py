"""Authentication against the sandbox over real HTTP: single-flight tokens, 601/602, bad secrets."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import SecretStr

from simulators.marketo.sandbox import ManualClock, Sandbox
from stream.marketo.client import MarketoClient
from stream.marketo.errors import FailureClass, MarketoError
from stream.marketo.results import CallRecord
from tests.support.fixtures import MakeSandbox
from tests.support.marketo import lead, settings_for


async def test_fifty_concurrent_calls_share_one_token_request(sandbox: Sandbox) -> None:
    records: list[CallRecord] = []
    async with MarketoClient(settings_for(sandbox), on_call=records.append) as client:
        results = await asyncio.gather(
            *(client.get_leads("email", [f"nobody{i}@example.com"]) for i in range(50))
        )
    assert results == [[]] * 50
    assert len(sandbox.calls("identity")) == 1
    assert len(sandbox.calls("leads.filter")) == 50
    assert [r.endpoint for r in records].count("/identity/oauth/token") == 1


async def test_token_is_reused_across_calls(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        for i in range(3):
            await client.upsert_leads([lead(i)])
        assert client.token_fetches == 1
    assert len(sandbox.calls("identity")) == 1


async def test_expired_token_mid_stream_refreshes_once_and_succeeds(sandbox: Sandbox) -> None:
    records: list[CallRecord] = []
    async with MarketoClient(settings_for(sandbox), on_call=records.append) as client:
        first = await client.upsert_leads([lead(i) for i in range(300)])
        assert all(r.ok for r in first)
        sandbox.expire_tokens()
        rest = await client.upsert_leads([lead(i) for i in range(300, 900)])
    assert all(r.ok and r.status == "created" for r in rest)
    assert len(sandbox.state.leads) == 900
    # Both in-flight batches met 602; one new token served both replays.
    assert len(sandbox.calls("identity")) == 2
    sync = sandbox.calls("leads.sync")
    assert [c.code for c in sync].count("602") == 2
    assert sum(1 for c in sync if c.success) == 3
    assert [r.marketo_error for r in records if r.endpoint == "/rest/v1/leads.json"].count(
        "602"
    ) == 2


async def test_revoked_token_gives_601_then_refresh_and_success(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        await client.upsert_leads([lead(1)])
        sandbox.revoke_tokens()
        [result] = await client.upsert_leads([lead(2)])
    assert result.ok
    codes = [c.code for c in sandbox.calls("leads.sync")]
    assert codes == [None, "601", None]
    assert len(sandbox.calls("identity")) == 2


async def test_injected_602_with_a_still_valid_token_replays_with_the_reissued_token(
    sandbox: Sandbox,
) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        await client.upsert_leads([lead(1)])
        sandbox.inject_error("602", endpoint="leads.sync")
        [result] = await client.upsert_leads([lead(2)])
    assert result.ok
    assert [c.code for c in sandbox.calls("leads.sync")] == [None, "602", None]


async def test_auth_failure_that_persists_after_one_refresh_is_reported(sandbox: Sandbox) -> None:
    async with MarketoClient(settings_for(sandbox)) as client:
        sandbox.inject_error("601", count=5, endpoint="leads.sync")
        results = await client.upsert_leads([lead(1), lead(2)])
    assert len(sandbox.calls("leads.sync")) == 2  # the call and exactly one replay
    for r in results:
        assert r.failure is not None
        assert r.failure.kind is FailureClass.AUTH
        assert r.failure.code == "601"


async def test_bad_secret_is_an_auth_failure_with_a_plain_message(sandbox: Sandbox) -> None:
    settings = settings_for(sandbox, client_secret=SecretStr("wrong"))
    async with MarketoClient(settings) as client:
        [result] = await client.upsert_leads([lead(1)])
        with pytest.raises(MarketoError) as raised:
            await client.describe()
    assert result.failure is not None
    assert result.failure.kind is FailureClass.AUTH
    assert result.failure.code == "invalid_client"
    assert result.failure.message.startswith("bad client id or secret")
    assert result.failure.source == "identity"
    assert raised.value.kind is FailureClass.AUTH
    assert sandbox.calls("leads.sync") == []


async def test_identity_outage_is_technical_and_retried(sandbox: Sandbox) -> None:
    sandbox.inject_http_status(503, count=1, endpoint="identity")
    async with MarketoClient(settings_for(sandbox)) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.ok
    assert [c.httpStatus for c in sandbox.calls("identity")] == [503, 200]


async def test_identity_outage_that_persists_fails_technical(sandbox: Sandbox) -> None:
    sandbox.inject_http_status(503, count=10, endpoint="identity")
    async with MarketoClient(settings_for(sandbox, max_attempts=2)) as client:
        [result] = await client.upsert_leads([lead(1)])
    assert result.failure is not None
    assert result.failure.kind is FailureClass.TECHNICAL
    assert result.failure.http_status == 503
    assert len(sandbox.calls("identity")) == 2


async def test_secrets_never_appear_in_reprs_records_failures_or_logs(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    records: list[CallRecord] = []
    settings = settings_for(sandbox, rate_window_s=0.2)
    async with MarketoClient(settings, on_call=records.append) as client:
        token = (await client.authenticate()).value.get_secret_value()
        sandbox.inject_error("606", endpoint="leads.sync")
        sandbox.inject_error("611", endpoint="leads.sync")
        sandbox.inject_error("601", count=2, endpoint="leads.describe")
        results = await client.upsert_leads([lead(1)])
        with pytest.raises(MarketoError) as raised:
            await client.describe()
        text = " ".join(
            [
                repr(settings),
                str(settings),
                repr(settings.model_dump()),
                settings.model_dump_json(),
                repr(client),
                repr(await client.authenticate()),
                repr(records),
                repr(results),
                repr(raised.value),
                str(raised.value),
                repr(raised.value.failure),
                caplog.text,
            ]
        )
    bad = MarketoClient(settings_for(sandbox, client_secret=SecretStr("wrong-secret-123")))
    async with bad:
        bad_results = await bad.upsert_leads([lead(2)])
    text += repr(bad_results) + repr(bad) + caplog.text
    assert "sandbox-secret" not in text
    assert "wrong-secret-123" not in text
    assert token not in text


async def test_token_lifecycle_follows_marketo_reissue_rules(make_sandbox: MakeSandbox) -> None:
    # Marketo hands back the same token with a falling expires_in until it has run out.
    clock = ManualClock(1_800_000_000.0)
    sb = await make_sandbox(token_lifetime_s=100, clock=clock)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    settings = settings_for(sb, token_refresh_margin_s=60)
    async with MarketoClient(settings, clock=clock, sleep=sleep) as client:
        first = (await client.authenticate()).value.get_secret_value()
        clock.advance(45)  # inside the margin: ask again, get the same token back
        await client.upsert_leads([lead(1)])
        assert len(sb.calls("identity")) == 2
        assert (await client.authenticate()).value.get_secret_value() == first
        clock.advance(50)  # 5 s left: keep using it, no identity call per API call
        await client.upsert_leads([lead(2)])
        assert len(sb.calls("identity")) == 2
        clock.advance(4)  # 1 s left: wait for it to run out, then take the new one
        await client.upsert_leads([lead(3)])
        last = (await client.authenticate()).value.get_secret_value()
    assert last != first
    assert len(sb.calls("identity")) == 4
    assert [c.code for c in sb.calls("leads.sync")] == [None, None, None]
