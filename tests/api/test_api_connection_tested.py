"""A passing test of a connection's saved settings stamps it in the next configuration snapshot
(`ConfigSnapshot.tested`), which is how the workers learn to close its circuit breaker; against a
real Marketo sandbox. Only a pass with the settings the workers use counts: a failed test, or a
candidate that differs from what is saved, stamps nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from simulators.marketo.sandbox import Sandbox
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
