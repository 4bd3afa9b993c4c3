"""The operator actions on the retry queue and flows that re-drive changes, built once per control
process: the retry scheduler, resubmits, replays, and what previews read.

The control service builds one `Operations` with `Operations.build(store, config, publish)`,
starts `scheduler` with its other tasks, hands the object to `add_retry_routes`,
`add_replay_routes` and `add_preview_routes`, and calls `close()` when it stops.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from stream.control.redrive import Clock, ConfigSource, Publish, utc_now
from stream.control.replay import ReplayManager
from stream.control.resubmit import Resubmitter
from stream.control.retry_scheduler import DEFAULT_SCHEDULE, RetrySchedule, RetryScheduler
from stream.store import Store


@dataclass
class Operations:
    store: Store
    config: ConfigSource
    scheduler: RetryScheduler
    resubmitter: Resubmitter
    replays: ReplayManager

    @classmethod
    def build(
        cls,
        store: Store,
        config: ConfigSource,
        publish: Publish,
        *,
        schedule: RetrySchedule = DEFAULT_SCHEDULE,
        clock: Clock = utc_now,
    ) -> Operations:
        """`publish` sends (key, value) records to `signal-redrive` and returns once acked."""
        return cls(
            store=store,
            config=config,
            scheduler=RetryScheduler(store, publish, clock, schedule, jitter=random.random),
            resubmitter=Resubmitter(store, publish, clock, schedule),
            replays=ReplayManager(store, publish, config, clock),
        )

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.replays.close()
