"""Backups of the ledger taken while control runs, and their restore into a stopped installation.

A backup is a new DuckDB file (`signal.duckdb` in the backup directory) plus a manifest
(`backup.json`). It is written from one read transaction on the live ledger, so every table is
copied as of the same instant (DuckDB's MVCC snapshot) while recording goes on; the live file is
never copied byte for byte (a copy of a file being written can be torn). The rows travel as Arrow
batches into a second, private DuckDB instance that owns the backup file: the ledger's own
instance keeps external access off, and the backup file gets the build's schema (`migrate`) with
the source's `schema_version` rows, sequences advanced past the source's.

Restoring copies the backup file into a data directory whose control is stopped (the ledger's
lock proves it), after checking the backup's schema version against this build.

Secrets (`secrets.json`, the sealing key, API tokens) live beside the ledger, not in it, and are
never part of a backup.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from stream.store.errors import StoreError, StoreLockedError
from stream.store.schema import current_version, latest_version, migrate
from stream.store.writer import Con

BACKUP_FILE = "signal.duckdb"
MANIFEST_FILE = "backup.json"
BATCH_ROWS = 50_000
"""Rows per Arrow batch: progress granularity, and the most one batch holds in memory."""
BACKUP_MEMORY_LIMIT = "256MB"
"""For the private instance writing the backup file; the ledger's own limits bound the reads."""

Progress = Callable[[str, int, int], None]
"""(table, rows copied so far in it, rows in it)."""


class BackupError(StoreError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    directory: str
    schema_version: int
    taken_at: str
    tables: dict[str, int]
    bytes: int
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RestoreReport:
    data_dir: str
    schema_version: int
    tables: dict[str, int]
    bytes: int
    replaced: dict[str, int] = field(default_factory=dict)
    """Rows per table of the ledger the restore replaced (with --force)."""


def base_tables(con: Con) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary "
        "ORDER BY table_name"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _columns(con: Con, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? "
        "ORDER BY column_index",
        [table],
    ).fetchall()
    return [str(r[0]) for r in rows]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_target(directory: Path) -> None:
    """A backup goes into a new or empty directory, given as an absolute path."""
    if not directory.is_absolute():
        raise BackupError(f"dir: expected an absolute path, got {str(directory)!r}")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BackupError(
            f"dir: {directory} already exists and is not an empty directory; "
            "choose a new directory for each backup"
        )


def take_backup(source: Con, directory: Path, progress: Progress | None = None) -> BackupReport:
    """Copy the ledger, as of one instant, into `directory` (blocking; a reader thread).

    `source` is a cursor of the live ledger; the copy runs in one read transaction on a child
    cursor of it, so writers go on meanwhile.
    """
    check_target(directory)
    started = datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / (BACKUP_FILE + ".partial")
    snapshot = source.cursor()
    target = duckdb.connect(
        str(partial),
        config={
            "memory_limit": BACKUP_MEMORY_LIMIT,
            "threads": 1,
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
        },
    )
    try:
        snapshot.execute("BEGIN TRANSACTION")
        version = current_version(snapshot)
        if version > latest_version():
            raise BackupError(f"the ledger's schema version {version} is newer than this build")
        migrate(target)
        # Each batch commits on its own: one transaction over the whole ledger would have to
        # hold it in memory, and the file is only renamed into place once complete.
        target.execute("DELETE FROM schema_version")
        counts: dict[str, int] = {}
        target_tables = set(base_tables(target))
        for table in base_tables(snapshot):
            if table not in target_tables:
                raise BackupError(f"table {table} of the ledger is unknown to this build")
            counts[table] = _copy_table(snapshot, target, table, progress)
        _advance_sequences(snapshot, target)
        snapshot.execute("COMMIT")
        target.execute("FORCE CHECKPOINT")
        target.close()
        final = directory / BACKUP_FILE
        partial.rename(final)
        size = final.stat().st_size
        report = BackupReport(
            directory=str(directory),
            schema_version=version,
            taken_at=started.isoformat(),
            tables=counts,
            bytes=size,
            elapsed_s=round((datetime.now(UTC) - started).total_seconds(), 3),
        )
        manifest = directory / MANIFEST_FILE
        manifest.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        return report
    except BaseException:
        with contextlib.suppress(duckdb.Error, OSError):
            target.close()
        with contextlib.suppress(duckdb.Error, OSError):
            snapshot.execute("ROLLBACK")
        for leftover in (partial, Path(str(partial) + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(duckdb.Error, OSError):
            snapshot.close()


def _copy_table(snapshot: Con, target: Con, table: str, progress: Progress | None) -> int:
    wanted = set(_columns(target, table))
    columns = [c for c in _columns(snapshot, table) if c in wanted]
    listed = ", ".join(_quoted(c) for c in columns)
    total = int(snapshot.execute(f"SELECT count(*) FROM {_quoted(table)}").fetchall()[0][0])
    if progress is not None:
        progress(table, 0, total)
    reader = snapshot.sql(f"SELECT {listed} FROM {_quoted(table)}").to_arrow_reader(BATCH_ROWS)
    if reader is None:
        raise BackupError(f"table {table}: DuckDB gave no rows to read")
    done = 0
    for batch in reader:
        target.register("backup_batch", batch)
        try:
            target.execute(
                f"INSERT INTO {_quoted(table)} ({listed}) SELECT {listed} FROM backup_batch"
            )
        finally:
            target.unregister("backup_batch")
        done += batch.num_rows
        if progress is not None:
            progress(table, done, total)
    return done


def _advance_sequences(snapshot: Con, target: Con) -> None:
    """Sequences (the audit's `seq`) continue after the source's last value."""
    rows = snapshot.execute(
        "SELECT sequence_name, last_value FROM duckdb_sequences() "
        "WHERE database_name = current_database() AND last_value IS NOT NULL"
    ).fetchall()
    for name, last in rows:
        target.execute(f"SELECT max(nextval('{name}')) FROM range(?)", [int(last)])


# -- restore ------------------------------------------------------------------------------------


def read_manifest(directory: Path) -> dict[str, Any]:
    """The backup's manifest; a directory without one (or without its file) is not a backup."""
    manifest = directory / MANIFEST_FILE
    if not directory.exists():
        raise BackupError(
            f"{directory} does not exist: expected a directory written by csignal backup"
        )
    if not (directory / BACKUP_FILE).is_file() or not manifest.is_file():
        raise BackupError(
            f"{directory} is not a Signal backup: expected {BACKUP_FILE} and {MANIFEST_FILE} "
            "(written by csignal backup)"
        )
    try:
        body = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BackupError(f"{manifest}: unreadable manifest: {error}") from None
    if not isinstance(body, dict):
        raise BackupError(f"{manifest}: expected a JSON object")
    return body


def _ledger_counts(con: Con) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in base_tables(con):
        if table == "schema_version":
            continue
        counts[table] = int(con.execute(f"SELECT count(*) FROM {_quoted(table)}").fetchall()[0][0])
    return counts


def restore_backup(directory: Path, data_dir: Path, *, force: bool = False) -> RestoreReport:
    """Put the backup in `directory` in place of `data_dir`'s ledger (control must be stopped).

    Refuses a backup from a newer build, a running control (its lock on the ledger), and a
    ledger that already holds rows unless `force`.
    """
    read_manifest(directory)
    source = directory / BACKUP_FILE
    try:
        backup = duckdb.connect(str(source), read_only=True)
    except duckdb.Error as error:
        raise BackupError(f"{source}: not a readable DuckDB file: {error}") from None
    try:
        version = int(
            backup.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
        )
        tables = _ledger_counts(backup)
    except duckdb.Error as error:
        raise BackupError(f"{source}: not a Signal ledger: {error}") from None
    finally:
        backup.close()
    newest = latest_version()
    if version > newest:
        raise BackupError(
            f"the backup's schema version {version} is newer than this build supports "
            f"({newest}); restore it with the Signal version that took it"
        )
    ledger = data_dir / BACKUP_FILE
    replaced: dict[str, int] = {}
    if ledger.exists():
        try:
            live = duckdb.connect(str(ledger))
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise StoreLockedError(
                    f"{ledger} is in use: stop control (and csignal run) before restoring"
                ) from None
            raise BackupError(f"{ledger}: cannot open: {error}") from None
        try:
            replaced = {t: n for t, n in _ledger_counts(live).items() if n}
        finally:
            live.close()
        if replaced and not force:
            held = ", ".join(f"{t} {n}" for t, n in sorted(replaced.items()))
            raise BackupError(f"{ledger} already holds rows ({held}); add --force to replace them")
    data_dir.mkdir(parents=True, exist_ok=True)
    staged = data_dir / (BACKUP_FILE + ".restoring")
    shutil.copyfile(source, staged)
    with staged.open("rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(staged, 0o600)
    Path(str(ledger) + ".wal").unlink(missing_ok=True)
    staged.replace(ledger)
    return RestoreReport(
        data_dir=str(data_dir),
        schema_version=version,
        tables=tables,
        bytes=ledger.stat().st_size,
        replaced=replaced,
    )
