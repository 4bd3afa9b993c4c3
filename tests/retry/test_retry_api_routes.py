"""The retry-queue, replay and preview routes through the operator API's own app factory and
bearer-token middleware, over a real store, config service and broker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from stream.control.retry_scheduler import DEFAULT_SCHEDULE
from tests.retry.retry_helpers import (
    OpsApi,
    RedriveTopic,
    event_dict,
    failed_outcome,
    record_new_outcomes,
    registration_dict,
)
from tests.support.changes import change_row
from tests.support.clock import FIXED, FakeClock
from tests.support.waiting import until

# The API's operations run on the test's FakeClock: the fixed dates never meet the real clock.


async def seed(api: OpsApi, clock: FakeClock, n_data: int = 3, n_tech: int = 2) -> None:
    ids = [f"d{i}" for i in range(n_data)] + [f"t{i}" for i in range(n_tech)]
    rows = [change_row(event_dict())]
    rows += [
        change_row(registration_dict(i, occurred_at=FIXED + timedelta(minutes=1))) for i in ids
    ]
    await api.store.archive_changes(rows)
    records = [failed_outcome(i, "data") for i in ids if i.startswith("d")]
    records += [failed_outcome(i, "technical") for i in ids if i.startswith("t")]
    await record_new_outcomes(api.store, records, DEFAULT_SCHEDULE, clock.now)


async def test_the_queue_needs_the_token(ops_api: OpsApi) -> None:
    response = await ops_api.client.get("/api/v1/retry-queue")
    assert response.status == 401
    response = await ops_api.client.post("/api/v1/retry-queue/submit", json={"items": []})
    assert response.status == 401


async def test_list_filters_pages_and_counts(ops_api: OpsApi, clock: FakeClock) -> None:
    await seed(ops_api, clock)
    status, body = await ops_api.call("GET", "/api/v1/retry-queue")
    assert status == 200 and body["total"] == 5 and len(body["items"]) == 5
    status, body = await ops_api.call(
        "GET", "/api/v1/retry-queue?category=data&integration=mkto&limit=2&offset=2"
    )
    assert status == 200
    assert (body["total"], len(body["items"]), body["offset"], body["limit"]) == (3, 1, 2, 2)
    assert body["items"][0]["category"] == "data"
    status, body = await ops_api.call(
        "GET", "/api/v1/retry-queue?status=pending&category=technical"
    )
    assert body["total"] == 2
    assert all(i["next_attempt_at"] is not None for i in body["items"])
    status, body = await ops_api.call("GET", "/api/v1/retry-queue?status=done")
    assert status == 400 and "status must be" in body["errors"][0]["message"]
    status, body = await ops_api.call("GET", "/api/v1/retry-queue?limit=0")
    assert status == 400 and body["errors"][0]["path"] == "limit"


async def test_an_item_in_detail(ops_api: OpsApi, clock: FakeClock) -> None:
    await seed(ops_api, clock, n_data=1, n_tech=0)
    status, body = await ops_api.call("GET", "/api/v1/retry-queue/d0/nurture")
    assert status == 200
    assert body["item"]["status"] == "pending" and body["item"]["category"] == "data"
    assert body["change"]["changeId"] == "d0"
    assert [a["status"] for a in body["attempts"]] == ["failed"]
    assert body["mapped_payload"]["email"] == "r-d0@example.com"
    assert body["preview"]["outcome"]["status"] == "would_send"
    status, body = await ops_api.call("GET", "/api/v1/retry-queue/nope/nurture")
    assert status == 404


async def test_submit_items_and_filter(
    ops_api: OpsApi, clock: FakeClock, redrive: RedriveTopic
) -> None:
    await seed(ops_api, clock)
    status, body = await ops_api.call(
        "POST",
        "/api/v1/retry-queue/submit",
        actor="ana",
        json={"items": [{"change_id": "d0", "flow_id": "nurture"}]},
    )
    assert status == 200
    assert (body["submitted"], body["skipped_already_resolved"], body["skipped_in_flight"]) == (
        1,
        0,
        0,
    )
    status, body = await ops_api.call(
        "POST",
        "/api/v1/retry-queue/submit",
        actor="bo",
        json={"filter": {"category": "data"}},
    )
    assert status == 200 and (body["submitted"], body["skipped_in_flight"]) == (2, 1)
    sent = await redrive.read(3)
    assert sorted(r.change["changeId"] for _, r in sent) == ["d0", "d1", "d2"]
    audit = await ops_api.store.config_audit(kind="retry_queue")
    assert [(a.actor, a.object_id) for a in audit] == [("bo", "filter"), ("ana", "d0/nurture")]
    bad: dict[str, Any]
    for bad in (
        {},
        {"items": []},
        {"items": [{"change_id": "d0"}]},
        {"filter": {"colour": "red"}},
        {"items": [], "filter": {}},
    ):
        status, body = await ops_api.call("POST", "/api/v1/retry-queue/submit", json=bad)
        assert status == 400, bad
        assert body["errors"][0]["message"]


async def test_replay_dry_run_start_progress_and_cancel(
    ops_api: OpsApi, redrive: RedriveTopic
) -> None:
    rows = [
        change_row(registration_dict(f"c{i}", occurred_at=FIXED + timedelta(minutes=i)))
        for i in range(4)
    ]
    await ops_api.store.archive_changes(rows)
    status, body = await ops_api.call(
        "POST",
        "/api/v1/replays",
        json={"flow_id": "nurture", "event_code": "SUMMIT26", "dry_run": True},
    )
    assert status == 200 and body["dry_run"] is True
    assert body["counts"]["would_send"] == 4 and len(body["sample"]) == 4
    assert await redrive.read(settle_s=0.3) == []
    status, body = await ops_api.call(
        "POST",
        "/api/v1/replays",
        actor="ana",
        json={"flow_id": "nurture", "from": "2026-11-28T00:00:00Z", "to": "2026-11-29T00:00:00Z"},
    )
    assert status == 202 and body["state"] in ("publishing", "awaiting_outcomes")
    replay_id = body["id"]

    async def published() -> dict[str, Any] | None:
        status, body = await ops_api.call("GET", f"/api/v1/replays/{replay_id}")
        assert status == 200, body
        return None if body["state"] == "publishing" else dict(body)

    body = await until(published, f"replay {replay_id} published")
    assert (body["state"], body["published"], body["scanned"]) == ("awaiting_outcomes", 4, 4)
    assert "4 awaiting outcome" in body["summary"] and body["finished"] is False
    assert len(await redrive.read(4)) == 4
    status, body = await ops_api.call("DELETE", f"/api/v1/replays/{replay_id}")
    assert status == 409, "everything is published: nothing is left to cancel"
    assert "nothing left to cancel" in body["errors"][0]["message"]
    status, body = await ops_api.call("GET", "/api/v1/replays")
    assert [r["id"] for r in body["replays"]] == [replay_id]
    assert (await ops_api.call("GET", "/api/v1/replays/rp-nope"))[0] == 404
    assert (await ops_api.call("DELETE", "/api/v1/replays/rp-nope"))[0] == 404
    for bad, code in (
        ({"flow_id": "nurture"}, 422),
        ({"event_code": "SUMMIT26"}, 400),
        ({"flow_id": "nurture", "from": "yesterday", "to": "2026-11-29T00:00:00Z"}, 400),
        ({"flow_id": "ghost", "event_code": "SUMMIT26"}, 404),
        ({"flow_id": "nurture", "event_code": "SUMMIT26", "dry_run": "yes"}, 400),
        ({"flow_id": "nurture", "event_code": "SUMMIT26", "only_undelivered": 1}, 400),
    ):
        status, body = await ops_api.call("POST", "/api/v1/replays", json=bad)
        assert status == code, (bad, body)


async def test_mapping_preview(ops_api: OpsApi) -> None:
    rows = [
        change_row(registration_dict(f"c{i}", occurred_at=FIXED + timedelta(minutes=i)))
        for i in range(4)
    ]
    await ops_api.store.archive_changes(rows)
    status, body = await ops_api.call("POST", "/api/v1/mappings/nurture/preview", json={"limit": 2})
    assert status == 200
    assert [p["change_id"] for p in body["previews"]] == ["c3", "c2"]
    assert body["previews"][0]["payload"]["email"] == "r-c3@example.com"
    pasted = registration_dict("p1", first_name="  zoe ")
    status, body = await ops_api.call(
        "POST", "/api/v1/mappings/nurture/preview", json={"change": pasted}
    )
    assert status == 200 and body["previews"][0]["payload"]["firstName"] == "Zoe"
    field = next(f for f in body["previews"][0]["fields"] if f["target"] == "firstName")
    assert field["transforms"] == ["trim", "proper"]
    status, body = await ops_api.call(
        "POST", "/api/v1/mappings/nurture/preview", json={"change": {"type": "nope"}}
    )
    assert status == 422
    status, _ = await ops_api.call("POST", "/api/v1/mappings/ghost/preview", json={"limit": 1})
    assert status == 404
    status, _ = await ops_api.call("POST", "/api/v1/mappings/nurture/preview", json={"limit": 0})
    assert status == 400


async def test_a_preview_of_a_hostile_change_is_a_quick_clear_answer(ops_api: OpsApi) -> None:
    """A change of a million values is refused by its size, one of thousands of bad values by
    its first problems, and a name of a megabyte of `a'` is proper-cased in linear time; each
    is worked out on a thread, off the loop a read-only token can reach."""
    route = "/api/v1/mappings/nurture/preview"
    huge = registration_dict("h1")
    huge["answers"] = [1] * 1_000_000
    status, body = await ops_api.call("POST", route, json={"change": huge})
    assert status == 422
    assert (body["errors"][0]["path"], body["errors"][0]["message"]) == (
        "change",
        "more than 50,000 values in one item; expected one change event",
    )
    many = registration_dict("m1")
    many["registration"]["registrationQuestions"] = [{"code": None}] * 5_000
    status, body = await ops_api.call("POST", route, json={"change": many})
    assert status == 422
    assert body["errors"][0]["path"].startswith("change.registration.registrationQuestions[0]")
    status, body = await ops_api.call(
        "POST", route, json={"change": registration_dict("n1", first_name="a'" * 400_000)}
    )
    assert status == 200
    assert body["previews"][0]["payload"]["firstName"] == "A'" * 400_000


async def test_a_replay_body_nested_past_the_parser_is_a_400(ops_api: OpsApi) -> None:
    response = await ops_api.client.post(
        "/api/v1/replays",
        data=b"[" * 100_000 + b"]" * 100_000,
        headers={"Authorization": f"Bearer {ops_api.token}"},
    )
    assert response.status == 400
    assert "nested too deeply" in (await response.json())["errors"][0]["message"]


async def test_search_narrows_the_list_and_a_filtered_resubmit(
    ops_api: OpsApi, clock: FakeClock, redrive: RedriveTopic
) -> None:
    await seed(ops_api, clock)
    status, body = await ops_api.call("GET", "/api/v1/retry-queue?q=503")
    assert status == 200 and body["total"] == 2
    assert {i["change_id"] for i in body["items"]} == {"t0", "t1"}
    status, body = await ops_api.call("GET", "/api/v1/retry-queue?q=d1&category=data")
    assert [i["change_id"] for i in body["items"]] == ["d1"]
    status, body = await ops_api.call("GET", "/api/v1/retry-queue?q=100%25")
    assert body["total"] == 0, "% is matched literally"
    status, body = await ops_api.call(
        "POST",
        "/api/v1/retry-queue/submit",
        json={"filter": {"category": "data", "q": "d2"}, "expected": 1},
    )
    assert status == 200 and body["submitted"] == 1
    [(_, request)] = await redrive.read(1)
    assert request.change["changeId"] == "d2"


async def test_preview_by_mapping_id_with_the_flow_in_the_body(ops_api: OpsApi) -> None:
    await ops_api.store.archive_changes([change_row(registration_dict("c1"))])
    status, body = await ops_api.call(
        "POST", "/api/v1/mappings/lead-basic/preview", json={"flow_id": "nurture"}
    )
    assert status == 200
    assert (body["flow_id"], body["mapping_id"]) == ("nurture", "lead-basic")
    assert [p["change_id"] for p in body["previews"]] == ["c1"]
    status, body = await ops_api.call("POST", "/api/v1/mappings/lead-basic/preview", json={})
    assert status == 200 and body["flow_id"] == "nurture"
    status, body = await ops_api.call(
        "POST", "/api/v1/mappings/lead-basic/preview", json={"flow_id": "ghost"}
    )
    assert status == 404 and "ghost" in body["errors"][0]["message"]
