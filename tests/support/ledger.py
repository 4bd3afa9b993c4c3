"""A real ledger for tests of the figures, for every test folder: a DuckDB file opened by the
Store with the `metric_*` views installed (what control does at start), and outcome rows built
in one place so a new column of `OutcomeRow` is given a default once, not in every test module.

Tests date the rows relative to their own `NOW` (the real clock or a FakeClock): the builder
takes the processing time and, unless told, puts the change's occurrence a few seconds before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stream.metrics import views
from stream.store import OutcomeRow, Store


@asynccontextmanager
async def ledger_with_views(folder: Path) -> AsyncIterator[Store]:
    """A new ledger (`signal.duckdb` in `folder`) with the metric views, closed after."""
    store = await Store.open(folder / "signal.duckdb", reader_threads=2, threads=2)
    try:
        await views.install(store)
        yield store
    finally:
        await store.close()


def outcome(
    change_id: str,
    status: str,
    processed_at: datetime,
    *,
    occurred_at: datetime | None = None,
    flow_id: str = "flow-1",
    flow_name: str | None = None,
    mode: str = "live",
    code: str | None = None,
    action: str = "create_update_lead",
    **extra: Any,
) -> OutcomeRow:
    """One outcome of `change_id` on `flow_id`, processed at `processed_at` (the change occurred
    five seconds before unless `occurred_at` says); `extra` sets any other column."""
    return OutcomeRow(
        change_id=change_id,
        flow_id=flow_id,
        flow_name=flow_name or flow_id,
        mode=mode,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        occurred_at=occurred_at or processed_at - timedelta(seconds=5),
        processed_at=processed_at,
        registration_code=code or f"R-{change_id}",
        action=action,
        **extra,
    )
