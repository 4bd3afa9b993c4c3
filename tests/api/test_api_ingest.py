"""`POST /api/v1/changes`: valid items produced once with broker acks, invalid ones reported by
position and field and recorded as rejected."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from stream.api.deps import DEPS
from stream.broker import EmbeddedBroker
from tests.api.api_harness import Api
from tests.support.changes import event_json, registration_json
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


async def test_broker_down_is_503_and_nothing_counts_as_accepted(
    api: Api, broker: EmbeddedBroker
) -> None:
    stopped = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await stopped.start()
    await stopped.stop()

    async def produce(records: Any) -> None:
        for key, value in records:
            await stopped.send("certain-changes-unused", value, key=key)

    api.client.app[DEPS].produce_changes = produce
    api.client.app[DEPS].produce_timeout_s = 1.0
    response = await api.post("/api/v1/changes", json=[registration_json("a"), {"bad": 1}])
    assert response.status == 503
    body = await response.json()
    assert body["accepted"] == 0
    assert body["rejected"] == 1
    assert "send the batch again" in body["errors"][0]["message"]
