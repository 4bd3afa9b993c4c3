"""Control's rollup fold: keeps the live hourly rollups (`stream.store.rollup_fold`) up to date
off the hot path, so the dashboards over long windows read rollups instead of every outcome.

Each round is one bounded fold step on the writer thread (at most `budget` hours, a few tens of
milliseconds each on a large ledger), so the recorder's batches queued behind it wait for one
step. While complete hours are left to fold (after a start on a large ledger, or after an
erasure) rounds follow each other after `catch_up_s`; then every `every_s`. The clock is
injected so tests fold a ledger of any date.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from stream.control.periodic import Periodic
from stream.store import Store
from stream.store.rollup_fold import FoldReport, fold_step
from stream.store.writer import Con

log = logging.getLogger("signal.control.rollups")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class RollupFolding(Periodic):
    task_name = "rollup-folding"

    def __init__(
        self,
        store: Store,
        *,
        every_s: float = 30.0,
        catch_up_s: float = 0.2,
        budget: int = 6,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__()
        self.store = store
        self.every_s = every_s
        self.catch_up_s = catch_up_s
        self.budget = budget
        self.clock = clock
        self.last: FoldReport | None = None

    async def run(self) -> None:
        while True:
            behind = False
            try:
                behind = (await self.step()).left > 0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the next round tries again
                log.warning("rollup fold failed: %s", error)
            await self.pause(self.catch_up_s if behind else self.every_s)

    async def step(self) -> FoldReport:
        work = functools.partial(_fold, now=self.clock(), budget=self.budget)
        self.last = await self.store.write(work)
        return self.last


def _fold(con: Con, *, now: datetime, budget: int) -> FoldReport:
    return fold_step(con, now=now, budget=budget)
