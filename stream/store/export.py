"""Parquet exports of the ledger for warehouses: changes, outcome attempts and Marketo calls,
partitioned by day, incremental by a watermark kept in the ledger (`ledger_exports`).

Each run reads, in one read transaction on the live ledger, the rows recorded after the last
run's watermark for that table and destination (`recorded_at`, the writer's commit order, so a
row committed later never hides behind the watermark) and streams them as Arrow batches to
pyarrow's Parquet writer, one file per day open at a time, writing a day's rows as a row group
once enough of them wait (`_DayFiles`): memory stays bounded whatever the size. (A private
DuckDB instance's `COPY … PARTITION_BY (day)` kept a row group buffered per open day file and
ran out of its 256 MB on 10M outcomes.) The ledger's own instance keeps external access off.
The caller saves the new watermark once the files are written: a run that fails before leaves
the watermark where it was, so the next run writes those rows again (at least once; every row
carries its key for a warehouse to deduplicate).

Layout: `DIR/<table>/day=YYYY-MM-DD/part-<uuid>.parquet`, `day` the UTC date of the row's
time (`received_at`, `processed_at`, `started_at`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from stream.store.errors import StoreError
from stream.store.writer import Con

BATCH_ROWS = 50_000
ROW_GROUP_ROWS = 50_000
"""Rows of a day written together as one row group (at most)."""
PENDING_ROWS = 100_000
"""Rows waiting across all days before the fullest day is written."""
MAX_OPEN_FILES = 4
"""Day files open at once: an open writer holds about 5 MB (32 open took 217 MB on 1M outcomes,
4 took 63 MB); rows come roughly in time order, so a closed day is rarely seen again."""


class ExportError(StoreError):
    """An export that cannot be done; the message names the field and what was expected."""


@dataclass(frozen=True, slots=True)
class ExportTable:
    source: str
    time_column: str
    columns: tuple[str, ...]


TABLES: dict[str, ExportTable] = {
    "changes": ExportTable(
        "change_log",
        "received_at",
        (
            "change_id",
            "type",
            "account_code",
            "event_code",
            "registration_code",
            "is_test",
            "occurred_at",
            "received_at",
            "payload::VARCHAR AS payload",
            "source",
            "published_at",
            "recorded_at",
        ),
    ),
    "outcomes": ExportTable(
        "outcome_log",
        "processed_at",
        (
            "outcome_id",
            "change_id",
            "flow_id",
            "attempt",
            "flow_name",
            "mode",
            "registration_code",
            "event_code",
            "action",
            "status",
            "category",
            "reason",
            "marketo_lead_id",
            "lead_result",
            "replayed",
            "possible_repeat",
            "occurred_at",
            "processed_at",
            "latency_ms",
            "request_id",
            "connection_id",
            "marketo_code",
            "replay_id",
            "recorded_at",
        ),
    ),
    "api_calls": ExportTable(
        "api_call_log",
        "started_at",
        (
            "connection_id",
            "endpoint",
            "method",
            "started_at",
            "duration_ms",
            "http_status",
            "marketo_error",
            "batch_size",
            "request_id",
            "error_class",
            "recorded_at",
        ),
    ),
}
"""What `--table` names, and the columns each export has (plus `day`, the partition)."""

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class ExportRequest:
    table: str
    directory: Path
    since: datetime | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ExportRequest:
        table = body.get("table")
        if table not in TABLES:
            raise ExportError(f"table: expected one of {', '.join(TABLES)}, got {table!r}")
        fmt = body.get("format", "parquet")
        if fmt != "parquet":
            raise ExportError(f"format: only parquet is supported, got {fmt!r}")
        value = body.get("dir")
        if not isinstance(value, str) or not Path(value).is_absolute():
            raise ExportError(f"dir: expected an absolute path on control's host, got {value!r}")
        since = body.get("since")
        when: datetime | None = None
        if since is not None:
            if not isinstance(since, str):
                raise ExportError(f"since: expected an ISO 8601 date or time, got {since!r}")
            try:
                when = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                raise ExportError(
                    f"since: expected an ISO 8601 date or time (2026-12-01 or "
                    f"2026-12-01T08:00:00Z), got {since!r}"
                ) from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
        return cls(str(table), Path(value), when)

    @property
    def destination(self) -> str:
        return str(self.directory / self.table)


@dataclass(frozen=True, slots=True)
class ExportReport:
    table: str
    destination: str
    rows: int
    files: list[str]
    bytes: int
    watermark_from: str | None
    watermark_to: str | None
    days: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def watermark_of(con: Con, table: str, destination: str) -> datetime | None:
    rows = con.execute(
        "SELECT watermark FROM ledger_exports WHERE table_name = ? AND destination = ?",
        [table, destination],
    ).fetchall()
    return rows[0][0] if rows else None


def export_table(source: Con, request: ExportRequest, progress: Progress | None) -> ExportReport:
    """Write the rows recorded since the watermark as Parquet (blocking; a reader thread).
    Does not move the watermark: `save_watermark` does, once the caller knows the files are
    written."""
    spec = TABLES[request.table]
    destination = request.destination
    snapshot = source.cursor()
    try:
        snapshot.execute("BEGIN TRANSACTION")
        previous = watermark_of(snapshot, request.table, destination)
        where = ["recorded_at <= ?"]
        params: list[Any] = []
        if previous is not None:
            where.append("recorded_at > ?")
            params.append(previous)
        if request.since is not None:
            where.append(f"{spec.time_column} >= ?")
            params.append(request.since)
        upper_row = snapshot.execute(
            f"SELECT max(recorded_at), count(*) FROM {spec.source} "
            f"WHERE {' AND '.join(where[1:]) or 'true'}",
            params,
        ).fetchall()[0]
        upper, total = upper_row[0], int(upper_row[1])
        if upper is None:
            snapshot.execute("COMMIT")
            return ExportReport(
                request.table, destination, 0, [], 0, _iso(previous), _iso(previous), []
            )
        if progress is not None:
            progress(request.table, 0, total)
        columns = ", ".join(spec.columns)
        reader = snapshot.sql(
            f"SELECT {columns}, CAST({spec.time_column} AS DATE) AS day FROM {spec.source} "
            f"WHERE {' AND '.join(where)}",
            params=[upper, *params],
        ).to_arrow_reader(BATCH_ROWS)
        if reader is None:
            raise ExportError(f"table {spec.source}: DuckDB gave no rows to read")
        counted = _Counted(reader, request.table, total, progress)
        files = _write_parquet(counted.reader(), request.directory / request.table)
        snapshot.execute("COMMIT")
    finally:
        snapshot.close()
    size = sum(Path(f).stat().st_size for f in files)
    days = sorted({Path(f).parent.name.removeprefix("day=") for f in files})
    return ExportReport(
        request.table, destination, counted.rows, files, size, _iso(previous), _iso(upper), days
    )


class _Counted:
    """An Arrow reader that reports progress as DuckDB's COPY pulls batches from it."""

    def __init__(
        self, source: pa.RecordBatchReader, table: str, total: int, progress: Progress | None
    ) -> None:
        self._source = source
        self._table = table
        self._total = total
        self._progress = progress
        self.rows = 0

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for batch in self._source:
            self.rows += batch.num_rows
            if self._progress is not None:
                self._progress(self._table, self.rows, self._total)
            yield batch

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self._source.schema, self._batches())


class _DayFiles:
    """Parquet files by day, written from record batches in bounded pieces.

    Rows wait per day until the day has `ROW_GROUP_ROWS` of them or all days together hold
    more than `PENDING_ROWS` (then the fullest day is written), so memory holds at most that
    many rows plus one batch, whatever the export's size; each write is a closed row group on
    disk. At most `MAX_OPEN_FILES` files are open; a day whose file was closed gets another
    `part-<uuid>` file (a day may have several, as with repeated runs)."""

    def __init__(self, target: Path, schema: pa.Schema) -> None:
        self._target = target
        self._schema = pa.schema([f for f in schema if f.name != "day"])
        self._pending: dict[str, list[pa.RecordBatch]] = {}
        self._pending_rows: dict[str, int] = {}
        self._open: dict[str, pq.ParquetWriter] = {}
        self.files: list[str] = []

    def add(self, batch: pa.RecordBatch) -> None:
        days = batch.column("day")
        columns = [batch.schema.get_field_index(f.name) for f in self._schema]
        for day in pc.unique(days).to_pylist():
            mask = pc.is_null(days) if day is None else pc.equal(days, pa.scalar(day, days.type))
            rows = batch.filter(mask).select(columns)
            name = "NULL" if day is None else str(day)
            self._pending.setdefault(name, []).append(rows)
            self._pending_rows[name] = self._pending_rows.get(name, 0) + rows.num_rows
            if self._pending_rows[name] >= ROW_GROUP_ROWS:
                self._flush(name)
        while sum(self._pending_rows.values()) > PENDING_ROWS:
            self._flush(max(self._pending_rows, key=self._pending_rows.__getitem__))

    def _flush(self, day: str) -> None:
        batches = self._pending.pop(day)
        self._pending_rows.pop(day)
        table = pa.Table.from_batches(batches, schema=self._schema)
        self._writer(day).write_table(table, row_group_size=ROW_GROUP_ROWS)

    def _writer(self, day: str) -> pq.ParquetWriter:
        writer = self._open.pop(day, None)
        if writer is None:
            if len(self._open) >= MAX_OPEN_FILES:
                oldest = next(iter(self._open))
                self._open.pop(oldest).close()
            folder = self._target / f"day={day}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-{uuid.uuid4()}.parquet"
            writer = pq.ParquetWriter(str(path), self._schema, compression="snappy")
            self.files.append(str(path))
        self._open[day] = writer  # most recently used last
        return writer

    def close(self) -> None:
        try:
            for day in list(self._pending):
                self._flush(day)
        finally:
            for writer in self._open.values():
                writer.close()
            self._open.clear()


def _write_parquet(reader: pa.RecordBatchReader, target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    files = _DayFiles(target, reader.schema)
    try:
        for batch in reader:
            files.add(batch)
    finally:
        files.close()
    return sorted(files.files)


def save_watermark(con: Con, report: ExportReport) -> None:
    """Record the export's new watermark (on the writer, once the files are written)."""
    if report.watermark_to is None or report.rows == 0:
        return
    con.execute(
        "INSERT INTO ledger_exports VALUES (?, ?, ?::TIMESTAMPTZ, ?, now()) "
        "ON CONFLICT (table_name, destination) DO UPDATE SET watermark = excluded.watermark, "
        "rows_exported = ledger_exports.rows_exported + excluded.rows_exported, "
        "exported_at = excluded.exported_at",
        [report.table, report.destination, report.watermark_to, report.rows],
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
