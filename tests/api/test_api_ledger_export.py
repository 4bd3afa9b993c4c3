"""Parquet export (`POST /api/v1/ledger/exports`, `csignal export`) over a real store: files
partitioned by day, readable by DuckDB and pyarrow with the documented schema, incremental by
the watermark kept in the ledger, audited; bad arguments named by field."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from stream.store import ApiCallRow, ChangeRow, OutcomeRow
from stream.store.export import TABLES
from tests.api.api_harness import Api
from tests.support.changes import change_row, registration_json
from tests.support.clock import recent
from tests.support.processes import clean_env, run_csignal
from tests.support.waiting import until

DAY1 = recent(days=3)
DAY2 = recent(days=2)


def change(change_id: str, when: Any) -> ChangeRow:
    data = registration_json(change_id, code=f"R-{change_id}", occurred_at=when)
    return dataclasses.replace(change_row(data, source="api"), received_at=when)


def outcome(change_id: str, when: Any) -> OutcomeRow:
    return OutcomeRow(
        change_id=change_id,
        flow_id="flow-1",
        flow_name="Flow 1",
        mode="live",
        status="delivered",
        occurred_at=when,
        processed_at=when + timedelta(seconds=1),
        registration_code=f"R-{change_id}",
        marketo_lead_id=4242,
    )


async def seed(api: Api, ids: list[str], when: Any) -> None:
    await api.store.archive_changes([change(i, when) for i in ids])
    await api.store.record_outcomes([outcome(i, when) for i in ids])
    await api.store.record_api_calls(
        [ApiCallRow("conn-1", "/rest/v1/leads.json", when, 120.0, http_status=200)]
    )


async def export(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/api/v1/ledger/exports", json=body)
    job = await response.json()
    assert response.status == 202, job

    async def finished() -> dict[str, Any] | None:
        reply = await (await api.get(f"/api/v1/ledger/jobs/{job['id']}")).json()
        return reply if reply["state"] != "running" else None

    done = await until(finished, "the export finished")
    assert done is not None
    assert done["state"] == "done", done
    return dict(done["result"])


def sizes(files: list[str]) -> int:
    """Bytes of the files (each must exist)."""
    return sum(os.stat(f).st_size for f in files)


def expected_columns(table: str) -> list[str]:
    return [c.split(" AS ")[-1] for c in TABLES[table].columns] + ["day"]


async def test_export_partitions_by_day_and_is_incremental(api: Api, tmp_path: Path) -> None:
    out = tmp_path / "warehouse"
    await seed(api, ["a1", "a2"], DAY1)
    await seed(api, ["b1"], DAY2)

    first = await export(api, {"table": "outcomes", "dir": str(out), "format": "parquet"})
    assert first["rows"] == 3
    assert first["days"] == sorted({str(DAY1.date()), str((DAY2 + timedelta(seconds=1)).date())})
    assert first["bytes"] == sizes(first["files"])

    table = pq.read_table(out / "outcomes")
    assert sorted(table.column("change_id").to_pylist()) == ["a1", "a2", "b1"]
    assert set(table.column_names) == set(expected_columns("outcomes"))
    assert table.schema.field("processed_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("marketo_lead_id").type == pa.int64()
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT change_id, day FROM read_parquet(?, hive_partitioning = true) ORDER BY 1",
            [str(out / "outcomes" / "**" / "*.parquet")],
        ).fetchall()
    assert [r[0] for r in rows] == ["a1", "a2", "b1"]

    again = await export(api, {"table": "outcomes", "dir": str(out)})
    assert again["rows"] == 0 and again["files"] == []

    await seed(api, ["c1"], DAY2)
    third = await export(api, {"table": "outcomes", "dir": str(out)})
    assert third["rows"] == 1
    assert third["watermark_from"] == first["watermark_to"]
    assert sorted(pq.read_table(out / "outcomes").column("change_id").to_pylist()) == [
        "a1",
        "a2",
        "b1",
        "c1",
    ]

    changes = await export(api, {"table": "changes", "dir": str(out), "since": str(DAY2.date())})
    assert changes["rows"] == 2  # b1 and c1: a1 and a2 came before --since
    changes_table = pq.read_table(out / "changes")
    assert set(changes_table.column_names) == set(expected_columns("changes"))
    assert "Ana.Ruiz@Example.com" in changes_table.column("payload").to_pylist()[0]

    calls = await export(api, {"table": "api_calls", "dir": str(out)})
    assert calls["rows"] == 3
    assert set(pq.read_table(out / "api_calls").column_names) == set(expected_columns("api_calls"))

    audit = await api.store.config_audit(kind="ledger")
    assert [str(e.action) for e in audit].count("export") == 5
    assert all(e.actor for e in audit)


async def test_export_refuses_bad_arguments(api: Api, tmp_path: Path) -> None:
    good = {"table": "outcomes", "dir": str(tmp_path / "x")}
    cases = [
        ({**good, "table": "people"}, "table", "expected one of changes, outcomes, api_calls"),
        ({**good, "format": "csv"}, "format", "only parquet"),
        ({**good, "dir": "relative"}, "dir", "absolute path"),
        ({**good, "dir": None}, "dir", "absolute path"),
        ({**good, "since": "last tuesday"}, "since", "ISO 8601"),
        ({**good, "since": 5}, "since", "ISO 8601"),
    ]
    for body, field, text in cases:
        response = await api.post("/api/v1/ledger/exports", json=body)
        reply = await response.json()
        assert response.status == 400, (body, reply)
        assert reply["errors"][0]["path"] == field
        assert text in reply["errors"][0]["message"]
    assert not (tmp_path / "x").exists()


async def test_csignal_export_reports_rows_and_files(api: Api, tmp_path: Path) -> None:
    await seed(api, ["d1", "d2"], DAY1)
    server = api.client.server
    env = clean_env(SIGNAL_API=f"{server.host}:{server.port}", SIGNAL_API_TOKEN=api.token)
    target = tmp_path / "dw"
    code, out, err = await run_csignal("export", "--table", "changes", str(target), env=env)
    assert code == 0, err
    assert "export done: 2 rows in 1 files" in out, out
    assert f"under {target}/changes" in out
    code, out, err = await run_csignal("export", "--table", "changes", str(target), env=env)
    assert code == 0, err
    assert "export done: 0 rows" in out
    code, out, err = await run_csignal(
        "export", "--table", "changes", "--since", "soon", str(target), env=env
    )
    assert code == 1
    assert "since" in err and "ISO 8601" in err
