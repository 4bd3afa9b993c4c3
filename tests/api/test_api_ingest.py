"""`POST /api/v1/changes`: valid items committed to the ledger, then produced once with broker
acks and marked published; invalid ones reported by position and field and recorded as
rejected. Failure paths: the broker down after the commit (accepted, unpublished, left for
recovery), the ledger down (503, nothing accepted), resends (archived once, published once)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from stream.api.deps import DEPS
from stream.broker import EmbeddedBroker
from stream.store import StoreWriteError
from tests.api.api_harness import Api
from tests.support.changes import change_row, event_json, registration_json
from tests.support.clock import FIXED
from tests.support.topics import read_topic


async def _rejected(api: Api) -> list[list[Any]]:
    result = await api.store.query(
        "SELECT change_id, source, reasons, payload FROM rejected_changes ORDER BY received_at"
    )
    return [list(r) for r in result.rows]


async def test_mixed_batch_valid_produced_once_invalid_reported(api: Api) -> None:
    # A timestamp without its zone (the day is irrelevant: ingest never compares it with now).
    naive = FIXED.replace(tzinfo=None).isoformat()
    bad_time = registration_json("c-bad-time", extra={"occurredAt": naive})
    bad_type = registration_json("c-bad-type", extra={"type": "registration.deleted"})
    no_status = registration_json("c-no-status")
    del no_status["registration"]["registrationStatusLabel"]
    items = [
        registration_json("c-1", code="R1"),
        bad_time,
        event_json(change_id="c-ev"),
        "not an object",
        bad_type,
        registration_json("c-2", code="R2"),
        no_status,
    ]
    response = await api.post("/api/v1/changes", json=items)
    assert response.status == 207
    body = await response.json()
    assert body["accepted"] == 3
    assert body["rejected"] == 4
    assert body["change_ids"] == ["c-1", "c-ev", "c-2"]
    errors = {e["index"]: e for e in body["errors"]}
    assert sorted(errors) == [1, 3, 4, 6]
    assert errors[1]["path"] == "occurredAt"
    assert "timezone" in errors[1]["message"]
    assert errors[3]["path"] == ""
    assert "JSON object" in errors[3]["message"]
    assert errors[4]["path"] == "type"
    assert errors[6]["path"] == "registration.registrationStatusLabel"
    assert all(e["problems"] for e in body["errors"])

    records = await read_topic(
        api.bootstrap, api.changes_topic, until=lambda rs: len(rs) >= 3, settle=0.5
    )
    produced = Counter(json.loads(r.value)["changeId"] for r in records)
    assert produced == Counter({"c-1": 1, "c-ev": 1, "c-2": 1})
    keys = {json.loads(r.value)["changeId"]: r.key for r in records}
    assert keys == {"c-1": b"R1", "c-ev": b"SUMMIT26", "c-2": b"R2"}

    rejected = await _rejected(api)
    assert [r[0] for r in rejected] == ["c-bad-time", None, "c-bad-type", "c-no-status"]
    assert {r[1] for r in rejected} == {"api"}
    assert any("occurredAt" in reason for reason in rejected[0][2])
    assert json.loads(rejected[0][3])["changeId"] == "c-bad-time"


async def test_all_valid_is_202_and_ndjson_works(api: Api) -> None:
    lines = [json.dumps(registration_json(f"n-{i}", code=f"R{i}")) for i in range(3)]
    text = "\n".join([lines[0], "", lines[1], lines[2]]) + "\n"
    response = await api.post(
        "/api/v1/changes",
        data=text.encode(),
        headers={**api.auth, "Content-Type": "application/x-ndjson"},
    )
    assert response.status == 202
    body = await response.json()
    assert body == {
        "accepted": 3,
        "rejected": 0,
        "duplicates": 0,
        "change_ids": ["n-0", "n-1", "n-2"],
        "errors": [],
        "published": True,
    }
    records = await read_topic(api.bootstrap, api.changes_topic, until=lambda rs: len(rs) >= 3)
    assert sorted(r.key for r in records) == [b"R0", b"R1", b"R2"]


async def test_ndjson_bad_line_reports_its_line_number(api: Api) -> None:
    text = json.dumps(registration_json("l-0")) + "\n{oops\n"
    response = await api.post("/api/v1/changes", data=text.encode())
    assert response.status == 207
    errors = (await response.json())["errors"]
    assert errors[0]["index"] == 1
    assert "invalid JSON" in errors[0]["message"]


async def test_single_pretty_printed_object(api: Api) -> None:
    text = json.dumps(registration_json("single"), indent=2)
    response = await api.post("/api/v1/changes", data=text.encode())
    assert response.status == 202
    assert (await response.json())["change_ids"] == ["single"]


async def test_same_change_twice_in_a_batch_is_produced_once(api: Api) -> None:
    item = registration_json("dup")
    response = await api.post("/api/v1/changes", json=[item, item])
    body = await response.json()
    assert response.status == 202
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    records = await read_topic(api.bootstrap, api.changes_topic, settle=0.5)
    assert len(records) == 1


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (b"[1, 2", "invalid JSON array"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
async def test_nothing_valid_is_400(api: Api, data: bytes, fragment: str) -> None:
    response = await api.post("/api/v1/changes", data=data)
    assert response.status == 400
    body = await response.json()
    assert fragment in body["errors"][0]["message"]
    assert body["accepted"] == 0


async def test_all_invalid_is_400_and_recorded(api: Api) -> None:
    response = await api.post("/api/v1/changes", json=[{"changeId": "x"}, 42])
    assert response.status == 400
    body = await response.json()
    assert [e["index"] for e in body["errors"]] == [0, 1]
    assert len(await _rejected(api)) == 2


def _broker_down(api: Api, broker: EmbeddedBroker) -> None:
    """Ingest's producer now fails: a stopped producer raises at once."""

    async def produce(records: Any) -> None:
        stopped = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await stopped.start()
        await stopped.stop()
        for key, value in records:
            await stopped.send("certain-changes-unused", value, key=key)

    api.client.app[DEPS].produce_changes = produce
    api.client.app[DEPS].produce_timeout_s = 1.0


async def _ledger(api: Api) -> list[tuple[Any, ...]]:
    result = await api.store.query(
        "SELECT change_id, source, is_test, published_at IS NOT NULL FROM changes ORDER BY 1"
    )
    return [tuple(r) for r in result.rows]


async def test_accepted_changes_are_in_the_ledger_before_the_answer(api: Api) -> None:
    items = [
        event_json("TESTEV", change_id="ev-test", is_test=True),
        registration_json("r-test", code="RT", event_code="TESTEV"),
        registration_json("r-live", code="RL"),
    ]
    response = await api.post("/api/v1/changes", json=items)
    assert response.status == 202
    assert (await response.json())["published"] is True
    # Archived as control's archive agent would: is_test from the batch's own event change,
    # the event folded into the catalog, published_at set once the broker acknowledged.
    assert await _ledger(api) == [
        ("ev-test", "api", True, True),
        ("r-live", "api", False, True),
        ("r-test", "api", True, True),
    ]
    event = api.config.catalog.get("TESTEV")
    assert event is not None and event.is_test


async def test_broker_down_after_the_commit_still_accepts_and_says_unpublished(
    api: Api, broker: EmbeddedBroker
) -> None:
    _broker_down(api, broker)
    response = await api.post("/api/v1/changes", json=[registration_json("a"), {"bad": 1}])
    assert response.status == 207
    body = await response.json()
    assert (body["accepted"], body["rejected"], body["change_ids"]) == (1, 1, ["a"])
    assert body["published"] is False
    assert "recovery will publish them" in body["message"]
    assert await _ledger(api) == [("a", "api", False, False)]
    waiting = await api.store.unpublished_changes(datetime.now(UTC))
    assert [r.change_id for r in waiting] == ["a"]
    assert len(await _rejected(api)) == 1


async def test_ledger_failure_is_503_and_nothing_counts_as_accepted(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*_: Any) -> Any:
        raise StoreWriteError("write rolled back: disk full")

    monkeypatch.setattr(api.store, "accept_changes", refuse)
    items = [registration_json("a"), event_json("NEWEV", change_id="ev-new"), {"bad": 1}]
    response = await api.post("/api/v1/changes", json=items)
    assert response.status == 503
    body = await response.json()
    assert (body["accepted"], body["rejected"]) == (0, 1)
    assert "send the batch again" in body["errors"][0]["message"]
    assert api.config.catalog.get("NEWEV") is None
    records = await read_topic(api.bootstrap, api.changes_topic, until=lambda rs: False, within=0.5)
    assert records == []


async def test_a_resent_change_is_archived_once_and_published_once(
    api: Api, broker: EmbeddedBroker
) -> None:
    deps = api.client.app[DEPS]
    produce = deps.produce_changes
    _broker_down(api, broker)
    first = await api.post("/api/v1/changes", json=[registration_json("a", code="RA")])
    assert (first.status, (await first.json())["published"]) == (202, False)

    deps.produce_changes = produce
    # The client sends again: the change is not archived twice, its publication completes.
    again = await api.post("/api/v1/changes", json=[registration_json("a", code="RA")])
    assert (again.status, (await again.json())["published"]) == (202, True)
    assert await _ledger(api) == [("a", "api", False, True)]
    # Once more, now that it is published: nothing is produced again.
    third = await api.post("/api/v1/changes", json=[registration_json("a", code="RA")])
    assert (third.status, await third.json()) == (
        202,
        {"accepted": 1, "rejected": 0, "duplicates": 0, "change_ids": ["a"], "errors": [],
         "published": True},
    )  # fmt: skip
    records = await read_topic(
        api.bootstrap, api.changes_topic, until=lambda rs: len(rs) >= 1, settle=0.5
    )
    assert [(r.key, json.loads(r.value)["changeId"]) for r in records] == [(b"RA", "a")]
    count = await api.store.query("SELECT count(*) FROM changes")
    assert count.rows == ((1,),)


async def test_a_resent_change_too_big_for_the_broker_leaves_the_others_published(
    api: Api,
) -> None:
    """A ledger from before every way in bounded a change's size holds `big`, accepted over a
    megabyte and never published. The client sends it again (its id is stored, so the stored
    row is what would be published) beside a new change: the new one is published and marked
    at once, `big` is named in the answer and left to recovery, which sets it aside."""
    huge = registration_json("big", code="RBIG", profile={"firstName": "x" * 1_100_000})
    await api.store.accept_changes([change_row(huge, received_at=FIXED)])
    batch = [registration_json("big", code="RBIG"), registration_json("new", code="RNEW")]
    response = await api.post("/api/v1/changes", json=batch)
    body = await response.json()
    assert response.status == 202, body
    assert body["published"] is False and body["change_ids"] == ["big", "new"]
    assert "too big for the broker ever to take (big)" in body["message"], body
    records = await read_topic(
        api.bootstrap, api.changes_topic, until=lambda rs: len(rs) >= 1, settle=0.5
    )
    assert [json.loads(r.value)["changeId"] for r in records] == ["new"]
    marked = await api.store.query(
        "SELECT change_id, published_at IS NOT NULL FROM changes ORDER BY 1"
    )
    assert marked.rows == (("big", False), ("new", True))


# -- poisoned items (issue 11, item 5): one bad item never takes its batch down ---------------


def _escaped(items: list[Any]) -> bytes:
    """A JSON array as a producer may write it: non-ASCII (a lone surrogate too) as escapes."""
    return json.dumps(items, ensure_ascii=True).encode()


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def _deep_item_text(change_id: str, depth: int) -> str:
    """An item nested `depth` levels deep, written without recursion (json.dumps would hit
    Python's recursion limit)."""
    item = json.dumps(registration_json(change_id))
    return item[:-1] + ', "x": ' + "[" * depth + '"deep"' + "]" * depth + "}"


async def _rows(api: Api, sql: str) -> list[list[Any]]:
    return [list(r) for r in (await api.store.query(sql)).rows]


async def test_lone_surrogate_is_one_rejection_and_stored_escaped(api: Api) -> None:
    poisoned = registration_json("c-surrogate", profile={"firstName": "An\udc80a"})
    items = [registration_json("c-ok-1", code="R1"), poisoned, registration_json("c-ok-2")]
    response = await api.post("/api/v1/changes", data=_escaped(items))
    assert response.status == 207
    body = await response.json()
    assert body["change_ids"] == ["c-ok-1", "c-ok-2"]
    [error] = body["errors"]
    assert error["index"] == 1
    assert error["path"] == "registration.profile.firstName"
    assert "surrogate" in error["message"]
    # Kept in the ledger with the surrogate escaped; the database reads and writes on.
    [row] = await _rows(api, "SELECT change_id, source, payload FROM rejected_changes")
    assert row[:2] == ["c-surrogate", "api"]
    assert json.loads(row[2])["registration"]["profile"]["firstName"] == "An\udc80a"
    assert "\\udc80" in row[2]
    again = await api.post("/api/v1/changes", json=[registration_json("c-after")])
    assert again.status == 202
    count = await _rows(api, "SELECT count(*) FROM changes")
    assert count == [[3]]


async def test_lone_surrogate_in_a_key_or_ndjson_line(api: Api) -> None:
    keyed = registration_json("c-key", extra={"odd\ud800": 1})
    lines = [json.dumps(registration_json("n-ok")), json.dumps(keyed, ensure_ascii=True)]
    response = await api.post("/api/v1/changes", data="\n".join(lines).encode())
    assert response.status == 207
    [error] = (await response.json())["errors"]
    assert error["index"] == 1 and "surrogate" in error["message"]
    assert "\\ud800" in error["path"]
    rejected = await _rows(api, "SELECT reasons, payload FROM rejected_changes")
    assert "\\ud800" in rejected[0][1]


@pytest.mark.parametrize("depth", [100, 1000, 5000])
async def test_deeply_nested_item_is_one_rejection(api: Api, depth: int) -> None:
    text = (
        "["
        + json.dumps(registration_json("d-ok-1"))
        + ","
        + _deep_item_text("d-deep", depth)
        + ","
        + json.dumps(registration_json("d-ok-2"))
        + "]"
    )
    response = await api.post("/api/v1/changes", data=text.encode())
    assert response.status == 207, await response.text()
    body = await response.json()
    assert body["change_ids"] == ["d-ok-1", "d-ok-2"]
    [error] = body["errors"]
    assert error["index"] == 1
    assert "nested deeper than" in error["message"]
    [row] = await _rows(api, "SELECT source, payload FROM rejected_changes")
    assert row[0] == "api" and "d-deep" in row[1]


async def test_deeply_nested_ndjson_line_and_single_object(api: Api) -> None:
    lines = [json.dumps(registration_json("l-ok")), _deep_item_text("l-deep", 3000)]
    response = await api.post("/api/v1/changes", data="\n".join(lines).encode())
    assert response.status == 207
    [error] = (await response.json())["errors"]
    assert error["index"] == 1 and "nested deeper than" in error["message"]

    single = await api.post("/api/v1/changes", data=_deep_item_text("s-deep", 3000).encode())
    assert single.status == 400
    [error] = (await single.json())["errors"]
    assert error["index"] == 0 and "nested deeper than" in error["message"]
    assert len(await _rows(api, "SELECT 1 FROM rejected_changes")) == 2


async def test_item_over_the_broker_message_limit_is_one_rejection(api: Api) -> None:
    huge = registration_json("big", extra={"notes": "x" * 1_100_000})
    items = [registration_json("small", code="RS"), huge]
    response = await api.post("/api/v1/changes", json=items)
    assert response.status == 207, await response.text()
    body = await response.json()
    assert (body["change_ids"], body["published"]) == (["small"], True)
    [error] = body["errors"]
    assert error["index"] == 1
    assert "broker" in error["message"] and "1,000,000" in error["message"]
    [row] = await _rows(api, "SELECT change_id, source FROM rejected_changes")
    assert row == ["big", "api"]
    records = await read_topic(api.bootstrap, api.changes_topic, until=lambda rs: len(rs) >= 1)
    assert [r.key for r in records] == [b"RS"]


async def test_unreadable_item_in_an_array_leaves_the_others(api: Api) -> None:
    ok = [json.dumps(registration_json(f"a-{i}")) for i in range(3)]
    text = f"[{ok[0]}, {{oops: 1}}, {ok[1]} , 12 34, {ok[2]}]"
    response = await api.post("/api/v1/changes", data=text.encode())
    assert response.status == 207
    body = await response.json()
    assert body["change_ids"] == ["a-0", "a-1", "a-2"]
    assert [e["index"] for e in body["errors"]] == [1, 3]
    assert all("invalid JSON" in e["message"] for e in body["errors"])
    payloads = await _rows(api, "SELECT payload FROM rejected_changes ORDER BY payload")
    assert [p[0] for p in payloads] == ["12 34", "{oops: 1}"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[{"changeId": "a"}, {"changeId": "b', "line 1 column 34"),
        ('[{"changeId": "a"}}, {"changeId": "b"}]', "line 1 column 19"),
        ('[\n  {"changeId": "a"},\n  {"changeId": "b"}', "line 3"),
    ],
)
async def test_an_array_that_cannot_be_split_is_400_naming_the_position(
    api: Api, text: str, where: str
) -> None:
    response = await api.post("/api/v1/changes", data=text.encode())
    assert response.status == 400
    [error] = (await response.json())["errors"]
    assert error["index"] is None
    assert "invalid JSON array" in error["message"] and where in error["message"]


async def test_body_over_the_limit_is_413_naming_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stream.api.ingest.MAX_BODY_BYTES", 4096)
    body = json.dumps([registration_json(f"b-{i}") for i in range(10)]).encode()
    assert len(body) > 4096
    response = await api.post("/api/v1/changes", data=body)
    assert response.status == 413
    assert "4,096 bytes" in (await response.json())["errors"][0]["message"]

    async def chunks() -> Any:  # no Content-Length: counted as it arrives
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    streamed = await api.post("/api/v1/changes", data=chunks())
    assert streamed.status == 413
    assert await _rows(api, "SELECT count(*) FROM changes") == [[0]]
    small = await api.post("/api/v1/changes", json=[registration_json("fits")])
    assert small.status == 202
