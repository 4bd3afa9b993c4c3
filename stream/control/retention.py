"""Control's pruner: applies the retention policy (`stream.store.retention`) off the hot path.

A pass runs each step in short write transactions of at most `batch` rows, resting between them
so its steps take at most `share` of the writer thread's time (a step of 0.3 s rests 0.9 s at
the default 0.25), so the recorder's batches queued behind a step wait for one step, never for
the pass, and keep most of the writer: pruning a year of a large ledger takes a while,
recording goes on.
Passes run at start and then every `every_s`. The clock is injected so tests can age the ledger
without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream.control.periodic import Periodic
from stream.store import Store
from stream.store.retention import STEPS, RetentionPolicy, Step, cutoff, file_bytes, oldest_rows
from stream.store.writer import Con

log = logging.getLogger("signal.control.retention")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PassReport:
    started_at: datetime
    finished_at: datetime | None = None
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    """`table:action` -> rows dropped or redacted."""
    batches: int = 0
    longest_step_s: float = 0.0
    """The longest one step held the writer: what a recorder's batch queued behind it waited."""
    longest_step: str | None = None
    """`table:action` of that step."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": round(self.seconds, 3),
            "rows": dict(self.rows),
            "batches": self.batches,
            "longest_step_s": round(self.longest_step_s, 3),
            "longest_step": self.longest_step,
            "error": self.error,
        }


def _step_work(step: Step, before: datetime, batch: int) -> Callable[[Con], int]:
    def work(con: Con) -> int:
        return step.run(con, before, batch)

    return work


class Retention(Periodic):
    task_name = "retention"

    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy,
        *,
        every_s: float = 3600.0,
        pause_s: float = 0.01,
        share: float = 0.25,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__()
        self.store = store
        self.policy = policy
        self.every_s = every_s
        self.pause_s = pause_s
        if not 0 < share <= 1:
            raise ValueError(f"share: expected a fraction in (0, 1], got {share!r}")
        self.share = share
        self.clock = clock
        self.last: PassReport | None = None
        self.totals: dict[str, int] = {f"{s.table}:{s.action}": 0 for s in STEPS}
        self.running = False

    async def run(self) -> None:
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the next pass tries again; the report says why
                log.warning("retention pass failed: %s", error)
            await self.pause(self.every_s)

    async def prune(self) -> PassReport:
        """One pass: every step until it has nothing left that is due at the pass's start."""
        now = self.clock()
        report = PassReport(started_at=now)
        began = time.perf_counter()
        self.running = True
        batch = self.policy.batch
        try:
            for step in STEPS:
                before = cutoff(self.policy, step, now)
                name = f"{step.table}:{step.action}"
                report.rows.setdefault(name, 0)
                while True:
                    took = time.perf_counter()
                    done = await self.store.write(_step_work(step, before, batch))
                    took = time.perf_counter() - took
                    report.batches += 1
                    if took > report.longest_step_s:
                        report.longest_step_s, report.longest_step = took, name
                    report.rows[name] += done
                    self.totals[name] += done
                    if done < self.policy.batch:
                        break
                    # Rest as long as it takes the step's share of the writer to be `share`.
                    await asyncio.sleep(max(self.pause_s, took * (1 - self.share) / self.share))
        except Exception as error:
            report.error = str(error)
            raise
        finally:
            self.running = False
            report.seconds = time.perf_counter() - began
            report.finished_at = self.clock()
            self.last = report
        if any(report.rows.values()):
            log.info("retention pass: %s in %.1f s", report.rows, report.seconds)
        return report

    def snapshot(self) -> dict[str, Any]:
        """The settings and what passes did, without reading the ledger (for `/metrics`)."""
        return {
            "policy": self.policy.describe(),
            "last_pass": self.last.to_dict() if self.last else None,
            "running": self.running,
            "totals": dict(self.totals),
        }

    async def status(self) -> dict[str, Any]:
        """What the API and the console show: the snapshot, disk use and the oldest rows."""
        oldest = await self.store.read(oldest_rows)
        return {
            **self.snapshot(),
            "file_bytes": file_bytes(self.store.path),
            "oldest": {k: v.isoformat() if v else None for k, v in oldest.items()},
        }
