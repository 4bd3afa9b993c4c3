"""`POST /api/v1/sql`: guarded read-only SQL."""

from __future__ import annotations

import pytest

from tests.api.api_harness import Api


async def test_select_over_the_views(api: Api) -> None:
    response = await api.post(
        "/api/v1/sql",
        json={"sql": "SELECT object, object_id, actor FROM config_audit ORDER BY seq"},
    )
    assert response.status == 200
    body = await response.json()
    assert [c["name"] for c in body["columns"]] == ["object", "object_id", "actor"]
    assert ["flow", "registered-to-nurture", "system:account.yaml"] in body["rows"]
    assert body["truncated"] is False
    assert body["row_count"] == len(body["rows"])


async def test_max_rows_truncates(api: Api) -> None:
    response = await api.post(
        "/api/v1/sql", json={"sql": "SELECT * FROM range(10) t(n)", "max_rows": 3}
    )
    body = await response.json()
    assert body["rows"] == [[0], [1], [2]]
    assert body["truncated"] is True


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("DELETE FROM change_log", "DELETE"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("ATTACH 'x.duckdb' AS x", "ATTACH"),
    ],
)
async def test_refused_statements_say_why(api: Api, sql: str, fragment: str) -> None:
    response = await api.post("/api/v1/sql", json={"sql": sql})
    assert response.status == 400
    body = await response.json()
    assert body["refused"] is True
    assert body["errors"][0]["path"] == "sql"
    assert fragment in body["errors"][0]["message"]


async def test_failed_statement_is_400_with_duckdbs_message(api: Api) -> None:
    response = await api.post("/api/v1/sql", json={"sql": "SELECT no_such_column FROM changes"})
    assert response.status == 400
    body = await response.json()
    assert body["refused"] is False
    assert "no_such_column" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, "sql"),
        ({"sql": "  "}, "sql"),
        ({"sql": "SELECT 1", "max_rows": 0}, "max_rows"),
        ({"sql": "SELECT 1", "max_rows": "ten"}, "max_rows"),
        ({"sql": "SELECT 1", "max_rows": 1_000_000}, "max_rows"),
    ],
)
async def test_bad_bodies(api: Api, body: dict[str, object], path: str) -> None:
    response = await api.post("/api/v1/sql", json=body)
    assert response.status == 422
    assert (await response.json())["errors"][0]["path"] == path
