"""`Message.dumps` writes each message's JSON straight from the serialiser: the bytes must be the
ones `model_dump_json` writes (the wire format control reads), and read back the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stream.messages import (
    ConfigSnapshot,
    DeliveryRequest,
    FailureCategory,
    Message,
    OutcomeRecord,
    OutcomeStatus,
    RedriveRequest,
)

AT = datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=UTC)


def messages() -> list[Message]:
    return [
        OutcomeRecord(
            change_id="chg-é-1",
            flow_id="flow",
            flow_name="Flow ✓",
            mode="live",
            status=OutcomeStatus.FAILED,
            category=FailureCategory.DATA,
            reason='email: "missing" \\ \u2028',
            occurred_at=AT,
            processed_at=AT + timedelta(milliseconds=5),
            latency_ms=5.25,
            payload={"firstName": "Ana", "city": "São Paulo"},
            siblings=["other"],
        ),
        DeliveryRequest(
            change_id="chg-1",
            flow_id="flow",
            flow_name="Flow",
            mode="test",
            connection_id="mkto",
            action="create_update_lead",
            occurred_at=AT,
            routed_at=AT,
            received_at=None,
            payload={"email": "ana@example.com"},
            campaign_id=12,
            tokens={"{{my.token}}": "x"},
        ),
        RedriveRequest.model_validate(
            {"change": {"changeId": "c", "n": 1.5}, "redrive": {"flow_id": "f", "attempt": 2}}
        ),
        ConfigSnapshot(version=3, published_at=AT, account={"name": "Acme"}, tested={"m": AT}),
    ]


def test_dumps_writes_the_bytes_model_dump_json_writes() -> None:
    for message in messages():
        raw = message.dumps()
        assert isinstance(raw, bytes)
        assert raw == message.model_dump_json().encode()
        assert type(message).loads(raw) == message
