"""The control service as a Faust app (`signal-control`): three agents over the ledger.

- `archive` on `certain-changes` (its own consumer group, next to the pipeline's): every valid
  change into `changes`, every invalid record into `rejected_changes` with its reasons, event
  changes into the catalog (republished to workers).
- `record` on `signal-outcomes`: outcomes into `outcomes`, failures and parked deliveries into
  the retry queue, successes resolving open retry items.
- `api_calls` on `signal-api-calls`: Marketo calls into `api_calls`.

Next to them, started by the runtime, `delivery_marks` (`stream.control.marks`) keeps
`signal-delivered` in the ledger within tens of milliseconds, in a consumer group of its own so
it never waits behind these agents.

Each agent takes batches with `take_events()` and hands them to the `Recorder`, which returns
only once the batch is committed in DuckDB; the batch is acked after that. Nothing raises out of
an agent and nothing is dropped with only a log line: unreadable records are kept with their
reasons (`rejected_changes` for changes, `rejected_records` for the internal topics), a store
failure blocks the agent until the store takes the batch, and a batch that keeps failing with an
unexpected error is kept record by record with the error before it is acked
(`Recorder.guarded`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust

from stream.control.recorder import RawRecord, Recorder
from stream.control.runtime import ControlRuntime, ControlSettings
from stream.faust_settings import faust_settings
from stream.stop_deadline import DeadlineWorker
from stream.topics import API_CALLS, CHANGES, OUTCOMES, faust_topic


@dataclass
class Control:
    app: Any
    runtime: ControlRuntime

    def worker(self, **options: Any) -> Any:
        """A Faust worker running the runtime (started first, stopped last) and the app."""
        options.setdefault("loglevel", "info")
        options.setdefault("redirect_stdouts", False)
        options.setdefault("stop_deadline_s", self.runtime.settings.stop_deadline_s)
        return DeadlineWorker(self.app, self.runtime, name="csignal control", **options)


def create_control(
    settings: ControlSettings, *, on_listening: Callable[[str], None] | None = None
) -> Control:
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        autodiscover=False,
        **faust_settings(data_dir=settings.data_dir, **settings.faust_overrides),
    )
    runtime = ControlRuntime(settings, on_listening=on_listening)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    changes = faust_topic(app, CHANGES, **raw)
    outcomes = faust_topic(app, OUTCOMES, **raw)
    api_calls_topic = faust_topic(app, API_CALLS, **raw)

    async def recorder() -> Recorder:
        await runtime.ready.wait()
        assert runtime.recorder is not None
        return runtime.recorder

    def records(events: Any) -> list[RawRecord]:
        return [RawRecord(e.value, e.message.partition, e.message.offset) for e in events]

    @app.agent(changes, name="archive")
    async def archive(stream: Any) -> None:
        ledger = await recorder()
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            await ledger.guarded("archive", CHANGES.name, records(events), ledger.archive)

    @app.agent(outcomes, name="record")
    async def record(stream: Any) -> None:
        ledger = await recorder()
        batches = stream.take_events(settings.record_batch_max, within=settings.batch_within_s)
        async for events in batches:
            await ledger.guarded("record", OUTCOMES.name, records(events), ledger.record_outcomes)

    @app.agent(api_calls_topic, name="api_calls")
    async def api_calls(stream: Any) -> None:
        ledger = await recorder()
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            await ledger.guarded(
                "api_calls", API_CALLS.name, records(events), ledger.record_api_calls
            )

    return Control(app, runtime)
