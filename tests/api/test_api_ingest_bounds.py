"""`POST /api/v1/changes` does bounded work whatever the body holds: at most `MAX_ITEMS` items
(413 beyond, nothing accepted or recorded), the first `REJECTIONS_IN_FULL` rejections listed and
kept one by one and the rest counted in one summary row, and `/healthz` answering while a batch
of the largest size allowed is checked (a body of `[{},{},…]` used to hold control for
minutes, answer megabytes and write a row per item)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from stream.api.ingest import MAX_BODY_BYTES, MAX_ITEMS, REJECTIONS_IN_FULL
from tests.api.api_harness import Api
from tests.support.changes import registration_json


async def _scalar(api: Api, sql: str) -> Any:
    return (await api.store.query(sql)).rows[0][0]


async def test_more_items_than_the_cap_is_413_and_nothing_is_kept(api: Api) -> None:
    bodies = {
        "array": json.dumps([{}] * (MAX_ITEMS + 1)).encode(),
        "ndjson": "\n".join(["{}"] * (MAX_ITEMS + 1)).encode(),
        "malformed array": ("[oops," + ",".join(["{}"] * MAX_ITEMS) + "]").encode(),
        "valid changes": json.dumps(
            [registration_json(f"cap-{i}", code=f"R{i}") for i in range(MAX_ITEMS + 1)]
        ).encode(),
    }
    for form, data in bodies.items():
        response = await api.post("/api/v1/changes", data=data)
        body = await response.json()
        assert response.status == 413, (form, body)
        message = body["errors"][0]["message"]
        assert f"more than {MAX_ITEMS:,} change events" in message, (form, message)
        assert body["accepted"] == 0 and body["max_items"] == MAX_ITEMS
    assert await _scalar(api, "SELECT count(*) FROM rejected_changes") == 0
    assert await _scalar(api, "SELECT count(*) FROM changes") == 0

    at_cap = json.dumps([registration_json(f"ok-{i}", code=f"R{i}") for i in range(MAX_ITEMS)])
    response = await api.post("/api/v1/changes", data=at_cap.encode())
    assert response.status == 202, await response.text()
    assert (await response.json())["accepted"] == MAX_ITEMS


async def test_millions_of_tiny_items_are_refused_at_once(api: Api) -> None:
    data = b"[" + b",".join([b"{}"] * 5_000_000) + b"]"
    assert len(data) < MAX_BODY_BYTES
    started = time.perf_counter()
    response = await api.post("/api/v1/changes", data=data)
    elapsed = time.perf_counter() - started
    text = await response.text()
    print(f"5,000,000 items ({len(data):,} bytes): {response.status} in {elapsed:.2f} s")
    assert response.status == 413, text[:500]
    assert len(text) < 1000
    assert elapsed < 10.0
    assert await _scalar(api, "SELECT count(*) FROM rejected_changes") == 0


async def test_many_rejections_give_a_bounded_answer_and_rows(api: Api) -> None:
    invalid = 2 * REJECTIONS_IN_FULL + 5
    items: list[Any] = [registration_json("mixed-1", code="R1")]
    items += [{} for _ in range(invalid)]
    items.append(registration_json("mixed-2", code="R2"))
    response = await api.post("/api/v1/changes", json=items)
    body = await response.json()
    assert response.status == 207, body
    assert body["accepted"] == 2 and body["change_ids"] == ["mixed-1", "mixed-2"]
    assert body["rejected"] == invalid
    assert len(body["errors"]) == REJECTIONS_IN_FULL
    assert body["errors_omitted"] == invalid - REJECTIONS_IN_FULL
    assert [e["index"] for e in body["errors"][:2]] == [1, 2]
    assert body["errors"][-1]["index"] == REJECTIONS_IN_FULL
    assert f"{invalid:,} items were rejected" in body["message"]

    assert await _scalar(api, "SELECT count(*) FROM rejected_changes") == REJECTIONS_IN_FULL + 1
    summary = await _scalar(
        api,
        "SELECT payload FROM rejected_changes WHERE payload LIKE '%rejected_not_kept%'",
    )
    counted = json.loads(summary)
    assert counted["rejected_not_kept"] == invalid - REJECTIONS_IN_FULL
    assert counted["first_index"] == REJECTIONS_IN_FULL + 1
    assert counted["last_index"] == invalid
    first = body["errors"][0]
    reason = f"{first['path']}: {first['message']}"
    assert counted["reasons"] == {reason: invalid - REJECTIONS_IN_FULL}
    reasons = await _scalar(
        api, "SELECT reasons FROM rejected_changes WHERE payload LIKE '%rejected_not_kept%'"
    )
    assert f"{invalid - REJECTIONS_IN_FULL:,} more items of this request" in reasons[0]


async def test_an_answer_with_few_rejections_lists_them_all(api: Api) -> None:
    response = await api.post("/api/v1/changes", json=[{}, {}])
    body = await response.json()
    assert response.status == 400
    assert len(body["errors"]) == 2
    assert "errors_omitted" not in body and "message" not in body
    assert await _scalar(api, "SELECT count(*) FROM rejected_changes") == 2


async def test_healthz_answers_while_a_batch_at_the_cap_is_checked(api: Api) -> None:
    data = json.dumps([{}] * MAX_ITEMS).encode()
    started = time.perf_counter()
    batch = asyncio.create_task(api.post("/api/v1/changes", data=data))
    waits: list[float] = []
    while not batch.done():
        asked = time.perf_counter()
        response = await api.client.get("/healthz")
        await response.read()
        waits.append(time.perf_counter() - asked)
    answer = await batch
    took = time.perf_counter() - started
    body = await answer.json()
    print(
        f"{MAX_ITEMS:,} invalid items: {answer.status} in {took:.2f} s; /healthz answered "
        f"{len(waits)} times, slowest {max(waits, default=0) * 1000:.0f} ms"
    )
    assert answer.status == 400
    assert body["rejected"] == MAX_ITEMS
    assert waits, "the batch was answered before /healthz was asked once"
    assert max(waits) < 5.0
