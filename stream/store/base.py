"""The core of `Store`: the database it owns, its threads, and the helpers every part uses.

`Store` is one object to its callers but several concerns inside (changes and outcomes, the
retry queue, the configuration objects); each part is a class of its own over this base, so the
parts share the writer thread, the readers and these helpers without importing each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]

from stream.store.schema import current_version, migrate
from stream.store.writer import DEFAULT_MEMORY_LIMIT, DEFAULT_TEMP_LIMIT, Con, Database

__all__ = ["StoreBase", "first", "insert_arrow", "registered"]

T = TypeVar("T")


def first(rows: list[Any]) -> Any:
    """First row or None. Results are always fetched to the end: DuckDB 2.0 refuses the next
    statement on a connection whose previous result was only partly read (`fetchone`)."""
    return rows[0] if rows else None


def insert_arrow(con: Con, table: pa.Table, sql: str) -> int:
    """Run `sql` (which reads from `batch`) with `table` registered as `batch`."""
    with registered(con, "batch", table):
        row = first(con.execute(sql).fetchall())
    return int(row[0]) if row else 0


@contextlib.contextmanager
def registered(con: Con, name: str, table: pa.Table) -> Iterator[None]:
    """Expose `table` to SQL as `name` for the block.

    After a failed statement the transaction is aborted and even `unregister` fails; that
    error must not hide the statement's own, and `register` replaces a stale name next time.
    """
    con.register(name, table)
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.unregister(name)
        raise
    con.unregister(name)


class StoreBase:
    """The DuckDB database behind `Store`; see `stream.store.store` for threading."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        reader_threads: int = 4,
        operator_threads: int = 2,
        threads: int | None = None,
        memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
        temp_limit: str | None = DEFAULT_TEMP_LIMIT,
    ) -> Self:
        """Open or create the database file and bring its schema up to date.

        Raises `StoreLockedError` when another process holds the file and `SchemaVersionError`
        when the file comes from a newer build.
        """
        db = await Database.open(
            Path(path),
            setup=migrate,
            reader_threads=reader_threads,
            operator_threads=operator_threads,
            threads=threads,
            memory_limit=memory_limit,
            temp_limit=temp_limit,
        )
        return cls(db)

    @property
    def path(self) -> Path:
        return self._db.path

    async def close(self) -> None:
        """Finish queued writes, CHECKPOINT and release the file."""
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def read(self, work: Callable[[Con], T]) -> T:
        """Run `work(cursor)` on a reader thread: the service's own parameterised reads
        (metrics, dashboards), unguarded and uncapped, never on the event loop.
        DuckDB errors surface as `StoreReadError`."""
        return await self._db.read(work)

    async def write(self, work: Callable[[Con], T]) -> T:
        """Run `work(con)` as one transaction on the writer thread (derived views and the
        like); DuckDB errors roll it back and surface as `StoreWriteError`."""
        return await self._db.write(work)

    async def write_apart(self, work: Callable[[Con], T]) -> T:
        """Run `work(con)` as one transaction on a writing lane of its own, beside the writer
        thread: for small writes to tables no other write touches (the delivery marks), which
        must not wait behind the writer's batches. DuckDB errors roll it back and surface as
        `StoreWriteError`."""
        return await self._db.write_apart(work)

    async def write_raw(self, work: Callable[[Con], T]) -> T:
        """Run `work(con)` on the writer thread outside a transaction: a CHECKPOINT and what
        must follow one (an erasure's scrub of free blocks, stream.store.person)."""
        return await self._db.write_raw(work)

    async def schema_version(self) -> int:
        return await self._db.read(current_version)

    async def probe(self, timeout_s: float = 2.0) -> bool:
        """Does the database answer within `timeout_s`? (On a thread of its own: neither the
        readers nor operators' statements can hold it up.)"""
        return await self._db.probe(timeout_s)

    async def checkpoint(self) -> None:
        await self._db.write_raw(lambda con: con.execute("FORCE CHECKPOINT"))
