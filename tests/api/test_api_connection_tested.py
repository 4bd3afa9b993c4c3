"""A passing test of a connection's saved settings stamps it in the next configuration snapshot
(`ConfigSnapshot.tested`), which is how the workers learn to close its circuit breaker; against a
real Marketo sandbox. Only a pass with the settings the workers use counts: a failed test, or a
candidate that differs from what is saved, stamps nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.marketo.sandbox import Sandbox
from stream.marketo.breaker_edge import CIRCUIT_OPEN
from stream.store.rows import OutcomeRow, RetryItem
from tests.api.api_harness import Api

CONNECTION = "mkto-sandbox"
SANDBOX_SECRET = "sandbox-secret"


def _connection(url: str, **overrides: Any) -> dict[str, Any]:
    body = {"id": CONNECTION, "name": "Sandbox", "service_url": url, "client_id": "sandbox-client"}
    body.update(overrides)
    return body


def _stamp(api: Api) -> datetime | None:
    return api.config.snapshot().tested.get(CONNECTION)


async def _passes(api: Api, path: str, body: dict[str, Any] | None = None) -> bool:
    response = await api.post(path, json=body)
    assert response.status == 200, await response.text()
    return bool((await response.json())["ok"])


async def test_a_passing_test_of_the_saved_settings_stamps_the_connection(
    api: Api, sandbox: Sandbox
) -> None:
    created = await api.post(
        "/api/v1/connections", json=_connection(sandbox.url, client_secret=SANDBOX_SECRET)
    )
    assert created.status == 201
    assert _stamp(api) is None

    assert await _passes(api, f"/api/v1/connections/{CONNECTION}/test")
    first = _stamp(api)
    assert first is not None

    # Save & Test of an unchanged form: a candidate equal to the saved settings (the stored
    # secret stands in) stamps it again, later.
    assert await _passes(api, "/api/v1/connections/test", _connection(sandbox.url))
    second = _stamp(api)
    assert second is not None and second > first

    # A candidate with other settings passes, but saving it is what resets the breaker.
    assert await _passes(api, "/api/v1/connections/test", _connection(sandbox.url, max_in_flight=3))
    assert _stamp(api) == second
    # A failing test of the saved settings stamps nothing either.
    sandbox.start_outage(3600)
    assert not await _passes(api, f"/api/v1/connections/{CONNECTION}/test")
    sandbox.end_outage()
    assert _stamp(api) == second
    # Nor does a new connection's candidate.
    other = _connection(sandbox.url, id="mkto-new", client_secret=SANDBOX_SECRET)
    assert await _passes(api, "/api/v1/connections/test", other)
    assert "mkto-new" not in api.config.snapshot().tested


async def test_a_pass_releases_the_deliveries_the_breaker_parked(
    api: Api, sandbox: Sandbox
) -> None:
    """Parked by the connection's circuit breaker, a delivery waits for the breaker's next probe
    (up to ten minutes after a long outage); the operator's passing test releases it at once.
    Deliveries parked for another reason (the daily quota) or on another connection keep their
    time, and a failed test releases nothing."""
    created = await api.post(
        "/api/v1/connections", json=_connection(sandbox.url, client_secret=SANDBOX_SECRET)
    )
    assert created.status == 201
    now = datetime.now(UTC)
    later = now + timedelta(minutes=10)
    parked = [
        ("c-breaker", CONNECTION, CIRCUIT_OPEN),
        ("c-quota", CONNECTION, "607"),
        ("c-other", "mkto-other", CIRCUIT_OPEN),
    ]
    rows = [
        OutcomeRow(
            change_id=change_id,
            flow_id="registered-to-nurture",
            flow_name="Registered to nurture",
            mode="live",
            status="parked",
            occurred_at=now,
            processed_at=now,
            connection_id=connection_id,
            marketo_code=code,
        )
        for change_id, connection_id, code in parked
    ]
    items = [
        RetryItem(
            change_id=change_id,
            flow_id="registered-to-nurture",
            status="pending",
            category="technical",
            attempts=0,
            updated_at=now,
            integration=connection_id,
            next_attempt_at=later,
        )
        for change_id, connection_id, _ in parked
    ]
    await api.store.record_outcomes(rows, [])
    await api.store.upsert_retry_items(items)

    async def due() -> dict[str, datetime | None]:
        found = [await api.store.get_retry_item(c, "registered-to-nurture") for c, _, _ in parked]
        return {i.change_id: i.next_attempt_at for i in found if i is not None}

    sandbox.start_outage(3600)
    failed = await api.post(f"/api/v1/connections/{CONNECTION}/test")
    assert (await failed.json())["released"] == 0
    sandbox.end_outage()
    assert set((await due()).values()) == {later}

    response = await api.post(f"/api/v1/connections/{CONNECTION}/test")
    body = await response.json()
    assert body["ok"] and body["released"] == 1
    times = await due()
    assert times["c-quota"] == later and times["c-other"] == later
    released = times["c-breaker"]
    assert released is not None and now <= released < later
    # The snapshot carrying the pass went out first: the workers close their breaker before
    # the released deliveries reach them.
    assert not api.config.publish_pending
    published = api.config.published
    assert published is not None and published.tested.get(CONNECTION) is not None
