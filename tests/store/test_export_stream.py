"""The Parquet export's day files are written in bounded pieces: rows spread over more days than
files may be open, in batches out of day order, all land in readable files (DuckDB and pyarrow)
under `day=` folders, with the columns they came with and UTC timestamps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from stream.store import export


def batches(days: int, per_day: int) -> pa.RecordBatchReader:
    schema = pa.schema(
        [
            ("outcome_id", pa.string()),
            ("processed_at", pa.timestamp("us", tz="UTC")),
            ("marketo_lead_id", pa.int64()),
            ("day", pa.date32()),
        ]
    )
    start = datetime(2026, 11, 1, tzinfo=UTC)

    def make() -> list[pa.RecordBatch]:
        out = []
        for round_ in range(per_day):
            # Every batch holds one row of every day, so each day stays pending across batches.
            at = [start + timedelta(days=d, seconds=round_) for d in range(days)]
            out.append(
                pa.record_batch(
                    [
                        pa.array([f"o-{d}-{round_}" for d in range(days)]),
                        pa.array(at, pa.timestamp("us", tz="UTC")),
                        pa.array([round_ if d % 2 else None for d in range(days)], pa.int64()),
                        pa.array([a.date() for a in at], pa.date32()),
                    ],
                    schema=schema,
                )
            )
        return out

    return pa.RecordBatchReader.from_batches(schema, iter(make()))


def test_days_past_the_open_file_limit_all_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "ROW_GROUP_ROWS", 3)
    monkeypatch.setattr(export, "PENDING_ROWS", 7)
    monkeypatch.setattr(export, "MAX_OPEN_FILES", 2)
    files = export._write_parquet(batches(days=6, per_day=10), tmp_path / "outcomes")

    assert all(Path(f).exists() for f in files)
    assert {Path(f).parent.name for f in files} == {
        f"day={date(2026, 11, 1 + d)}" for d in range(6)
    }
    assert len(files) > 6, "a day whose file was closed gets another file"
    table = pq.read_table(tmp_path / "outcomes")
    assert table.num_rows == 60
    assert sorted(table.column("outcome_id").to_pylist()) == sorted(
        f"o-{d}-{r}" for d in range(6) for r in range(10)
    )
    assert table.schema.field("processed_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("marketo_lead_id").type == pa.int64()
    for f in files:
        assert "day" not in pq.read_schema(f).names
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT day, count(*) FROM read_parquet(?, hive_partitioning = true) "
            "GROUP BY day ORDER BY day",
            [str(tmp_path / "outcomes" / "**" / "*.parquet")],
        ).fetchall()
    assert [(str(d), n) for d, n in rows] == [(str(date(2026, 11, 1 + d)), 10) for d in range(6)]


def test_nothing_to_write_writes_no_file(tmp_path: Path) -> None:
    assert export._write_parquet(batches(days=0, per_day=0), tmp_path / "x") == []
