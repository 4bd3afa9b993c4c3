"""Hostile input to the operator API (issue 11, items 4 and 7): every request's work is bounded
and a bad request is a clear 4xx, never a frozen loop or a 500."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from stream.api import ingest
from stream.api import sql as sql_route
from stream.api.account import IMPORT_SLOTS
from stream.api.bodies import MAX_OBJECT_BYTES
from stream.api.ingest import INGEST_SLOTS, MAX_INGESTING
from stream.api.sql import SQL_SLOTS
from stream.certain.parsing import MAX_PROBLEMS
from tests.api.api_harness import Api
from tests.support.changes import registration_json
from tests.support.hostile import HUGE_ANSWER_SQL, SLOW_SQL, alias_bomb
from tests.support.waiting import until


def error_messages(body: dict[str, object]) -> str:
    errors = body["errors"]
    assert isinstance(errors, list)
    return " | ".join(str(e["message"]) for e in errors)


# -- configuration ---------------------------------------------------------------------------


async def test_a_yaml_alias_bomb_is_refused_at_once(api: Api) -> None:
    bomb = alias_bomb()
    version = await api.settled_version()
    started = time.perf_counter()
    response = await asyncio.wait_for(
        api.put("/api/v1/config", data=bomb, headers={**api.auth, "Content-Type": "text/yaml"}),
        30.0,
    )
    elapsed = time.perf_counter() - started
    body = await response.json()
    print(f"{len(bomb)}-byte alias bomb refused in {elapsed * 1000:.1f} ms: {body}")
    assert response.status == 422
    assert "anchors or aliases" in error_messages(body)
    assert body["errors"][0]["path"] == "line 1, column 4"
    assert elapsed < 10.0  # it took 41 s and 3.1 GB before anchors were refused
    assert api.published_version == version


async def test_an_alias_alone_is_refused_too(api: Api) -> None:
    text = "account: ACME\nflows: *nothing\n"
    response = await api.put("/api/v1/config", data=text)
    assert response.status == 422
    assert "alias *nothing is not allowed" in error_messages(await response.json())


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"account: ACME\n# \xff\xfe\n", "text/yaml", 400, "not UTF-8"),
        (b"account: " + b"[" * 5000 + b"]" * 5000, "text/yaml", 422, "nest"),
        (b'{"account": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json", 422, ""),
        (b'{"account": "\\udc80"}', "application/json", 422, "not valid Unicode"),
        (b"account: x\n" + b"# padding\n" * 120_000, "text/yaml", 413, "at most 1048576 bytes"),
    ],
    ids=["not-utf8", "deep-yaml", "deep-json", "lone-surrogate-json", "too-large"],
)
async def test_bad_configuration_bodies_are_clear_client_errors(
    api: Api, body: bytes, content_type: str, status: int, fragment: str
) -> None:
    response = await api.put(
        "/api/v1/config", data=body, headers={**api.auth, "Content-Type": content_type}
    )
    answer = await response.json()
    assert response.status == status, answer
    assert fragment in error_messages(answer)


async def test_one_configuration_import_at_a_time(api: Api) -> None:
    slots = api.client.app[IMPORT_SLOTS]
    async with slots:
        response = await api.put("/api/v1/config", data="account: ACME\n")
        assert response.status == 429
        assert response.headers["Retry-After"] == "1"
        assert "another configuration import" in error_messages(await response.json())


# -- /sql ------------------------------------------------------------------------------------


async def test_an_over_long_statement_is_refused_without_running(api: Api) -> None:
    values = ",".join(str(i) for i in range(30_000))
    sql = f"SELECT count(*) FROM range(10) t(i) WHERE i IN ({values})"
    started = time.perf_counter()
    response = await api.post("/api/v1/sql", json={"sql": sql})
    elapsed = time.perf_counter() - started
    body = await response.json()
    print(f"{len(sql)}-character statement answered {response.status} in {elapsed * 1000:.1f} ms")
    assert response.status == 413
    assert body["errors"][0]["path"] == "sql"
    assert "at most 100000" in error_messages(body)


async def test_an_over_large_sql_body_is_413_unread(api: Api) -> None:
    response = await api.post("/api/v1/sql", data=b"x" * 1_000_000)
    assert response.status == 413
    assert "at most" in error_messages(await response.json())


async def test_the_answer_is_capped_in_bytes(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_route, "MAX_ANSWER_BYTES", 2_000_000)
    started = time.perf_counter()
    response = await api.post(
        "/api/v1/sql",
        json={"sql": HUGE_ANSWER_SQL, "max_rows": 100_000},
    )
    raw = await response.read()
    elapsed = time.perf_counter() - started
    print(f"answer of {len(raw)} bytes in {elapsed:.2f} s")
    assert response.status == 200
    assert len(raw) <= 2_000_000 + 1000
    body = json.loads(raw)
    assert (body["truncated"], body["truncated_by"]) == (True, "bytes")
    assert 0 < body["row_count"] == len(body["rows"]) < 100_000


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"sql": "SELECT 1 \xff"}', "not JSON"),
        (b'{"sql": "SELECT \'\\udc80\'"}', "not valid Unicode"),
        (b'{"sql": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not JSON"),
        (json.dumps({"sql": "SELECT " + "[" * 700 + "1" + "]" * 700}).encode(), "too deeply"),
    ],
    ids=["not-utf8", "lone-surrogate", "deep-json", "deep-statement"],
)
async def test_bad_sql_bodies_are_400(api: Api, data: bytes, fragment: str) -> None:
    response = await api.post(
        "/api/v1/sql", data=data, headers={**api.auth, "Content-Type": "application/json"}
    )
    body = await response.json()
    assert response.status == 400, body
    assert fragment in error_messages(body)


async def test_sql_runs_two_at_a_time_and_healthz_stays_quick(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_route, "TIME_LIMIT_S", 3.0)
    slow = [asyncio.create_task(api.post("/api/v1/sql", json={"sql": SLOW_SQL})) for _ in range(2)]
    slots: asyncio.Semaphore = api.client.app[SQL_SLOTS]

    async def both_running() -> bool:
        return slots.locked()

    await until(both_running, "both slow statements running")
    busy = await api.post("/api/v1/sql", json={"sql": "SELECT 1"})
    assert busy.status == 429
    assert busy.headers["Retry-After"] == "1"
    assert "2 statements are running" in error_messages(await busy.json())
    started = time.perf_counter()
    health = await api.client.get("/healthz")
    elapsed = time.perf_counter() - started
    print(f"/healthz beside 2 slow statements: {elapsed * 1000:.1f} ms")
    assert health.status == 200
    assert (await health.json())["store"] is True
    assert elapsed < 1.0
    for task in slow:
        answer = await task
        assert answer.status == 400
        assert "time limit" in error_messages(await answer.json())
    again = await api.post("/api/v1/sql", json={"sql": "SELECT 1 AS one"})
    assert again.status == 200


# -- authentication --------------------------------------------------------------------------


async def test_a_non_utf8_authorization_header_is_401(api: Api) -> None:
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(
            b"GET /api/v1/flows HTTP/1.1\r\n"
            b"Host: localhost\r\n"
            b"Authorization: Bearer \xff\xfe\x80token\r\n"
            b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10.0)
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 401"), answer[:500]
    assert b"missing or invalid bearer token" in answer


# -- object routes and change items ----------------------------------------------------------

FLOW_ACTIVE = "/api/v1/flows/registered-to-nurture/active"


async def test_an_object_route_takes_a_bounded_body(api: Api) -> None:
    """Every object route (flows, mappings, connections, retry, replays, previews) reads at most
    MAX_OBJECT_BYTES: 40 MB of JSON parsed on the loop held control for 11 s."""
    padding = b'{"active": true, "pad": "' + b"x" * MAX_OBJECT_BYTES + b'"}'
    response = await api.post(FLOW_ACTIVE, data=padding, headers=api.auth)
    assert response.status == 413
    assert f"at most {MAX_OBJECT_BYTES} bytes" in error_messages(await response.json())
    allowed = await api.post(FLOW_ACTIVE, json={"active": True})
    assert allowed.status == 200, await allowed.text()


async def test_json_nested_past_the_parser_is_a_400_without_a_traceback(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with caplog.at_level(logging.ERROR):
        response = await api.post(FLOW_ACTIVE, data=deep, headers=api.auth)
    assert response.status == 400
    assert "nested too deeply" in error_messages(await response.json())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_ingested_change_of_a_million_values_is_one_small_rejection(api: Api) -> None:
    """A million wrong answers made a 115 MB answer, a rejected row of a million reasons and
    1.8 GB of control's memory; the item is refused by its size and the rest of the batch kept."""
    huge = registration_json("c-huge", extra={"answers": [1] * 1_000_000})
    many = registration_json("c-many")
    many["registration"]["registrationQuestions"] = [{"code": None}] * 5_000
    items = [registration_json("c-ok", code="R1"), huge, many]
    response = await api.post("/api/v1/changes", data=json.dumps(items), headers=api.auth)
    text = await response.text()
    assert response.status == 207, text[:500]
    assert len(text) < 20_000
    body = json.loads(text)
    assert (body["accepted"], body["rejected"], body["change_ids"]) == (1, 2, ["c-ok"])
    errors = {e["index"]: e for e in body["errors"]}
    assert "more than 50,000 values" in errors[1]["message"]
    assert len(errors[2]["problems"]) == MAX_PROBLEMS + 1
    assert errors[2]["problems"][-1]["message"].startswith(f"and {5_000 - MAX_PROBLEMS:,} more")
    rows = await api.store.query(
        "SELECT change_id, len(reasons) FROM rejected_changes ORDER BY change_id"
    )
    assert [list(r) for r in rows.rows] == [["c-huge", 1], ["c-many", MAX_PROBLEMS + 1]]


async def test_ingest_works_on_two_batches_at_a_time_and_the_rest_wait_unread(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many producers send at once, control holds MAX_INGESTING bodies: a request
    waits for a slot (its body unread) and, past INGEST_WAIT_S, is told to send again."""
    slots = api.client.app[INGEST_SLOTS]
    monkeypatch.setattr(ingest, "INGEST_WAIT_S", 0.2)
    batch = [registration_json("c-wait", code="R9")]
    for _ in range(MAX_INGESTING):
        await slots.acquire()
    try:
        response = await api.post("/api/v1/changes", json=batch)
        body = await response.json()
        assert response.status == 429, body
        assert response.headers["Retry-After"] == "1"
        assert body["accepted"] == 0 and "send this one again" in error_messages(body)
        monkeypatch.setattr(ingest, "INGEST_WAIT_S", 30.0)
        waiting = asyncio.ensure_future(api.post("/api/v1/changes", json=batch))
        await asyncio.sleep(0.2)
        assert not waiting.done()
    finally:
        for _ in range(MAX_INGESTING):
            slots.release()
    response = await asyncio.wait_for(waiting, 30)
    assert response.status == 202, await response.text()
    assert (await response.json())["change_ids"] == ["c-wait"]
