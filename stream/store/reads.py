"""Internal SQL for other parts of the control service (metrics, dashboards).

The operator `query` is guarded text SQL with a row cap; the service's own figures need bound
parameters and whole results, on the same threads as every other store call: a reader cursor
(never the event loop) for reads, the writer thread for DDL such as derived views.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from stream.store.store import Store
from stream.store.writer import Con

T = TypeVar("T")


async def read(store: Store, work: Callable[[Con], T]) -> T:
    """Run `work(cursor)` on a reader thread; DuckDB errors surface as `StoreReadError`."""
    return await store._db.read(work)


async def write(store: Store, work: Callable[[Con], T]) -> T:
    """Run `work(con)` in one transaction on the writer thread."""
    return await store._db.write(work)
