"""`GET /api/v1/ledger/retention`: disk use and the oldest row each table keeps, read from the
real DuckDB file behind the API; an unauthenticated caller is refused."""

from __future__ import annotations

from stream.store import ApiCallRow
from tests.api.api_harness import Api
from tests.support.clock import recent


async def test_retention_status_names_disk_use_and_oldest_rows(api: Api) -> None:
    oldest = recent(days=3)
    await api.store.record_api_calls(
        [ApiCallRow("mkto", "/rest/v1/leads.json", oldest, 5.0, http_status=200)]
    )
    reply = await api.get("/api/v1/ledger/retention")
    assert reply.status == 200
    body = await reply.json()
    assert body["file_bytes"]["database"] > 0
    assert body["oldest"]["api_call_log"] == oldest.isoformat()
    assert body["oldest"]["outcome_log"] is None
    assert body["policy"] is None  # no pruner runs behind this API


async def test_retention_status_needs_a_token(api: Api) -> None:
    reply = await api.client.get("/api/v1/ledger/retention")
    assert reply.status == 401
