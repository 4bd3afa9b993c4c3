from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.store import ChangeRow, OutcomeRow, Store
from tests.support.changes import change_row, registration_json
from tests.support.clock import FIXED

T0 = FIXED  # store code takes its times as arguments: the date itself does not matter


def change(change_id: str, *, minutes: int = 0, **overrides: Any) -> ChangeRow:
    """The archive row of a registration change `minutes` after T0 (the shared factory's change,
    as read from the topic); `overrides` replace row fields."""
    data = registration_json(
        change_id, code=f"R-{change_id}", occurred_at=T0 + timedelta(minutes=minutes)
    )
    return dataclasses.replace(change_row(data, source="topic"), **overrides)


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
