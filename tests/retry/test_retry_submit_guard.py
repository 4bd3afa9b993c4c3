"""Resubmit-all by filter carries the count the operator confirmed; control refuses, sending
nothing, when a different number of items matches by the time it selects them."""

from __future__ import annotations

from typing import Any

from tests.retry.retry_helpers import OpsApi, RedriveTopic
from tests.retry.test_retry_api_routes import seed
from tests.support.clock import FakeClock

SUBMIT = "/api/v1/retry-queue/submit"


async def _statuses(api: OpsApi) -> dict[str, str]:
    status, body = await api.call("GET", "/api/v1/retry-queue?limit=500")
    assert status == 200
    return {i["change_id"]: i["status"] for i in body["items"]}


async def test_a_changed_count_is_refused_and_nothing_moves(
    ops_api: OpsApi, clock: FakeClock, redrive: RedriveTopic
) -> None:
    await seed(ops_api, clock)
    before = await _statuses(ops_api)
    status, body = await ops_api.call(
        "POST", SUBMIT, actor="ana", json={"filter": {"category": "data"}, "expected_count": 5}
    )
    assert status == 409
    [problem] = body["errors"]
    assert problem["path"] == "expected_count"
    assert "now 3 items match" in problem["message"] and "5" in problem["message"]
    assert await _statuses(ops_api) == before
    assert await ops_api.store.config_audit(kind="retry_queue") == []

    status, body = await ops_api.call(
        "POST", SUBMIT, actor="ana", json={"filter": {"category": "data"}, "expected_count": 3}
    )
    assert status == 200 and (body["selected"], body["submitted"]) == (3, 3)
    sent = await redrive.read(3)
    assert sorted(r.change["changeId"] for _, r in sent) == ["d0", "d1", "d2"]


async def test_the_count_covers_the_text_search_too(ops_api: OpsApi, clock: FakeClock) -> None:
    await seed(ops_api, clock)
    asked = {"filter": {"category": "data", "q": "d1"}, "expected_count": 3}
    status, body = await ops_api.call("POST", SUBMIT, json=asked)
    assert status == 409 and "now 1 items match" in body["errors"][0]["message"]
    status, body = await ops_api.call("POST", SUBMIT, json={**asked, "expected_count": 1})
    assert status == 200 and body["submitted"] == 1


async def test_an_empty_match_confirmed_as_zero_sends_nothing(
    ops_api: OpsApi, clock: FakeClock
) -> None:
    await seed(ops_api, clock)
    asked = {"filter": {"status": "abandoned"}, "expected_count": 0}
    status, body = await ops_api.call("POST", SUBMIT, json=asked)
    assert status == 200 and (body["selected"], body["submitted"]) == (0, 0)


async def test_a_bad_count_is_a_bad_request(ops_api: OpsApi, clock: FakeClock) -> None:
    await seed(ops_api, clock)
    bad: dict[str, Any]
    for bad in (
        {"filter": {}, "expected_count": "5"},
        {"filter": {}, "expected_count": -1},
        {"filter": {}, "expected_count": True},
        {"filter": {}, "expected_count": 2.5},
        {"items": [{"change_id": "d0", "flow_id": "nurture"}], "expected_count": 1},
    ):
        status, body = await ops_api.call("POST", SUBMIT, json=bad)
        assert status == 400, bad
        assert body["errors"][0]["path"] == "expected_count"
    assert set((await _statuses(ops_api)).values()) == {"pending"}
