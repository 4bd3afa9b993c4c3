"""Long ledger jobs (a backup, a Parquet export) run by control in the background, one at a time.

A backup of a large ledger takes longer than an HTTP call should wait, so the route starts a job
and answers at once with its id; the client follows its progress (table, rows done of rows) until
it is `done` or `failed`. One job at a time bounds the work operators can cause: each job holds
one of the store's reader threads and streams in bounded batches.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream.store import Store
from stream.store.writer import Con

log = logging.getLogger(__name__)

KEEP_FINISHED = 20
"""Finished jobs kept for their progress to be read; older ones are forgotten."""


class JobBusy(Exception):
    """Another ledger job is still running."""


@dataclass
class LedgerJob:
    id: str
    kind: str
    actor: str
    started_at: datetime
    state: str = "running"
    table: str | None = None
    rows_done: int = 0
    rows_total: int = 0
    tables_done: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    finished_at: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, table: str, done: int, total: int) -> None:
        """Called from the job's thread as rows are copied."""
        with self._lock:
            if self.table is not None and self.table != table:
                self.tables_done.append(self.table)
            self.table, self.rows_done, self.rows_total = table, done, total

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "id": self.id,
                "kind": self.kind,
                "actor": self.actor,
                "state": self.state,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "table": self.table,
                "rows_done": self.rows_done,
                "rows_total": self.rows_total,
                "tables_done": list(self.tables_done),
                "result": self.result,
                "error": self.error,
            }


Work = Callable[[Con, LedgerJob], dict[str, Any]]
"""The job's blocking part, on a reader thread with a cursor of the ledger; returns its result."""

Finish = Callable[[dict[str, Any]], Awaitable[None]]
"""What follows a successful `Work` on the event loop (an export saves its watermark)."""


class LedgerJobs:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._jobs: dict[str, LedgerJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    def running(self) -> LedgerJob | None:
        return next((j for j in self._jobs.values() if j.state == "running"), None)

    def get(self, job_id: str) -> LedgerJob | None:
        return self._jobs.get(job_id)

    async def start(
        self,
        kind: str,
        actor: str,
        work: Work,
        finish: Finish | None = None,
        before: Callable[[str], Awaitable[None]] | None = None,
    ) -> LedgerJob:
        """Claim the one slot, run `before(job id)` (the audit row, so a backup holds the record
        of itself), then start `work` in the background."""
        busy = self.running()
        if busy is not None:
            raise JobBusy(f"a {busy.kind} ({busy.id}) is still running; wait for it to finish")
        stamp = datetime.now(UTC)
        job = LedgerJob(f"{kind}-{stamp:%Y%m%dT%H%M%S}-{next(self._ids)}", kind, actor, stamp)
        self._jobs[job.id] = job
        self._forget_old()
        if before is not None:
            try:
                await before(job.id)
            except BaseException:
                del self._jobs[job.id]
                raise
        task = asyncio.create_task(self._run(job, work, finish), name=f"ledger-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: LedgerJob, work: Work, finish: Finish | None) -> None:
        try:
            result = await self._store.read(lambda con: work(con, job))
            if finish is not None:
                await finish(result)
        except Exception as error:  # reported to the operator through the job
            log.warning("ledger %s %s failed: %s", job.kind, job.id, error)
            job.error, job.state = str(error), "failed"
        else:
            job.result, job.state = result, "done"
        job.finished_at = datetime.now(UTC)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]

    async def close(self) -> None:
        """Wait for a running job (it holds a cursor of the store being closed)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
