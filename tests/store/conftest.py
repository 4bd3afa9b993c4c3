from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.store import ChangeRow, OutcomeRow, Store

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def change(change_id: str, *, minutes: int = 0, **overrides: Any) -> ChangeRow:
    fields: dict[str, Any] = {
        "change_id": change_id,
        "type": "registration.status_change",
        "account_code": "ACME",
        "event_code": "SUMMIT26",
        "registration_code": f"R-{change_id}",
        "is_test": False,
        "occurred_at": T0 + timedelta(minutes=minutes),
        "received_at": T0 + timedelta(minutes=minutes, seconds=1),
        "payload": json.dumps({"changeId": change_id, "type": "registration.status_change"}),
    }
    fields.update(overrides)
    return ChangeRow(**fields)


def outcome(change_id: str, flow_id: str = "flow-1", **overrides: Any) -> OutcomeRow:
    fields: dict[str, Any] = {
        "change_id": change_id,
        "flow_id": flow_id,
        "flow_name": f"Flow {flow_id}",
        "mode": "live",
        "status": "delivered",
        "occurred_at": T0,
        "processed_at": T0 + timedelta(seconds=2),
        "registration_code": f"R-{change_id}",
        "event_code": "SUMMIT26",
        "action": "create_update_lead",
        "lead_result": "created",
        "marketo_lead_id": 1001,
        "latency_ms": 2000.0,
    }
    fields.update(overrides)
    return OutcomeRow(**fields)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "signal.duckdb"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(db_path, reader_threads=2, threads=2)
    try:
        yield s
    finally:
        await s.close()
